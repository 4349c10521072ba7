"""Subject access: one folder holding everything kept about the person behind a referral."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, text

from channelflow import clock, sar
from channelflow.audit.verify import verify_chain
from channelflow.exceptions import PermissionDenied
from channelflow.pdf import safe_text
from channelflow.runtime import Runtime
from channelflow.states import referral as lc
from channelflow.workflow.engine import Workflow
from tests.cli_helpers import Cli
from tests.factories import (
    ADMIN,
    AUDITOR,
    CHAIR,
    COORDINATOR,
    LEAD,
    MEMBER,
    POLICE,
    referral_in,
)
from tests.planning_helpers import Cases, config, local, make_planner, plan, set_initialised

NAME, BORN, ADDRESS = "Marigold Fenwick-Ashby", date(1994, 4, 17), "12 Orchard Row"
# When the exports below are made: after every event of the cases they cover.
LATER = datetime(2027, 6, 1, 10, 0, tzinfo=UTC)
ORIGINAL_EVENTS = [
    lc.OPEN,
    lc.SCREEN,
    lc.REFER_TO_PANEL,
    lc.ACCEPT,
    lc.START_INTERVENTION,
    lc.EXIT,
    lc.RECORD_POST_EXIT_REVIEW,
]
REOPENED_EVENTS = [lc.OPEN, lc.SCREEN, lc.REFER_TO_PANEL, lc.ADJOURN]


@dataclass
class Person:
    original: str  # closed, then re-referred at its 6-month post-exit review
    reopened: str  # the re-referral, adjourned at panel


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], runtime: Runtime, database_url: str) -> Cli:
    return Cli(capsys, database_url, runtime.settings.key_file)


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    """A folder for the exports (the database and keys live in ``tmp_path``)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


@pytest.fixture
def person(workflow: Workflow, cli: Cli) -> Person:
    """A case (lee was emailed on accept) re-referred at review; both read and refused."""
    original = referral_in(
        workflow, lc.CLOSED, subject_name=NAME, date_of_birth=BORN, address=ADDRESS
    )  # exited 2026-11-27
    with clock.frozen_at(datetime(2027, 5, 27, 9, tzinfo=UTC)):
        reopened = workflow.fire(
            original, lc.RECORD_POST_EXIT_REVIEW, by=COORDINATOR, values={"outcome": "re_refer"}
        ).opened
        assert reopened is not None
        workflow.fire(reopened, lc.SCREEN, by=POLICE, values={"outcome": "proceed"})
        workflow.fire(reopened, lc.REFER_TO_PANEL, by=COORDINATOR)
        workflow.fire(reopened, lc.ADJOURN, by=CHAIR, reason="school report awaited")
        assert cli("referral", "show", original, "--by", COORDINATOR).code == 0
        assert cli("referral", "show", reopened, "--by", LEAD).code == 4  # not lee's case
    return Person(original, reopened)


def export(cli: Cli, reference: str, out: Path, *, by: str = COORDINATOR) -> Any:
    with clock.frozen_at(LATER):
        done = cli("sar", reference, str(out), "--by", by, "--json")
    assert done.code == 0, done.err
    return done.json()


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def audit_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM audit_event")).scalar_one())


