"""The export's readable report (`data/report.pdf`): scope, counts, how to verify, one
timeline per case, and who looked at what. A scope too large to read on paper keeps the
summary and says where the full list is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from channelflow.audit import bundle
from channelflow.audit.bundle import FileDigest, HashingFile

# Beyond these the timelines would run to hundreds of pages: the report keeps the summary.
MAX_PRINTED_EVENTS = 2_000
MAX_PRINTED_CASES = 300
_TIMELINE = (("when (UTC)", 34), ("event", 34), ("from", 22), ("to", 22), ("who", 32))


@dataclass(frozen=True)
class ReportData:
    origin: str
    scope: dict[str, Any]
    # One timeline per case, or None when there are too many to print.
    timelines: dict[str, list[dict[str, Any]]] | None
    cases: int
    access_summary: list[tuple[str, str, int]]
    fingerprint: str


def _text(value: Any) -> str:
    """The PDF's core fonts are Latin-1: anything else is shown as '?', never dropped."""
    return str(value if value is not None else "").encode("latin-1", "replace").decode("latin-1")


class _Report(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.cell(0, 8, f"page {self.page_no()}/{{nb}}", align="C")


def write_report(root: Path, data: ReportData) -> FileDigest:
    pdf = _Report(format="A4")
    pdf.set_title("channelflow audit trail export")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    _summary(pdf, data)
    _timelines(pdf, data)
    _access(pdf, data)
    file = HashingFile(root, bundle.REPORT)
    file.write_bytes(bytes(pdf.output()))
    return file.close()


def _heading(pdf: FPDF, text: str, size: int = 13) -> None:
    pdf.set_font("Helvetica", "B", size)
    pdf.multi_cell(0, 8, _text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=9)


def _line(pdf: FPDF, text: str) -> None:
    pdf.multi_cell(0, 5, _text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _summary(pdf: FPDF, data: ReportData) -> None:
    scope = data.scope
    selection = scope["selection"]
    completeness = scope["completeness"]
    _heading(pdf, "Audit trail export", 16)
    _line(pdf, f"Trail: {data.origin}")
    _line(pdf, f"Exported at {scope['exported_at']} by {scope['exported_by']}")
    _heading(pdf, "Scope")
    _line(pdf, f"Events recorded from: {selection['from'] or 'the start of the trail'}")
    _line(pdf, f"Events recorded to: {selection['to'] or 'the export'}")
    cases = selection["cases"]
    _line(pdf, "Cases: " + (", ".join(cases) if cases else "all (every event in the range)"))
    _line(
        pdf,
        "Personal details: "
        + ("included (data/people.jsonl)" if selection["personal_data"] else "left out"),
    )
    _heading(pdf, "Counts")
    _line(pdf, f"Events exported: {completeness['events']}")
    _line(pdf, f"Cases with events: {data.cases}")
    if completeness["first_seq"] is not None:
        _line(
            pdf,
            f"Sequence numbers: {completeness['first_seq']} to {completeness['last_seq']} "
            f"of {scope['tree_size']} in the trail",
        )
    _heading(pdf, "Verification")
    _line(
        pdf,
        "Every event in the trail was checked when this export was made (its hash, its link "
        "to the event before and its MAC). The trail's Merkle tree (RFC 6962) of "
        f"{scope['tree_size']} events has the root {scope['root']}; checkpoint.txt signs that "
        "root and this export's scope with the Ed25519 key whose SHA-256 fingerprint is "
        f"{data.fingerprint}.",
    )
    _line(
        pdf,
        "To check the export without the database: in its folder run "
        "`sha256sum -c manifest-sha256.txt`, then `channelflow audit verify FOLDER "
        "--fingerprint <fingerprint obtained from the council>`.",
    )
    if scope["earlier_exports"]:
        sizes = ", ".join(str(e["size"]) for e in scope["earlier_exports"])
        _line(pdf, f"Consistency proofs from earlier exports of sizes: {sizes}.")


def _timelines(pdf: FPDF, data: ReportData) -> None:
    _heading(pdf, "Timelines")
    if data.timelines is None:
        events = data.scope["completeness"]["events"]
        _line(
            pdf,
            f"This export holds {events} events of {data.cases} cases: too many to "
            "print. The full list is in data/events.csv (for a spreadsheet) and "
            "data/events.jsonl.",
        )
        return
    if not data.timelines:
        _line(pdf, "No case events in this scope.")
        return
    for reference, entries in data.timelines.items():
        _heading(pdf, f"Case {reference} ({len(entries)} events)", 11)
        with pdf.table(
            col_widths=(*(width for _, width in _TIMELINE), 46),
            text_align="LEFT",
            line_height=4.5,
            first_row_as_headings=True,
        ) as table:
            header = table.row()
            for name, _ in _TIMELINE:
                header.cell(name)
            header.cell("reason")
            for entry in entries:
                row = table.row()
                row.cell(_text(entry["occurred_at"][:16].replace("T", " ")))
                row.cell(_text(entry["event"]))
                row.cell(_text(entry["from"]))
                row.cell(_text(entry["to"]))
                row.cell(_text(f"{entry['actor']} ({entry['role']})"))
                row.cell(_text(entry["reason"]))
        pdf.ln(3)


def _access(pdf: FPDF, data: ReportData) -> None:
    _heading(pdf, "Access log summary")
    if not data.access_summary:
        _line(pdf, "No access log entries in this scope.")
        return
    _line(pdf, "Who viewed, changed or exported what (details in data/access-log.jsonl):")
    with pdf.table(col_widths=(60, 80, 20), text_align="LEFT", line_height=4.5) as table:
        header = table.row()
        for name in ("who", "action", "times"):
            header.cell(name)
        for actor, action, count in data.access_summary:
            row = table.row()
            row.cell(_text(actor))
            row.cell(_text(action))
            row.cell(str(count))
