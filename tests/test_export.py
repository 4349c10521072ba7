"""`channelflow audit export` and `channelflow audit verify PATH` (issue 5, sections 1-3).

Every test that touches a database runs on SQLite and on PostgreSQL. The trail is recorded
on known days (tests.export_helpers), so date ranges select known events. Bundles are
verified in-process (`verify_bundle`) and through the command line with no database and no
key files, as an inspector would.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import bagit  # type: ignore[import-untyped]
import pytest
from pypdf import PdfReader

from channelflow import clock
from channelflow.audit import bundle, chain, report
from channelflow.audit import export as export_module
from channelflow.audit.canonical import GENESIS_HASH, format_time, row_hash
from channelflow.audit.chain import EventDraft
from channelflow.audit.export import Exporter, Selection
from channelflow.audit.offline import verify_bundle
from channelflow.audit.verify import verify_chain
from channelflow.exceptions import IntegrityFailure
from channelflow.states import referral as lc
from channelflow.store.db import write_session
from tests.cli_helpers import run_subprocess
from tests.export_helpers import (
    ADDRESS,
    DOB,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    FORMULA_REASONS,
    FORMULA_STARTS,
    NAME,
    PERSONAL,
    RAW_FORMULA_REASONS,
    SCHOOL,
    UNICODE_REASON,
    ExportCli,
    Outcome,
    Trail,
    access_rows,
    assert_integrity_error,
    audit_rows,
    build_trail,
    bundle_files,
    drop_append_only_triggers,
    jsonl,
    local_day,
    merkle_tree,
    new_runtime,
    offline_cli,
    recomputed_hash,
    set_columns,
)
from tests.factories import ADMIN, AUDITOR, CHAIR, COORDINATOR, LEAD, MEMBER, POLICE

WHOLE_BUNDLE_FILES = sorted(
    [
        bundle.README,
        bundle.BAG_INFO,
        bundle.BAGIT,
        bundle.CHECKPOINT,
        bundle.ACCESS_LOG,
        bundle.CONSISTENCY,
        bundle.EVENTS_CSV,
        bundle.EVENTS,
        bundle.KEY_ROTATIONS,
        bundle.REPORT,
        bundle.MANIFEST,
        bundle.SCOPE,
        bundle.PUBLIC_KEY,
        bundle.TAG_MANIFEST,
    ]
)
PINNED = "(pinned)"
UNPINNED = "(taken from the bundle itself: pin it)"


@pytest.fixture
def trail(database_url: str, tmp_path: Path) -> Iterator[Trail]:
    built = build_trail(database_url, tmp_path)
    yield built
    built.runtime.close()


@pytest.fixture
def cli(
    trail: Trail, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> ExportCli:
    return ExportCli(trail, monkeypatch, capsys)


def export(cli: ExportCli, out: Path, *options: str, by: str = AUDITOR) -> dict[str, Any]:
    done = cli("audit", "export", str(out), *options, "--by", by, "--json")
    assert done.code == EXIT_OK, done
    assert done.err == ""
    result = done.json()
    assert isinstance(result, dict)
    return result


def referral_rows(trail: Trail, *references: str) -> list[dict[str, Any]]:
    return [
        row
        for row in audit_rows(trail.engine)
        if row["entity_type"] == "referral" and row["entity_id"] in references
    ]


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


def pdf_text(path: Path) -> str:
    reader = PdfReader(path)
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def says_exported(text: str, events: int) -> bool:
    return re.search(rf"Events exported:? {events}\b", text) is not None


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# Round trip: export, then verify without the database ------------------------------------------


def test_whole_trail_export_verifies_with_the_pinned_key(trail: Trail, cli: ExportCli) -> None:
    rows = audit_rows(trail.engine)
    out = trail.tmp / "bundle"

    result = export(cli, out)

    root = merkle_tree(rows).root().hex()
    assert result == {
        "path": str(out),
        "events": len(rows),
        "cases": 3,
        "tree_size": len(rows),
        "root": root,
        "fingerprint": trail.fingerprint,
    }
    assert bundle_files(out) == WHOLE_BUNDLE_FILES
    verified = verify_bundle(out, fingerprint=trail.fingerprint)
    assert (verified.events, verified.cases, verified.tree_size) == (len(rows), 3, len(rows))
    assert (verified.root, verified.fingerprint, verified.key_pinned) == (
        root,
        trail.fingerprint,
        True,
    )
    assert (verified.first_seq, verified.last_seq) == (1, len(rows))

    by_fingerprint = cli.offline("audit", "verify", str(out), "--fingerprint", trail.fingerprint)
    public_key = trail.tmp / "council.pub"
    origin = f"channelflow/{trail.runtime.key.key_id}"
    public_key.write_text(trail.runtime.signing_key.public.to_text(origin) + "\n")
    by_key = cli.offline("audit", "verify", str(out), "--key", str(public_key))
    as_json = cli.offline("audit", "verify", str(out), "--json")
    unpinned = cli.offline("audit", "verify", str(out))

    n = len(rows)
    summary = (
        f"bundle verified: {n} events of 3 case(s), audit events 1-{n} of {n}; "
        f"signed by key {trail.fingerprint[:16]}... "
    )
    assert (by_fingerprint.code, by_fingerprint.err) == (EXIT_OK, "")
    assert by_fingerprint.out == summary + PINNED + "\n"
    assert (by_key.code, by_key.out) == (EXIT_OK, summary + PINNED + "\n")
    assert (unpinned.code, unpinned.out) == (EXIT_OK, summary + UNPINNED + "\n")
    assert as_json.code == EXIT_OK
    assert as_json.json() == {
        "ok": True,
        "events": n,
        "cases": 3,
        "tree_size": n,
        "root": root,
        "fingerprint": trail.fingerprint,
        "key_pinned": False,
        "consistent_with": [],
    }


def test_case_export_holds_exactly_the_cases_events_and_verifies(
    trail: Trail, cli: ExportCli
) -> None:
    for number, references in enumerate([[trail.a], [trail.a, trail.b]]):
        expected = referral_rows(trail, *references)
        size = len(audit_rows(trail.engine))
        out = trail.tmp / f"bundle-{number}"
        # References are matched whatever their case, as a user types them.
        options = [option for ref in references for option in ("--case", ref.lower())]

        result = export(cli, out, *options)

        events = jsonl(out / bundle.EVENTS)
        assert seqs(events) == seqs(expected)
        assert (result["events"], result["cases"], result["tree_size"]) == (
            len(expected),
            len(references),
            size,
        )
        assert bundle_files(out) == sorted([*WHOLE_BUNDLE_FILES, bundle.PROOFS])
        assert seqs(jsonl(out / bundle.PROOFS)) == seqs(expected)
        scope = json.loads((out / bundle.SCOPE).read_text())
        assert scope["selection"]["cases"] == references
        for reference in references:
            own = [row for row in expected if row["entity_id"] == reference]
            assert scope["completeness"]["cases"][reference] == {
                "count": len(own),
                "first_seq": own[0]["seq"],
                "last_seq": own[-1]["seq"],
                "latest_hash": own[-1]["hash"],
            }
        verified = verify_bundle(out, fingerprint=trail.fingerprint)
        assert (verified.events, verified.cases) == (len(expected), len(references))
        done = cli.offline("audit", "verify", str(out), "--fingerprint", trail.fingerprint)
        assert done.code == EXIT_OK, done
        assert done.out.startswith(
            f"bundle verified: {len(expected)} events of {len(references)} case(s), audit "
            f"events {expected[0]['seq']}-{expected[-1]['seq']} of {size}; "
        )


# (--from, --to): events are selected by the local day they were recorded. "from_may" runs
# last, as the exports themselves are recorded (today) after every other range.
DATE_RANGES = {
    "april": ("2025-04-01", "2025-04-30"),
    "up_to_march": (None, "2025-03-31"),
    "one_day": ("2025-03-04", "2025-03-04"),
    "from_may": ("2025-05-01", None),
}


def test_date_range_export_holds_the_events_recorded_in_it(trail: Trail, cli: ExportCli) -> None:
    for span, (first, last) in DATE_RANGES.items():
        rows = audit_rows(trail.engine)
        low = date.fromisoformat(first) if first else date.min
        high = date.fromisoformat(last) if last else date.max
        expected = [row for row in rows if low <= local_day(row["recorded_at"]) <= high]
        assert 0 < len(expected) < len(rows), span
        out = trail.tmp / span
        options = [*(["--from", first] if first else []), *(["--to", last] if last else [])]

        result = export(cli, out, *options)

        events = jsonl(out / bundle.EVENTS)
        assert seqs(events) == seqs(expected), span
        assert result["events"] == len(expected)
        scope = json.loads((out / bundle.SCOPE).read_text())
        assert (scope["selection"]["from"], scope["selection"]["to"]) == (first, last)
        verified = verify_bundle(out, fingerprint=trail.fingerprint)
        assert verified.events == len(expected)
        done = cli.offline("audit", "verify", str(out), "--fingerprint", trail.fingerprint)
        assert done.code == EXIT_OK, done
        # The access log is cut to the same days: the read of case A happened on DAY3.
        logged = jsonl(out / bundle.ACCESS_LOG)
        reads = [entry for entry in logged if entry["action"] == "referral.show"]
        assert len(reads) == (1 if span == "from_may" else 0), span


def test_cases_and_dates_combine(trail: Trail, cli: ExportCli) -> None:
    expected = [
        row
        for row in referral_rows(trail, trail.a, trail.b)
        if local_day(row["recorded_at"]) >= date(2025, 5, 1)
    ]
    assert [row["event"] for row in expected] == [lc.REVIEW, lc.ADJOURN]
    out = trail.tmp / "bundle"

    export(
        cli, out, "--from", "2025-05-01", "--to", "2025-05-31", "--case", trail.a, "--case", trail.b
    )

    assert seqs(jsonl(out / bundle.EVENTS)) == seqs(expected)
    verified = verify_bundle(out, fingerprint=trail.fingerprint)
    assert (verified.events, verified.cases) == (2, 2)
    assert cli.offline("audit", "verify", str(out)).code == EXIT_OK


def test_zip_export_is_one_folder_that_verifies(trail: Trail, cli: ExportCli) -> None:
    rows = audit_rows(trail.engine)
    out = trail.tmp / "bundle"

    result = export(cli, out, "--zip")

    archive = trail.tmp / "bundle.zip"
    assert result["path"] == str(archive)
    assert not out.exists()
    with zipfile.ZipFile(archive) as opened:
        names = opened.namelist()
        opened.extractall(trail.tmp / "unzipped")
    assert sorted(names) == [f"bundle/{name}" for name in WHOLE_BUNDLE_FILES]
    assert verify_bundle(archive, fingerprint=trail.fingerprint).events == len(rows)
    done = cli.offline("audit", "verify", str(archive), "--fingerprint", trail.fingerprint)
    assert done.code == EXIT_OK, done
    bagit.Bag(str(trail.tmp / "unzipped" / "bundle")).validate()


def test_since_an_earlier_bundle_shows_the_trail_only_grew(trail: Trail, cli: ExportCli) -> None:
    earlier_size = len(audit_rows(trail.engine))
    earlier = trail.tmp / "earlier"
    first = export(cli, earlier)
    workflow = trail.runtime.workflow
    workflow.fire(trail.c, lc.REFER_TO_PANEL, by=COORDINATOR)
    workflow.fire(trail.b, lc.ACCEPT, by=CHAIR, values={"consent": "given", "lead": LEAD})
    later, case_c = trail.tmp / "later", trail.tmp / "case-c"
    second = export(cli, later)
    export(cli, case_c, "--case", trail.c)

    grown = verify_bundle(later, fingerprint=trail.fingerprint, since=earlier)
    partial = verify_bundle(case_c, fingerprint=trail.fingerprint, since=earlier)
    done = cli.offline(
        "audit", "verify", str(later), "--since", str(earlier), "--fingerprint", trail.fingerprint
    )

    assert grown.consistent_with == [earlier_size]
    assert partial.consistent_with == [earlier_size]
    assert done.code == EXIT_OK, done
    assert done.out.rstrip("\n").endswith(
        f"; the trail only grew since the earlier export(s) of size {earlier_size}"
    )
    scope = json.loads((later / bundle.SCOPE).read_text())
    assert scope["earlier_exports"] == [{"size": earlier_size, "root": first["root"]}]
    assert second["tree_size"] > earlier_size
    # The other way round the trail would have shrunk.
    with pytest.raises(IntegrityFailure, match="the trail shrank"):
        verify_bundle(earlier, since=later)
    backwards = cli.offline("audit", "verify", str(earlier), "--since", str(later))
    assert_integrity_error(backwards, "the trail shrank")


def test_bundle_verifies_with_the_database_gone(
    trail: Trail, cli: ExportCli, tmp_path: Path
) -> None:
    rows = audit_rows(trail.engine)
    out = trail.tmp / "bundle"
    export(cli, out)
    fingerprint = trail.fingerprint
    trail.runtime.close()
    database = tmp_path / "channelflow.db"
    if database.exists():  # SQLite: the database file is taken away
        database.rename(tmp_path / "elsewhere.db")
    elsewhere = tmp_path / "inspector"
    elsewhere.mkdir()
    copy = shutil.copytree(out, elsewhere / "received")
    shutil.rmtree(trail.tmp / "keys")

    in_process = cli.offline("audit", "verify", str(copy), "--fingerprint", fingerprint)
    separate = run_subprocess(
        "audit",
        "verify",
        str(copy),
        "--fingerprint",
        fingerprint,
        cwd=elsewhere,
        env={"CHANNELFLOW_DATABASE_URL": f"sqlite:///{elsewhere / 'none' / 'none.db'}"},
    )

    assert in_process.code == EXIT_OK, in_process
    assert separate.code == EXIT_OK, separate
    assert separate.out.startswith(f"bundle verified: {len(rows)} events of 3 case(s)")
    assert leftovers(elsewhere) == ["received"]


# The bag itself ------------------------------------------------------------------------------


def test_bag_validates_with_bagit_and_sha256sum(trail: Trail, cli: ExportCli) -> None:
    for scope in ("whole", "case", "personal"):
        out = trail.tmp / scope
        options = {"whole": [], "case": ["--case", trail.a], "personal": []}[scope]
        if scope == "personal":
            export(cli, out, "--include-personal-data", by=CHAIR)
        else:
            export(cli, out, *options)

        bag = bagit.Bag(str(out))
        bag.validate()
        payload = [name for name in bundle_files(out) if name.startswith("data/")]
        octets = sum((out / name).stat().st_size for name in payload)
        assert bag.info["Payload-Oxum"] == f"{octets}.{len(payload)}"
        for manifest in (bundle.MANIFEST, bundle.TAG_MANIFEST):
            checked = subprocess.run(
                ["sha256sum", "-c", manifest], cwd=out, capture_output=True, text=True, check=False
            )
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert "FAILED" not in checked.stdout
        listed = (out / bundle.MANIFEST).read_text().splitlines()
        assert sorted(line.split("  ", 1)[1] for line in listed) == payload
        readme = (out / bundle.README).read_text()
        assert "sha256sum -c manifest-sha256.txt" in readme
        assert f"--fingerprint {trail.fingerprint}" in readme


# The files' contents ------------------------------------------------------------------------------


def test_events_jsonl_is_canonical_and_equals_the_database(trail: Trail, cli: ExportCli) -> None:
    rows = audit_rows(trail.engine)
    logged = access_rows(trail.engine)
    out = trail.tmp / "bundle"
    export(cli, out)

    text = (out / bundle.EVENTS).read_text("utf-8")
    lines = text.split("\n")
    assert lines[-1] == ""  # every line ends in a newline
    assert UNICODE_REASON in text  # UTF-8, not \u escapes
    events = [json.loads(line) for line in lines[:-1]]
    assert len(events) == len(rows)
    previous = GENESIS_HASH
    for line, event, row in zip(lines, events, rows, strict=False):
        assert line == json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert event == {**row, "data": json.loads(row["data"])}
        assert recomputed_hash(event) == event["hash"]
        assert row_hash(*(row[name] for name in bundle.COLUMNS[:13])) == event["hash"]
        assert event["prev_hash"] == previous
        assert trail.runtime.key.mac(event["hash"]) == event["mac"]
        previous = event["hash"]
    access_text = (out / bundle.ACCESS_LOG).read_text("utf-8")
    entries = jsonl(out / bundle.ACCESS_LOG)
    assert access_text.splitlines() == [
        json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        for entry in entries
    ]
    assert entries == [
        {
            "id": row["id"],
            "at": format_time(row["at"]),
            "actor": row["actor"],
            "role": row["role"],
            "action": row["action"],
            "entity_type": row["entity_type"],
            "entity_id": row["entity_id"],
            "allowed": bool(row["allowed"]),
        }
        for row in logged
    ]
    assert {entry["allowed"] for entry in entries} == {True, False}


def add_formula_reasons(trail: Trail) -> None:
    """Adjournments of B with formula-like reasons, and two events written straight into the
    trail with reasons starting with a tab and a carriage return."""
    workflow = trail.runtime.workflow
    for reason in FORMULA_REASONS:
        workflow.fire(trail.b, lc.ADJOURN, by=CHAIR, reason=reason)
    drafts = [
        EventDraft("note", f"note-{n}", "note", None, None, ADMIN, "admin", clock.now(), reason=r)
        for n, r in enumerate(RAW_FORMULA_REASONS)
    ]
    with write_session(trail.engine) as session:
        chain.append(session.connection(), drafts, key=trail.runtime.key)


def csv_value(column: str, value: Any) -> str:
    """What a JSONL value looks like in the spreadsheet before neutralising."""
    if value is None:
        return ""
    return bundle.canonical(value) if column == "data" else str(value)


def test_csv_round_trips_the_jsonl_and_neutralises_formulas(trail: Trail, cli: ExportCli) -> None:
    add_formula_reasons(trail)
    out = trail.tmp / "bundle"
    export(cli, out)

    with (out / bundle.EVENTS_CSV).open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    events = jsonl(out / bundle.EVENTS)

    assert tuple(table[0]) == bundle.CSV_COLUMNS
    assert len(table) == len(events) + 1
    neutralised = 0
    for cells, event in zip(table[1:], events, strict=True):
        assert len(cells) == len(bundle.CSV_COLUMNS)
        for column, cell in zip(bundle.CSV_COLUMNS, cells, strict=True):
            value = csv_value(column, event[column])
            if value.startswith(FORMULA_STARTS):
                assert cell == "'" + value, (column, cell)
                cell = cell[1:]
                neutralised += 1
            assert cell == value, (column, cell, value)
    reasons = {cells[bundle.CSV_COLUMNS.index("reason")] for cells in table[1:]}
    exact = {event["reason"] for event in events}
    for reason in (*FORMULA_REASONS, *RAW_FORMULA_REASONS):
        assert reason in exact  # the JSONL keeps the exact text
        if reason.startswith(FORMULA_STARTS):
            assert "'" + reason in reasons
            assert reason not in reasons
        else:
            assert reason in reasons  # an apostrophe already there is left alone
    formulas = [e["reason"] for e in events if (e["reason"] or "").startswith(FORMULA_STARTS)]
    assert neutralised == len(formulas) == 6
    assert not any(cell.startswith(FORMULA_STARTS) for row in table for cell in row)
    assert verify_bundle(out, fingerprint=trail.fingerprint).events == len(events)
    assert cli("audit", "verify").code == EXIT_OK


def test_pdf_shows_every_event_and_case_of_a_case_scope(trail: Trail, cli: ExportCli) -> None:
    out = trail.tmp / "bundle"
    export(cli, out, "--case", trail.a, "--case", trail.b)

    text = pdf_text(out / bundle.REPORT)
    events = jsonl(out / bundle.EVENTS)

    for event in events:
        assert event["event"] in text
    for reference in (trail.a, trail.b):
        count = sum(event["entity_id"] == reference for event in events)
        assert f"Case {reference} ({count} events)" in text
    assert trail.c not in text
    assert says_exported(text, len(events))
    assert trail.fingerprint in text


def test_pdf_shows_every_event_of_a_whole_trail_scope(trail: Trail, cli: ExportCli) -> None:
    """Issue 5: the PDF's text contains every exported event, the user and export events
    too, not only the case timelines."""
    export(cli, trail.tmp / "earlier")
    out = trail.tmp / "bundle"
    export(cli, out)

    text = pdf_text(out / bundle.REPORT)
    names = {event["event"] for event in jsonl(out / bundle.EVENTS)}

    assert {"add_user", "export", lc.OPEN, lc.ADJOURN} <= names
    for reference in (trail.a, trail.b, trail.c):
        assert reference in text
    # "export" is in every report's headings, so it proves nothing here; the rest must show.
    missing = sorted(name for name in names - {"export"} if name not in text)
    assert missing == []


def limit(monkeypatch: pytest.MonkeyPatch, name: str, value: int) -> None:
    """Lower a report limit wherever the exporter reads it."""
    monkeypatch.setattr(report, name, value)
    monkeypatch.setattr(export_module, name, value, raising=False)


def test_pdf_of_a_large_scope_says_where_the_full_list_is(
    trail: Trail, cli: ExportCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = len(audit_rows(trail.engine))
    limit(monkeypatch, "MAX_PRINTED_EVENTS", 3)
    out = trail.tmp / "bundle"
    export(cli, out)
    limit(monkeypatch, "MAX_PRINTED_EVENTS", 10_000)
    limit(monkeypatch, "MAX_PRINTED_CASES", 1)
    many_cases = trail.tmp / "many-cases"
    export(cli, many_cases, "--case", trail.a, "--case", trail.b)

    for folder in (out, many_cases):
        text = pdf_text(folder / bundle.REPORT)
        assert "The full list is in data/events.csv" in text
        assert "too many to print" in text
        assert "Case CF-" not in text  # no timelines
        assert says_exported(text, len(jsonl(folder / bundle.EVENTS)))
    assert verify_bundle(out).events == size


# Who may export, and personal details -------------------------------------------------------------


def test_auditor_admin_and_chair_may_export(trail: Trail, cli: ExportCli) -> None:
    for user in (AUDITOR, ADMIN, CHAIR):
        out = trail.tmp / f"by-{user}"
        export(cli, out, by=user)
        assert verify_bundle(out, fingerprint=trail.fingerprint).cases == 3
        assert json.loads((out / bundle.SCOPE).read_text())["exported_by"] == user


# (user, options, what the refusal says)
REFUSALS = [
    *((user, (), "may not do audit.export") for user in (COORDINATOR, MEMBER, LEAD, POLICE)),
    *(
        (user, ("--include-personal-data",), "may not export personal details")
        for user in (AUDITOR, ADMIN)
    ),
]


def test_refused_exports_are_logged_and_leave_nothing_behind(trail: Trail, cli: ExportCli) -> None:
    for user, options, message in REFUSALS:
        rows = audit_rows(trail.engine)
        logged = access_rows(trail.engine)
        before = leftovers(trail.tmp)
        out = trail.tmp / "bundle"

        done = cli("audit", "export", str(out), *options, "--by", user)

        assert done.code == EXIT_REFUSED, done
        assert done.err.startswith(f"channelflow: error: {user} ("), done.err
        assert message in done.err
        assert not out.exists()
        assert leftovers(trail.tmp) == before  # no half-built bundle either
        assert audit_rows(trail.engine) == rows
        new = access_rows(trail.engine)[len(logged) :]
        assert [(e["actor"], e["action"], bool(e["allowed"])) for e in new] == [
            (user, "audit.export", False)
        ]


def test_chair_exports_personal_details_on_request(trail: Trail, cli: ExportCli) -> None:
    out, one_case = trail.tmp / "bundle", trail.tmp / "one-case"
    export(cli, out, "--include-personal-data", by=CHAIR)
    export(cli, one_case, "--include-personal-data", "--case", trail.a, by=CHAIR)

    people = jsonl(out / bundle.PEOPLE)
    assert [entry["reference"] for entry in people] == sorted([trail.a, trail.b, trail.c])
    assert people[0]["person"] == {
        "full_name": NAME,
        "date_of_birth": DOB.isoformat(),
        "address": ADDRESS,
        "school": SCHOOL,
    }
    assert [entry["reference"] for entry in jsonl(one_case / bundle.PEOPLE)] == [trail.a]
    for folder in (out, one_case):
        assert bundle.PEOPLE in bundle_files(folder)
        assert json.loads((folder / bundle.SCOPE).read_text())["selection"]["personal_data"]
        verify_bundle(folder, fingerprint=trail.fingerprint)
        assert cli.offline("audit", "verify", str(folder)).code == EXIT_OK
    bagit.Bag(str(out)).validate()


def test_default_export_holds_no_personal_detail_anywhere(trail: Trail, cli: ExportCli) -> None:
    for user in (AUDITOR, CHAIR):
        out = trail.tmp / f"by-{user}"
        export(cli, out, by=user)
        export(cli, trail.tmp / f"zipped-by-{user}", "--zip", by=user)

        assert bundle.PEOPLE not in bundle_files(out)
        texts = {name: (out / name).read_bytes() for name in bundle_files(out)}
        texts["report text"] = pdf_text(out / bundle.REPORT).encode()
        with zipfile.ZipFile(trail.tmp / f"zipped-by-{user}.zip") as archive:
            for member in archive.namelist():
                texts[f"zip:{member}"] = archive.read(member)
        for name, content in texts.items():
            for detail in PERSONAL:
                for form in (detail, detail.lower(), detail.upper()):
                    assert form.encode() not in content, (user, name, detail)
        # The subject's details are in the trail only as keyed hashes.
        opened = next(e for e in jsonl(out / bundle.EVENTS) if e["entity_id"] == trail.a)
        assert opened["data"]["personal"]["full_name"].startswith("hmac-sha256:")


# Bad input --------------------------------------------------------------------------------------


def test_unknown_case_is_refused_and_nothing_is_written(trail: Trail, cli: ExportCli) -> None:
    rows = audit_rows(trail.engine)
    before = leftovers(trail.tmp)

    done = cli(
        "audit",
        "export",
        str(trail.tmp / "bundle"),
        "--case",
        trail.a,
        "--case",
        "CF-2099-9999",
        "--by",
        AUDITOR,
    )

    assert done.code == EXIT_USAGE, done
    assert "no referral has the reference CF-2099-9999" in done.err
    assert leftovers(trail.tmp) == before
    assert audit_rows(trail.engine) == rows


BAD_DATES = [
    (("--from", "2025-05-01", "--to", "2025-04-30"), "--to is before --from"),
    (("--from", "2025-02-30"), "--from must be a date written YYYY-MM-DD"),
    (("--to", "yesterday"), "--to must be a date written YYYY-MM-DD"),
    (("--from", "04/05/2025"), "--from must be a date written YYYY-MM-DD"),
    (("--to", "1899-12-31"), "--to is before 1900"),
]


def test_bad_dates_are_refused(trail: Trail, cli: ExportCli) -> None:
    rows = audit_rows(trail.engine)
    before = leftovers(trail.tmp)
    for options, message in BAD_DATES:
        done = cli("audit", "export", str(trail.tmp / "bundle"), *options, "--by", AUDITOR)

        assert done.code == EXIT_USAGE, (options, done)
        assert message in done.err, (options, done)
    assert leftovers(trail.tmp) == before
    assert audit_rows(trail.engine) == rows


def test_an_empty_date_is_refused_not_ignored(trail: Trail, cli: ExportCli) -> None:
    """`--from "$START"` with START unset must not quietly widen the export to the whole
    trail."""
    for option in ("--from", "--to"):
        out = trail.tmp / f"empty{option}"
        done = cli("audit", "export", str(out), option, "", "--by", AUDITOR)

        assert done.code == EXIT_USAGE, (option, done)
        assert f"{option} must be a date written YYYY-MM-DD" in done.err
        assert not out.exists()


def test_an_existing_output_is_left_untouched(trail: Trail, cli: ExportCli) -> None:
    taken = trail.tmp / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    (trail.tmp / "archive.zip").write_bytes(b"not yours")
    (trail.tmp / "a-file").write_text("mine too")
    rows = audit_rows(trail.engine)

    into_folder = cli("audit", "export", str(taken), "--by", AUDITOR)
    into_zip = cli("audit", "export", str(trail.tmp / "archive"), "--zip", "--by", AUDITOR)
    onto_file = cli("audit", "export", str(trail.tmp / "a-file"), "--by", AUDITOR)

    for done in (into_folder, into_zip, onto_file):
        assert done.code == EXIT_USAGE, done
        assert "already exists" in done.err
    assert leftovers(taken) == ["notes.txt"]
    assert (taken / "notes.txt").read_text() == "mine"
    assert (trail.tmp / "archive.zip").read_bytes() == b"not yours"
    assert (trail.tmp / "a-file").read_text() == "mine too"
    assert audit_rows(trail.engine) == rows
    # An empty folder is fine: the bundle goes into it.
    empty = trail.tmp / "empty"
    empty.mkdir()
    export(cli, empty)
    assert bundle_files(empty) == WHOLE_BUNDLE_FILES


def test_output_in_a_missing_folder_fails_cleanly(trail: Trail, cli: ExportCli) -> None:
    """OUT whose parent folder does not exist: a clear refusal (exit 2) or the folders made,
    never an unexpected error."""
    out = trail.tmp / "no" / "such" / "bundle"

    done = cli("audit", "export", str(out), "--by", AUDITOR)

    assert "unexpected" not in done.err, done.err
    assert done.code in (EXIT_OK, EXIT_USAGE), done


def test_verify_refuses_what_is_not_a_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "random"
    folder.mkdir()
    (folder / "data.txt").write_text("hello")
    stray = tmp_path / "stray.txt"
    stray.write_text("hello")
    monkeypatch.chdir(tmp_path)

    def verify(*args: str) -> Outcome:
        return offline_cli(monkeypatch, capsys, tmp_path, "audit", "verify", *args)

    missing = verify(str(tmp_path / "no-such-bundle"))
    not_bag = verify(str(folder))
    not_zip = verify(str(stray))
    no_key_file = verify(str(folder), "--key", str(tmp_path / "x.pub"))

    assert missing.code == EXIT_USAGE, missing
    assert "does not exist" in missing.err
    assert_integrity_error(not_bag, "is not an export bundle: bagit.txt is missing or wrong")
    assert_integrity_error(not_zip, "is neither an export folder nor a zip of one")
    assert no_key_file.code == EXIT_USAGE, no_key_file
    assert "cannot read the public key file" in no_key_file.err
    for option in (("--since", str(folder)), ("--fingerprint", "ab" * 32)):
        database_only = verify(*option)
        assert database_only.code == EXIT_USAGE, database_only
        assert "give its PATH" in database_only.err


# Exports and verifications are recorded ---------------------------------------------------------


def test_export_and_bundle_verification_are_recorded(trail: Trail, cli: ExportCli) -> None:
    rows = audit_rows(trail.engine)
    logged = access_rows(trail.engine)
    out = trail.tmp / "bundle"

    result = export(cli, out, "--case", trail.a)

    [recorded] = audit_rows(trail.engine)[len(rows) :]
    assert (recorded["entity_type"], recorded["event"]) == ("export", "export")
    assert (recorded["actor"], recorded["role"]) == (AUDITOR, "auditor")
    data = json.loads(recorded["data"])
    assert (data["tree_size"], data["root"]) == (len(rows), result["root"])
    assert (data["events"], data["cases"], data["signing_key"]) == (
        result["events"],
        1,
        trail.fingerprint,
    )
    assert data["selection"]["cases"] == [trail.a]
    [access] = access_rows(trail.engine)[len(logged) :]
    assert (access["actor"], access["action"], bool(access["allowed"])) == (
        AUDITOR,
        "audit.export",
        True,
    )

    checked = cli("audit", "verify", str(out), "--by", AUDITOR)

    assert checked.code == EXIT_OK, checked
    [verification] = audit_rows(trail.engine)[len(rows) + 1 :]
    assert (verification["entity_type"], verification["event"]) == ("export", "verify_export")
    assert verification["actor"] == AUDITOR
    assert json.loads(verification["data"]) == {
        "bundle": "bundle",
        "ok": True,
        "tree_size": len(rows),
        "root": result["root"],
        "events": result["events"],
    }
    assert access_rows(trail.engine)[-1]["action"] == "audit.verify"

    # A later export proves consistency with the first; the database trail still verifies.
    later = export(cli, trail.tmp / "later")
    scope = json.loads((trail.tmp / "later" / bundle.SCOPE).read_text())
    assert scope["earlier_exports"] == [{"size": len(rows), "root": result["root"]}]
    assert later["tree_size"] == len(rows) + 2
    whole = cli("audit", "verify")
    assert whole.code == EXIT_OK, whole
    assert whole.out.startswith(f"audit trail verified: {len(rows) + 3} events")
    verify_chain(trail.engine, trail.runtime.key)


def test_a_failed_verification_is_recorded_and_later_exports_still_work(
    trail: Trail, cli: ExportCli
) -> None:
    out = trail.tmp / "bundle"
    export(cli, out)
    with (out / bundle.EVENTS).open("a") as handle:
        handle.write("\n")
    rows = audit_rows(trail.engine)

    failed = cli("audit", "verify", str(out), "--by", AUDITOR)

    assert_integrity_error(failed, "data/events.jsonl does not match its checksum")
    [recorded] = audit_rows(trail.engine)[len(rows) :]
    data = json.loads(recorded["data"])
    assert (recorded["event"], data["ok"]) == ("verify_export", False)
    assert "data/events.jsonl" in data["failure"]
    # The recorded failure must not stop the next export.
    again = cli("audit", "export", str(trail.tmp / "again"), "--by", AUDITOR)
    assert again.code == EXIT_OK, again


def test_verifying_another_trails_bundle_does_not_stop_later_exports(
    trail: Trail, cli: ExportCli, tmp_path: Path
) -> None:
    """A bundle of another database, checked and recorded here, is not an export of this
    trail: its size and root say nothing about this trail."""
    foreign = new_runtime(f"sqlite:///{tmp_path / 'foreign.db'}", tmp_path / "foreign-keys")
    try:
        Exporter(foreign.workflow, foreign.signing_key).export(
            tmp_path / "foreign-bundle", Selection(), by=AUDITOR
        )
    finally:
        foreign.close()
    checked = cli("audit", "verify", str(tmp_path / "foreign-bundle"), "--by", AUDITOR)
    assert checked.code == EXIT_OK, checked

    again = cli("audit", "export", str(trail.tmp / "again"), "--by", AUDITOR)

    assert again.code == EXIT_OK, again


# The exporter checks the trail it exports -------------------------------------------------------


@pytest.mark.parametrize("how", ["edited", "rehashed_without_key"])
def test_export_of_a_tampered_trail_is_refused(trail: Trail, cli: ExportCli, how: str) -> None:
    rows = audit_rows(trail.engine)
    target = next(row for row in rows if row["event"] == lc.ADJOURN)
    seq = target["seq"]
    drop_append_only_triggers(trail.engine)
    with trail.engine.begin() as connection:
        set_columns(connection, seq, {"reason": "the panel agreed to close the case"})
        if how == "rehashed_without_key":
            rows[seq - 1]["reason"] = "the panel agreed to close the case"
            previous = rows[seq - 2]["hash"]
            for row in rows[seq - 1 :]:
                digest = row_hash(*[row[name] for name in bundle.COLUMNS[:12]], previous)  # type: ignore[call-arg]
                set_columns(connection, row["seq"], {"prev_hash": previous, "hash": digest})
                previous = digest
    logged = access_rows(trail.engine)
    before = leftovers(trail.tmp)

    done = cli("audit", "export", str(trail.tmp / "bundle"), "--by", AUDITOR)

    phrase = (
        f"audit event {seq} fails verification"
        if how == "edited"
        else f"audit event {seq} is not signed by this database's audit key"
    )
    assert_integrity_error(done, phrase)
    assert leftovers(trail.tmp) == before
    assert len(audit_rows(trail.engine)) == len(rows)
    assert all(
        entry["action"] != "audit.export" for entry in access_rows(trail.engine)[len(logged) :]
    )


def test_export_after_the_trail_was_rewritten_below_an_earlier_export_is_refused(
    trail: Trail, cli: ExportCli
) -> None:
    """Rewritten with the audit key itself (hashes and MACs recomputed), the chain verifies;
    only the earlier export's recorded root gives the rewrite away."""
    earlier_size = len(audit_rows(trail.engine))
    export(cli, trail.tmp / "earlier")
    export_seq = earlier_size + 1
    rows = audit_rows(trail.engine)
    seq = next(row["seq"] for row in rows if row["event"] == lc.SCREEN)
    assert seq < earlier_size
    key = trail.runtime.key
    drop_append_only_triggers(trail.engine)
    with trail.engine.begin() as connection:
        previous = rows[seq - 2]["hash"]
        for row in rows[seq - 1 :]:
            if row["seq"] == seq:
                row["data"] = '{"outcome":"no_further_action"}'
            digest = row_hash(*[row[name] for name in bundle.COLUMNS[:12]], previous)  # type: ignore[call-arg]
            changed = {"prev_hash": previous, "hash": digest, "mac": key.mac(digest)}
            if row["seq"] == seq:
                changed["data"] = row["data"]
            set_columns(connection, row["seq"], changed)
            previous = digest
    assert verify_chain(trail.engine, key).count == len(rows)
    before = leftovers(trail.tmp)

    done = cli("audit", "export", str(trail.tmp / "later"), "--by", AUDITOR)

    assert_integrity_error(
        done,
        f"the trail's first {earlier_size} events differ from what export event {export_seq} "
        "recorded: the trail was rewritten since then",
    )
    assert leftovers(trail.tmp) == before
    assert re.search(r"\b" + str(export_seq) + r"\b", done.err)
