"""The export's readable report (`data/report.pdf`): scope, counts, how to verify, one
timeline per case, and who looked at what. A scope too large to read on paper keeps the
summary and says where the full list is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channelflow.audit import bundle
from channelflow.audit.bundle import FileDigest, HashingFile

if TYPE_CHECKING:
    from channelflow.pdf import Document

# Beyond these the timelines would run to hundreds of pages: the report keeps the summary.
MAX_PRINTED_EVENTS = 2_000
MAX_PRINTED_CASES = 300
_TIMELINE = ("when (UTC)", "event", "from", "to", "who", "reason")
_WIDTHS = (1.5, 1.6, 1.1, 1.1, 1.5, 2.2)


@dataclass(frozen=True)
class ReportData:
    origin: str
    scope: dict[str, Any]
    # One timeline per case, or None when there are too many to print.
    timelines: dict[str, list[dict[str, Any]]] | None
    # Events of anything but a referral (users, meetings, the toolkit, exports), or None.
    others: list[dict[str, Any]] | None
    cases: int
    access_summary: list[tuple[str, str, int]]
    fingerprint: str


def write_report(root: Path, data: ReportData) -> FileDigest:
    # fpdf is loaded only when a PDF is written: it costs 0.2 s and 45 MB otherwise.
    from channelflow.pdf import Document

    document = Document("Audit trail export", footer=f"channelflow audit export: {data.origin}")
    _summary(document, data)
    _timelines(document, data)
    _others(document, data)
    _access(document, data)
    file = HashingFile(root, bundle.REPORT)
    file.write_bytes(document.output())
    return file.close()


def _summary(document: Document, data: ReportData) -> None:
    scope = data.scope
    selection = scope["selection"]
    completeness = scope["completeness"]
    cases = selection["cases"]
    document.key_values(
        [
            ("Trail", data.origin),
            ("Exported", f"{scope['exported_at']} by {scope['exported_by']}"),
        ]
    )
    document.heading("Scope")
    document.key_values(
        [
            ("Events recorded from", selection["from"] or "the start of the trail"),
            ("Events recorded to", selection["to"] or "the export"),
            ("Cases", ", ".join(cases) if cases else "all (every event in the range)"),
            (
                "Personal details",
                "included (data/people.jsonl)" if selection["personal_data"] else "left out",
            ),
        ]
    )
    document.heading("Counts")
    span = None
    if completeness["first_seq"] is not None:
        span = (
            f"{completeness['first_seq']} to {completeness['last_seq']} of "
            f"{scope['tree_size']} in the trail"
        )
    document.key_values(
        [
            ("Events exported", completeness["events"]),
            ("Cases with events", data.cases),
            ("Sequence numbers", span),
        ]
    )
    document.heading("Verification")
    document.paragraph(
        "Every event in the trail was checked when this export was made (its hash, its link "
        "to the event before and its MAC). The trail's Merkle tree (RFC 6962) of "
        f"{scope['tree_size']} events has the root {scope['root']}; checkpoint.txt signs that "
        "root and this export's scope with the Ed25519 key whose SHA-256 fingerprint is "
        f"{data.fingerprint}."
    )
    document.paragraph(
        "To check the export without the database: in its folder run "
        "`sha256sum -c manifest-sha256.txt`, then `channelflow audit verify FOLDER "
        "--fingerprint <fingerprint obtained from the council>`."
    )
    if scope["earlier_exports"]:
        sizes = ", ".join(str(e["size"]) for e in scope["earlier_exports"])
        document.paragraph(f"Consistency proofs from earlier exports of sizes: {sizes}.")


def _timelines(document: Document, data: ReportData) -> None:
    document.heading("Timelines")
    if data.timelines is None:
        events = data.scope["completeness"]["events"]
        document.paragraph(
            f"This export holds {events} events of {data.cases} cases: too many to print. The "
            "full list is in data/events.csv (for a spreadsheet) and data/events.jsonl."
        )
        return
    if not data.timelines:
        document.paragraph("No case events in this scope.")
    for reference, entries in data.timelines.items():
        document.heading(f"Case {reference} ({len(entries)} events)", level=2)
        document.table(
            _TIMELINE,
            (
                (
                    entry["occurred_at"][:16].replace("T", " "),
                    entry["event"],
                    entry["from"] or "",
                    entry["to"] or "",
                    f"{entry['actor']} ({entry['role']})",
                    entry["reason"] or "",
                )
                for entry in entries
            ),
            widths=_WIDTHS,
        )


def _others(document: Document, data: ReportData) -> None:
    if not data.others:
        return
    document.heading("Other events")
    document.paragraph("Users, meetings, the toolkit, exports and keys, in the order recorded:")
    document.table(
        ("when (UTC)", "about", "event", "who", "reason"),
        (
            (
                entry["occurred_at"][:16].replace("T", " "),
                entry["entity"],
                entry["event"],
                f"{entry['actor']} ({entry['role']})",
                entry["reason"] or "",
            )
            for entry in data.others
        ),
        widths=(1.5, 2.4, 1.6, 1.6, 1.9),
    )


def _access(document: Document, data: ReportData) -> None:
    document.heading("Access log summary")
    document.paragraph("Who viewed, changed or exported what (details in data/access-log.jsonl):")
    document.table(
        ("who", "action", "times"),
        data.access_summary,
        widths=(2, 3, 1),
        empty="No access log entries in this scope.",
    )