def test_the_export_holds_details_full_history_of_linked_referrals_emails_and_reads(
    cli: Cli, person: Person, exports: Path
) -> None:
    out = exports / "sar-request-17"
    done = export(cli, person.reopened, out)

    assert sorted(path.name for path in out.iterdir()) == ["sar.json", "sar.pdf"]
    assert done["references"] == [person.original, person.reopened]
    report = json.loads((out / "sar.json").read_text(encoding="utf-8"))
    assert report["reference"] == person.reopened
    assert report["generated_by"] == {"name": COORDINATOR, "role": "coordinator"}
    original, reopened = report["referrals"]
    for record in (original, reopened):
        assert record["personal"] == {
            "full_name": NAME,
            "date_of_birth": BORN.isoformat(),
            "address": ADDRESS,
            "school": None,
        }
        assert record["personal_statement"] is None
    assert (original["linked_from"], original["linked_to"]) == (None, [person.reopened])
    assert (reopened["linked_from"], reopened["linked_to"]) == (person.original, [])
    assert original["referral"]["state"] == lc.CLOSED
    assert original["referral"]["lead"] == LEAD
    assert reopened["referral"]["state"] == lc.PANEL_REVIEW

    assert [e["event"] for e in original["history"]] == ORIGINAL_EVENTS
    assert [e["event"] for e in reopened["history"]] == REOPENED_EVENTS
    adjourn = reopened["history"][-1]
    assert (adjourn["from"], adjourn["to"], adjourn["actor"], adjourn["role"]) == (
        lc.PANEL_REVIEW,
        lc.PANEL_REVIEW,
        CHAIR,
        "chair",
    )
    assert adjourn["reason"] == "school report awaited"
    assert original["history"][1]["data"] == {"outcome": "proceed"}
    assert original["history"][-1]["data"]["new_referral"] == person.reopened
    reviews = {r["months"]: r for r in original["post_exit_reviews"]}
    assert reviews[6]["outcome"] == "re_refer"
    assert reviews[6]["recorded_on"] == "2027-05-27"

    (assigned,) = report["messages"]
    assert assigned["references"] == [person.original]
    assert assigned["kind"] == "case_assigned"
    assert assigned["recipient_role"] == "lead"
    assert assigned["status"] == "queued"
    assert person.original in assigned["subject"]
    assert "body_text" not in assigned

    reads = [(a["reference"], a["actor"], a["action"], a["allowed"]) for a in report["access_log"]]
    assert (person.original, COORDINATOR, "referral.show", True) in reads
    assert (person.reopened, LEAD, "referral.show", False) in reads

    document = pdf_text(out / "sar.pdf")
    for expected in (person.original, person.reopened, NAME, ADDRESS, "school report awaited"):
        assert expected in document
    for event in {*ORIGINAL_EVENTS, *REOPENED_EVENTS}:
        assert event in document
    assert "the case lead was told they lead the case" in document


def test_the_export_is_recorded_in_the_trail_and_the_access_log(
    cli: Cli, person: Person, runtime: Runtime, exports: Path
) -> None:
    before = audit_count(runtime.engine)
    out = exports / "answer"
    done = export(cli, person.original, out)

    digest = hashlib.sha256((out / "sar.json").read_bytes()).hexdigest()
    assert done["sha256"] == digest
    with runtime.engine.connect() as connection:
        event = connection.execute(
            text(
                "SELECT seq, entity_type, entity_id, event, actor, role, data FROM audit_event "
                "ORDER BY seq DESC LIMIT 1"
            )
        ).one()
        logged = connection.execute(
            text(
                "SELECT actor, role, action, entity_type, entity_id, allowed FROM access_log "
                "ORDER BY id DESC LIMIT 1"
            )
        ).one()
    assert event.seq == before + 1 == done["seq"]
    assert (event.entity_type, event.entity_id, event.event, event.actor, event.role) == (
        "sar",
        person.original,
        "subject_access_export",
        COORDINATOR,
        "coordinator",
    )
    assert json.loads(event.data) == {"sha256": digest}
    assert tuple(logged) == (
        COORDINATOR,
        "coordinator",
        "referral.sar",
        "referral",
        person.original,
        True,
    )
    verify_chain(runtime.engine, runtime.key)
    assert cli("audit", "verify").code == 0

    # A second export lists the first.
    second = exports / "again"
    export(cli, person.original, second)
    report = json.loads((second / "sar.json").read_text(encoding="utf-8"))
    (earlier,) = report["referrals"][0]["subject_access_exports"]
    assert earlier["data"] == {"sha256": digest}
    assert ("referral.sar", True) in [(a["action"], a["allowed"]) for a in report["access_log"]]


@pytest.mark.parametrize("who", [POLICE, CHAIR, MEMBER, LEAD, AUDITOR, ADMIN])
def test_only_a_coordinator_may_export_and_a_refusal_is_logged(
    cli: Cli, person: Person, engine: Engine, exports: Path, who: str
) -> None:
    before = audit_count(engine)
    out = exports / "out"
    with clock.frozen_at(LATER):
        refused = cli("sar", person.original, str(out), "--by", who)
    assert refused.code == 4
    assert "may not do referral.sar; only coordinator may" in refused.err
    assert NAME not in refused.out + refused.err
    assert not out.exists()
    assert [p.name for p in exports.iterdir() if p.name.startswith(".")] == []
    assert audit_count(engine) == before
    with engine.connect() as connection:
        denied = connection.execute(
            text(
                "SELECT actor, action, entity_id FROM access_log "
                "WHERE allowed = false AND action = 'referral.sar'"
            )
        ).all()
    assert [tuple(row) for row in denied] == [(who, "referral.sar", person.original)]


def test_the_service_refuses_other_roles(workflow: Workflow, exports: Path) -> None:
    with pytest.raises(PermissionDenied):
        sar.export(workflow, "CF-2026-0001", exports / "out", by=CHAIR)


def test_an_unknown_reference_is_exit_3_and_writes_nothing(
    cli: Cli, engine: Engine, exports: Path
) -> None:
    before = audit_count(engine)
    missing = cli("sar", "CF-2026-9999", str(exports / "out"), "--by", COORDINATOR)
    assert missing.code == 3
    assert "no referral has reference 'CF-2026-9999'" in missing.err
    assert list(exports.iterdir()) == []
    assert audit_count(engine) == before


def test_the_folder_must_be_new_or_empty(cli: Cli, person: Person, exports: Path) -> None:
    used = exports / "used"
    used.mkdir()
    (used / "notes.txt").write_text("keep me", encoding="utf-8")
    refused = cli("sar", person.original, str(used), "--by", COORDINATOR)
    assert refused.code == 2
    assert (
        f"the folder {used} already exists and is not empty; give a new or empty folder"
        in refused.err
    )
    assert [p.name for p in used.iterdir()] == ["notes.txt"]

    a_file = exports / "file"
    a_file.write_text("", encoding="utf-8")
    assert cli("sar", person.original, str(a_file), "--by", COORDINATOR).code == 2
    nowhere = exports / "missing" / "out"
    assert cli("sar", person.original, str(nowhere), "--by", COORDINATOR).code == 2

    empty = exports / "empty"
    empty.mkdir()
    export(cli, person.original, empty)
    assert sorted(p.name for p in empty.iterdir()) == ["sar.json", "sar.pdf"]
    assert sorted(p.name for p in exports.iterdir()) == ["empty", "file", "used"]


def test_a_failure_while_writing_leaves_no_folder_and_no_record(
    cli: Cli,
    person: Person,
    engine: Engine,
    exports: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(report: dict[str, Any]) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sar, "render_pdf", broken)
    before = audit_count(engine)
    with engine.connect() as connection:
        reads = connection.execute(text("SELECT count(*) FROM access_log")).scalar_one()
    failed = cli("sar", person.original, str(exports / "out"), "--by", COORDINATOR)
    assert failed.code == 1
    assert list(exports.iterdir()) == []
    assert audit_count(engine) == before
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM access_log")).scalar_one() == reads


def test_the_export_of_a_purged_referral_says_when_the_details_were_removed(
    cli: Cli, workflow: Workflow, exports: Path
) -> None:
    reference = referral_in(workflow, lc.CLOSED, subject_name=NAME, date_of_birth=BORN)
    purged_at = datetime(2032, 12, 1, 10, tzinfo=UTC)
    with clock.frozen_at(purged_at):
        assert cli("retention", "apply", "--by", ADMIN).code == 0
        done = cli("sar", reference, str(exports / "out"), "--by", COORDINATOR, "--json")
    assert done.code == 0, done.err
    report = json.loads((exports / "out" / "sar.json").read_text(encoding="utf-8"))
    (record,) = report["referrals"]
    assert record["personal"] is None
    assert record["personal_removed"]["on"] == "2032-12-01"
    assert record["personal_removed"]["years"] == 6
    statement = (
        f"The personal details held with {reference} were removed on 2032-12-01 under the "
        "retention policy (6 years after the case closed)."
    )
    assert record["personal_statement"] == statement
    assert [e["event"] for e in record["history"]][-1] == lc.EXIT
    document = pdf_text(exports / "out" / "sar.pdf")
    assert "were removed on 2032-12-01" in document
    assert NAME not in document
    assert NAME not in (exports / "out" / "sar.json").read_text(encoding="utf-8")


def test_agendas_are_listed_by_meeting_without_the_other_cases_on_them(
    cli: Cli, runtime: Runtime, exports: Path
) -> None:
    set_initialised(runtime.engine, local(date(2026, 11, 30), 9))
    cases = Cases(runtime.workflow)
    mine, other = (
        cases.to_panel(date(2026, 12, 1), date(2026, 12, 31), at=local(date(2026, 12, 2), 14))
        for _ in range(2)
    )
    report = plan(make_planner(runtime, config()), local(date(2026, 12, 30), 9))
    assert report.queued["panel_agenda"] == 2  # chris and mel
    with clock.frozen_at(local(date(2027, 1, 5), 9)):
        done = cli("sar", mine, str(exports / "out"), "--by", COORDINATOR)
    assert done.code == 0, done.err
    saved = (exports / "out" / "sar.json").read_text(encoding="utf-8")
    messages = json.loads(saved)["messages"]
    assert sorted((m["kind"], m["recipient_role"]) for m in messages) == [
        ("panel_agenda", "chair"),
        ("panel_agenda", "member"),
    ]
    assert {m["description"] for m in messages} == {
        "listed on the agenda of the panel on 2026-12-31"
    }
    assert other not in saved
    document = pdf_text(exports / "out" / "sar.pdf")
    assert "listed on the agenda of the panel on 2026-12-31" in document
    assert other not in document


def test_text_output_names_the_files(cli: Cli, person: Person, exports: Path) -> None:
    out = exports / "out"
    with clock.frozen_at(LATER):
        done = cli("sar", person.original, str(out), "--by", COORDINATOR)
    assert done.code == 0
    lines = done.out.splitlines()
    assert lines[0].startswith(
        f"wrote the subject access export of {person.original} to {out}: 2 referrals (1 linked), "
        "11 events, 1 emails, "
    )
    assert lines[1:3] == [f"  {out / 'sar.json'}", f"  {out / 'sar.pdf'}"]


def test_names_outside_the_pdf_fonts_are_exact_in_json_and_approximated_in_the_pdf(
    cli: Cli, workflow: Workflow, exports: Path
) -> None:
    name = "Zoë Łukasiewicz-Nguyễn 王"
    reference = referral_in(workflow, lc.RECEIVED, subject_name=name)
    at = datetime.combine(date(2026, 11, 28), time(13), UTC) + timedelta(minutes=1)
    with clock.frozen_at(at):
        assert cli("sar", reference, str(exports / "out"), "--by", COORDINATOR).code == 0
    report = json.loads((exports / "out" / "sar.json").read_text(encoding="utf-8"))
    assert report["referrals"][0]["personal"]["full_name"] == name
    assert safe_text(name) == "Zoë Lukasiewicz-Nguyên ?"
    assert "Zoë Lukasiewicz-Nguyên ?" in pdf_text(exports / "out" / "sar.pdf")
