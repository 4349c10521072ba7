"""`channelflow panel|board list|add|move|cancel|agenda` as a coordinator types them.

The clock is pinned to Monday 2 November 2026, 09:00 (GMT): the next panel is on the last
Thursday, 26 November 2026 at 10:00; the next board on the second Wednesday of January,
13 January 2027 at 14:00.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from channelflow import clock
from channelflow.store.db import open_engine
from tests.cli_helpers import Cli, Outcome

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
STAFF = (
    ("pat", "police"),
    ("cora", "coordinator"),
    ("chris", "chair"),
    ("mel", "member"),
    ("lee", "lead"),
    ("ada", "auditor"),
)
ROLE = dict(STAFF)
BODY_NAME = {"panel": "Channel panel", "board": "Strategic Prevent Board"}
PANEL_DAYS = [
    "2026-11-26",
    "2026-12-31",
    "2027-01-28",
    "2027-02-25",
    "2027-03-25",
    "2027-04-29",
    "2027-05-27",
    "2027-06-24",
    "2027-07-29",
    "2027-08-26",
    "2027-09-30",
    "2027-10-28",
]
BOARD_DAYS = ["2027-01-13", "2027-04-14", "2027-07-14", "2027-10-13"]


def rule_meeting(body: str, day: str, starts_at: str) -> dict[str, Any]:
    return {
        "body": body,
        "date": day,
        "starts_at": starts_at,
        "uid": f"{body}-{day}@channelflow",
        "sequence": 0,
        "status": "scheduled",
        "origin": "rule",
        "rule_date": None,
    }


class Database:
    """Reads the tables the commands write, to check what they did (or did not) change."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query)).all()]

    def meeting_events(self) -> list[tuple[Any, ...]]:
        return self.rows(
            "SELECT entity_type, entity_id, event, actor, role FROM audit_event "
            "WHERE entity_type = 'meeting' ORDER BY seq"
        )

    def meeting_event_data(self) -> list[dict[str, Any]]:
        found = self.rows("SELECT data FROM audit_event WHERE entity_type = 'meeting' ORDER BY seq")
        return [json.loads(data) for (data,) in found]

    def audit_count(self) -> int:
        return int(self.rows("SELECT count(*) FROM audit_event")[0][0])

    def denials(self) -> list[tuple[Any, ...]]:
        return [
            (actor, role, action, bool(allowed))
            for actor, role, action, allowed in self.rows(
                "SELECT actor, role, action, allowed FROM access_log "
                "WHERE allowed = false ORDER BY id"
            )
        ]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path) -> Cli:
    clock.set_now(NOW)
    command = Cli(capsys, database_url, tmp_path / "audit.key")
    assert command("init").code == 0
    for name, role in STAFF:
        assert command("user", "add", name, "--role", role, "--by", "admin").code == 0
    return command


@pytest.fixture
def db(cli: Cli, database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.engine.dispose()


def listed(cli: Cli, body: str, *args: str) -> list[dict[str, Any]]:
    outcome = cli(body, "list", "--json", *args)
    assert outcome.code == 0, outcome.err
    result: list[dict[str, Any]] = outcome.json()
    return result


def ok(outcome: Outcome) -> Any:
    assert outcome.code == 0, outcome.err
    assert outcome.err == ""
    return outcome.json()


def one_line_error(outcome: Outcome, code: int, phrase: str) -> None:
    assert outcome.code == code, (outcome.out, outcome.err)
    assert outcome.err.startswith("channelflow: error: ")
    assert phrase in outcome.err
    assert outcome.err.count("\n") == 1
    assert outcome.out == ""


def panel_case(cli: Cli) -> str:
    """A referral sent to the next panel (26 November 2026) by the gateway."""
    added = cli(
        *("referral", "add", "--received", "2026-11-02", "--sector", "education"),
        *("--concern", "extreme_right_wing", "--subject-name", "Zebedee Quillfeather"),
        *("--dob", "1990-02-03", "--by", "cora", "--json"),
    )
    reference = str(ok(added)["reference"])
    screen = ("referral", "fire", reference, "screen", "--set", "outcome=proceed")
    assert cli(*screen, "--by", "pat").code == 0
    assert cli("referral", "fire", reference, "refer_to_panel", "--by", "cora").code == 0
    return reference


# list -------------------------------------------------------------------------------


def test_panel_list_json_is_a_year_of_last_thursdays_from_today(cli: Cli) -> None:
    meetings = listed(cli, "panel")
    assert [m["date"] for m in meetings] == PANEL_DAYS
    assert meetings[0] == rule_meeting("panel", "2026-11-26", "2026-11-26T10:00:00+00:00")
    # Summer meetings keep their wall-clock time: 10:00 BST.
    assert meetings[5] == rule_meeting("panel", "2027-04-29", "2027-04-29T10:00:00+01:00")


def test_board_list_json_is_the_second_wednesday_of_each_quarter(cli: Cli) -> None:
    meetings = listed(cli, "board")
    assert [m["date"] for m in meetings] == BOARD_DAYS
    assert meetings[0] == rule_meeting("board", "2027-01-13", "2027-01-13T14:00:00+00:00")
    assert meetings[1]["starts_at"] == "2027-04-14T14:00:00+01:00"


def test_the_default_range_starts_today_and_includes_a_meeting_today(cli: Cli) -> None:
    clock.set_now(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))  # after that day's panel began
    assert listed(cli, "panel")[0]["date"] == "2026-11-26"
    clock.set_now(datetime(2026, 11, 27, 0, 30, tzinfo=UTC))
    assert listed(cli, "panel")[0]["date"] == "2026-12-31"


def test_from_and_to_bound_the_list_both_included(cli: Cli) -> None:
    dates = [m["date"] for m in listed(cli, "panel", "--from", "2026-12-31", "--to", "2027-02-25")]
    assert dates == ["2026-12-31", "2027-01-28", "2027-02-25"]
    assert listed(cli, "panel", "--from", "2026-12-01", "--to", "2026-12-30") == []
    past = listed(cli, "board", "--from", "2026-01-01", "--to", "2026-12-31")
    assert [m["date"] for m in past] == ["2026-01-14", "2026-04-08", "2026-07-08", "2026-10-14"]


def test_from_alone_lists_a_year_from_that_day(cli: Cli) -> None:
    dates = [m["date"] for m in listed(cli, "board", "--from", "2027-04-14")]
    assert dates == ["2027-04-14", "2027-07-14", "2027-10-13", "2028-01-12", "2028-04-12"]


@pytest.mark.parametrize(
    "args",
    [
        ("--from", "2027-01-02", "--to", "2027-01-01"),
        ("--to", "2026-11-01"),  # before today, the default --from
    ],
)
def test_to_before_from_is_bad_input(cli: Cli, args: tuple[str, ...]) -> None:
    one_line_error(cli("panel", "list", "--json", *args), 2, "--to is before --from")


def test_the_table_lists_the_same_meetings(cli: Cli) -> None:
    table = cli("panel", "list", "--to", "2026-12-31")
    assert table.code == 0
    assert "2026-11-26" in table.out
    assert "2026-12-31" in table.out
    assert "2027-01-28" not in table.out


# add --------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["panel", "board"])
@pytest.mark.parametrize("by", ["cora", "chris"])
def test_a_coordinator_or_chair_adds_a_meeting(cli: Cli, db: Database, body: str, by: str) -> None:
    added = ok(cli(body, "add", "2026-12-10T10:00", "--by", by, "--json"))
    uid = f"{body}-added-2026-12-10@channelflow"
    expected = {
        "body": body,
        "date": "2026-12-10",
        "starts_at": "2026-12-10T10:00:00+00:00",
        "uid": uid,
        "sequence": 0,
        "status": "scheduled",
        "origin": "added",
        "rule_date": None,
    }
    assert added == expected
    assert listed(cli, body, "--from", "2026-12-10", "--to", "2026-12-10") == [expected]
    assert db.meeting_events() == [("meeting", uid, "add_meeting", by, ROLE[by])]
    assert db.meeting_event_data() == [
        {"body": body, "starts_at": "2026-12-10T10:00:00+00:00", "sequence": 0}
    ]
    verified = cli("audit", "verify", "--json")
    assert verified.code == 0
    assert verified.json()["ok"] is True


def test_add_says_what_it_did_in_words(cli: Cli) -> None:
    outcome = cli("board", "add", "2027-06-09T09:30", "--by", "cora")
    assert outcome.code == 0, outcome.err
    assert outcome.out == (
        "added the Strategic Prevent Board meeting on Wednesday 9 June 2027 at 09:30 "
        "(invitation sequence 0)\n"
    )


def test_a_time_with_an_offset_is_kept_as_that_instant(cli: Cli) -> None:
    added = ok(cli("panel", "add", "2027-06-10T09:00+00:00", "--by", "cora", "--json"))
    assert added["starts_at"] == "2027-06-10T10:00:00+01:00"
    assert added["date"] == "2027-06-10"


def test_the_panel_and_the_board_may_meet_on_the_same_day(cli: Cli) -> None:
    added = ok(cli("board", "add", "2026-11-26T14:00", "--by", "cora", "--json"))
    assert added["uid"] == "board-added-2026-11-26@channelflow"
    assert listed(cli, "panel", "--to", "2026-11-26")[0]["status"] == "scheduled"


@pytest.mark.parametrize(
    ("when", "code", "phrase"),
    [
        ("2026-11-26T15:00", 2, "already a panel meeting on 2026-11-26"),
        ("2026-11-01T10:00", 2, "in the future"),
        ("2026-11-02T08:59", 2, "in the future"),
    ],
)
def test_adding_where_it_cannot_be_changes_nothing(
    cli: Cli, db: Database, when: str, code: int, phrase: str
) -> None:
    before = listed(cli, "panel", "--from", "2026-11-01")
    one_line_error(cli("panel", "add", when, "--by", "cora"), code, phrase)
    assert listed(cli, "panel", "--from", "2026-11-01") == before
    assert db.meeting_events() == []


# move -------------------------------------------------------------------------------


def test_move_keeps_the_uid_and_bumps_the_sequence(cli: Cli, db: Database) -> None:
    moved = ok(cli("panel", "move", "2026-11-26", "2026-11-27T14:00", "--by", "chris", "--json"))
    assert moved == {
        "body": "panel",
        "date": "2026-11-27",
        "starts_at": "2026-11-27T14:00:00+00:00",
        "uid": "panel-2026-11-26@channelflow",
        "sequence": 1,
        "status": "scheduled",
        "origin": "moved",
        "rule_date": "2026-11-26",
    }
    assert [m["date"] for m in listed(cli, "panel", "--to", "2026-12-31")] == [
        "2026-11-27",
        "2026-12-31",
    ]
    # Moved again, back to its rule day at another time: still one meeting, one UID.
    again = ok(cli("panel", "move", "2026-11-27", "2026-11-26T09:00", "--by", "cora", "--json"))
    assert (again["uid"], again["sequence"], again["date"]) == (
        "panel-2026-11-26@channelflow",
        2,
        "2026-11-26",
    )
    assert [m["starts_at"] for m in listed(cli, "panel", "--to", "2026-11-30")] == [
        "2026-11-26T09:00:00+00:00"
    ]
    uid = "panel-2026-11-26@channelflow"
    assert db.meeting_events() == [
        ("meeting", uid, "move_meeting", "chris", "chair"),
        ("meeting", uid, "move_meeting", "cora", "coordinator"),
    ]
    assert db.meeting_event_data()[0] == {
        "body": "panel",
        "starts_at": "2026-11-27T14:00:00+00:00",
        "previous_starts_at": "2026-11-26T10:00:00+00:00",
        "sequence": 1,
        "rule_date": "2026-11-26",
    }
    assert cli("audit", "verify").code == 0


def test_move_says_what_it_did_in_words(cli: Cli) -> None:
    outcome = cli("board", "move", "2027-01-13", "2027-01-20T10:00", "--by", "chris")
    assert outcome.code == 0, outcome.err
    assert outcome.out == (
        "moved the Strategic Prevent Board meeting on Wednesday 20 January 2027 at 10:00 "
        "(invitation sequence 1)\n"
    )


def test_a_moved_added_meeting_keeps_its_added_uid(cli: Cli) -> None:
    ok(cli("panel", "add", "2026-12-10T10:00", "--by", "cora", "--json"))
    moved = ok(cli("panel", "move", "2026-12-10", "2026-12-11T10:00", "--by", "cora", "--json"))
    assert (moved["uid"], moved["sequence"], moved["origin"]) == (
        "panel-added-2026-12-10@channelflow",
        1,
        "added",
    )


@pytest.mark.parametrize(
    ("day", "when", "code", "phrase"),
    [
        ("2026-11-26", "2026-11-01T10:00", 2, "in the future"),
        ("2026-11-26", "2026-12-31T15:00", 2, "already a panel meeting on 2026-12-31"),
        ("2026-11-25", "2026-11-27T10:00", 3, "no panel meeting is on 2026-11-25"),
        ("2026-11-26", "2026-11-26T10:00", 2, "already starts at that time"),
    ],
)
def test_a_move_that_cannot_be_done_changes_nothing(
    cli: Cli, db: Database, day: str, when: str, code: int, phrase: str
) -> None:
    before = listed(cli, "panel")
    one_line_error(cli("panel", "move", day, when, "--by", "cora"), code, phrase)
    assert listed(cli, "panel") == before
    assert db.meeting_events() == []


def test_a_meeting_that_has_started_cannot_be_moved_or_cancelled(cli: Cli, db: Database) -> None:
    clock.set_now(datetime(2026, 11, 26, 10, 30, tzinfo=UTC))
    moving = cli("panel", "move", "2026-11-26", "2026-11-27T10:00", "--by", "cora")
    one_line_error(moving, 2, "the panel meeting on 2026-11-26 has already started")
    one_line_error(cli("panel", "cancel", "2026-11-26", "--by", "cora"), 2, "already started")
    assert db.meeting_events() == []


# cancel and reinstate ---------------------------------------------------------------


def test_cancel_shows_the_meeting_as_cancelled(cli: Cli, db: Database) -> None:
    cancelled = ok(cli("panel", "cancel", "2026-12-31", "--by", "cora", "--json"))
    expected = {
        "body": "panel",
        "date": "2026-12-31",
        "starts_at": "2026-12-31T10:00:00+00:00",
        "uid": "panel-2026-12-31@channelflow",
        "sequence": 1,
        "status": "cancelled",
        "origin": "cancelled",
        "rule_date": "2026-12-31",
    }
    assert cancelled == expected
    assert listed(cli, "panel", "--from", "2026-12-31", "--to", "2026-12-31") == [expected]
    assert db.meeting_events() == [
        ("meeting", "panel-2026-12-31@channelflow", "cancel_meeting", "cora", "coordinator")
    ]
    # Cancelled, it is no longer a meeting to cancel, move or preview.
    one_line_error(cli("panel", "cancel", "2026-12-31", "--by", "cora"), 3, "no panel meeting")
    moving = cli("panel", "move", "2026-12-31", "2027-01-05T10:00", "--by", "cora")
    one_line_error(moving, 3, "no panel meeting is on 2026-12-31")
    one_line_error(
        cli("panel", "agenda", "--by", "mel", "--date", "2026-12-31"), 3, "no panel meeting"
    )
    assert len(db.meeting_events()) == 1
    assert cli("audit", "verify").code == 0


def test_cancel_says_what_it_did_in_words(cli: Cli) -> None:
    outcome = cli("panel", "cancel", "2026-11-26", "--by", "chris")
    assert outcome.code == 0, outcome.err
    assert outcome.out == (
        "cancelled the Channel panel meeting on Thursday 26 November 2026 at 10:00 "
        "(invitation sequence 1)\n"
    )


def test_adding_on_a_cancelled_day_reinstates_that_meeting(cli: Cli, db: Database) -> None:
    ok(cli("panel", "cancel", "2026-12-31", "--by", "cora", "--json"))
    reinstated = ok(cli("panel", "add", "2026-12-31T11:00", "--by", "chris", "--json"))
    assert reinstated["uid"] == "panel-2026-12-31@channelflow"
    assert reinstated["sequence"] == 2
    assert reinstated["status"] == "scheduled"
    assert reinstated["starts_at"] == "2026-12-31T11:00:00+00:00"
    on_the_day = listed(cli, "panel", "--from", "2026-12-31", "--to", "2026-12-31")
    assert [(m["uid"], m["status"]) for m in on_the_day] == [
        ("panel-2026-12-31@channelflow", "scheduled")
    ]
    assert [event for _, _, event, _, _ in db.meeting_events()] == [
        "cancel_meeting",
        "reinstate_meeting",
    ]
    assert db.meeting_event_data()[1]["previous_starts_at"] == "2026-12-31T10:00:00+00:00"


def test_an_added_meeting_cancelled_and_added_again_is_the_same_meeting(cli: Cli) -> None:
    ok(cli("board", "add", "2026-12-09T14:00", "--by", "cora", "--json"))
    ok(cli("board", "cancel", "2026-12-09", "--by", "cora", "--json"))
    again = ok(cli("board", "add", "2026-12-09T15:00", "--by", "cora", "--json"))
    assert (again["uid"], again["sequence"], again["status"]) == (
        "board-added-2026-12-09@channelflow",
        2,
        "scheduled",
    )
    assert len(listed(cli, "board", "--from", "2026-12-09", "--to", "2026-12-09")) == 1


# who may change meetings --------------------------------------------------------------

CHANGES = {
    "add": ("2026-12-10T10:00",),
    "move": ("2026-11-26", "2026-11-27T10:00"),
    "cancel": ("2026-11-26",),
}


@pytest.mark.parametrize("by", ["mel", "lee", "pat", "ada"])
@pytest.mark.parametrize("change", ["add", "move", "cancel"])
def test_only_a_coordinator_or_chair_may_change_meetings(
    cli: Cli, db: Database, by: str, change: str
) -> None:
    before, audited = listed(cli, "panel"), db.audit_count()
    outcome = cli("panel", change, *CHANGES[change], "--by", by)
    one_line_error(outcome, 4, f"{by} ({ROLE[by]}) may not do panel.{change}")
    assert listed(cli, "panel") == before
    assert db.audit_count() == audited
    assert db.meeting_events() == []
    assert db.denials() == [(by, ROLE[by], f"panel.{change}", False)]


def test_board_changes_are_refused_to_a_member_too(cli: Cli, db: Database) -> None:
    before = listed(cli, "board")
    outcome = cli("board", "move", "2027-01-13", "2027-01-14T14:00", "--by", "mel")
    one_line_error(outcome, 4, "may not do board.move")
    assert listed(cli, "board") == before
    assert db.denials() == [("mel", "member", "board.move", False)]


def test_the_admin_may_not_change_meetings(cli: Cli, db: Database) -> None:
    one_line_error(cli("board", "cancel", "2027-01-13", "--by", "admin"), 4, "may not")
    assert db.denials() == [("admin", "admin", "board.cancel", False)]


def test_changing_a_meeting_needs_a_known_user(cli: Cli, db: Database) -> None:
    one_line_error(cli("panel", "cancel", "2026-11-26"), 2, "--by")
    one_line_error(cli("panel", "cancel", "2026-11-26", "--by", "nobody"), 3, "no user")
    assert db.meeting_events() == []
    assert listed(cli, "panel")[0]["status"] == "scheduled"


def test_the_acting_user_may_come_from_the_environment(
    cli: Cli, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANNELFLOW_USER", "chris")
    assert cli("panel", "cancel", "2026-11-26").code == 0
    assert db.meeting_events()[0][3] == "chris"


# agenda -----------------------------------------------------------------------------


def test_panel_agenda_json_lists_the_next_meetings_cases(cli: Cli) -> None:
    reference = panel_case(cli)
    agenda = ok(cli("panel", "agenda", "--by", "mel", "--json"))
    assert agenda == {
        "meeting": rule_meeting("panel", "2026-11-26", "2026-11-26T10:00:00+00:00"),
        "new_cases": [reference],
        "adjourned": [],
        "reviews_due": [],
        "post_exit_reviews": [],
        "counts_by_state": {"panel_review": 1},
    }
    # The same agenda by date; the one after it has nothing new.
    assert ok(cli("panel", "agenda", "--by", "mel", "--date", "2026-11-26", "--json")) == agenda
    later = ok(cli("panel", "agenda", "--by", "mel", "--date", "2026-12-31", "--json"))
    assert later["meeting"]["date"] == "2026-12-31"
    assert later["new_cases"] == []


def test_panel_agenda_in_words_names_cases_by_reference_only(cli: Cli) -> None:
    reference = panel_case(cli)
    outcome = cli("panel", "agenda", "--by", "mel")
    assert outcome.code == 0, outcome.err
    lines = outcome.out.splitlines()
    assert lines[0] == "Channel panel, Thursday 26 November 2026 at 10:00"
    assert f"new cases: {reference}" in lines
    assert "cases by state: panel_review 1" in lines
    assert "Zebedee" not in outcome.out


def test_board_agenda_json_is_an_aggregate_summary(cli: Cli) -> None:
    panel_case(cli)
    summary = ok(cli("board", "agenda", "--json"))
    assert summary["meeting"] == rule_meeting("board", "2027-01-13", "2027-01-13T14:00:00+00:00")
    # From where the previous summary stopped (its reminder went on Wednesday 7 October 2026,
    # five working days before the board of 14 October) to the day before this one goes
    # (Wednesday 6 January 2027, five working days before 13 January).
    assert (summary["period_from"], summary["period_to"]) == ("2026-10-07", "2027-01-05")
    assert summary["referrals_by_sector"] == {"education": 1}
    assert summary["cases_by_state"] == {
        "received": 0,
        "screened": 0,
        "panel_review": 1,
        "accepted": 0,
        "declined": 0,
        "intervention": 0,
        "closed": 0,
    }
    assert summary["overdue_reviews"] == 0
    assert set(summary) == {
        "meeting",
        "period_from",
        "period_to",
        "referrals_by_sector",
        "referrals_by_outcome",
        "cases_by_state",
        "overdue_reviews",
        "ratings_by_colour",
    }
    assert "Zebedee" not in json.dumps(summary)


def test_agenda_count_fields_are_json_objects_even_when_empty(cli: Cli) -> None:
    # A script reads each count field as {name: count}; an empty one must not turn into [].
    panel = ok(cli("panel", "agenda", "--by", "mel", "--json"))
    assert panel["counts_by_state"] == {}
    board = ok(cli("board", "agenda", "--json"))
    assert board["referrals_by_sector"] == {}
    assert board["referrals_by_outcome"] == {}
    assert board["ratings_by_colour"] == {}


def test_agenda_follows_a_moved_meeting(cli: Cli) -> None:
    ok(cli("panel", "move", "2026-11-26", "2026-11-24T10:00", "--by", "cora", "--json"))
    agenda = ok(cli("panel", "agenda", "--by", "mel", "--json"))
    assert agenda["meeting"]["date"] == "2026-11-24"
    assert agenda["meeting"]["sequence"] == 1
    one_line_error(
        cli("panel", "agenda", "--by", "mel", "--date", "2026-11-26"), 3, "no panel meeting"
    )


def test_agenda_for_a_day_without_a_meeting_is_not_found(cli: Cli) -> None:
    one_line_error(cli("board", "agenda", "--date", "2027-01-14"), 3, "no board meeting is on")


def test_agenda_sends_nothing(cli: Cli, db: Database) -> None:
    panel_case(cli)
    queued = db.rows("SELECT count(*) FROM outbox")[0][0]
    assert cli("panel", "agenda", "--by", "mel").code == 0
    assert cli("board", "agenda", "--json").code == 0
    assert db.rows("SELECT count(*) FROM outbox")[0][0] == queued
    assert db.rows("SELECT count(*) FROM meeting_notice")[0][0] == 0


# bad dates --------------------------------------------------------------------------

BAD_DATES = [
    (("panel", "list", "--from", "2026-13-01"), "--from must be a date"),
    (("panel", "list", "--to", "tomorrow"), "--to must be a date"),
    (("board", "list", "--from", "01/12/2026"), "--from must be a date"),
    (("panel", "agenda", "--date", "2026-02-30"), "--date must be a date"),
    (("panel", "add", "tomorrow", "--by", "cora"), "the meeting time must be a date"),
    (("panel", "add", "2026-12-10T25:00", "--by", "cora"), "the meeting time must be a date"),
    (("board", "move", "tomorrow", "2027-01-14T14:00", "--by", "cora"), "the meeting date"),
    (("board", "move", "2027-01-13", "2026-13-01T10:00", "--by", "cora"), "the new meeting time"),
    (("panel", "cancel", "2026-13-01", "--by", "cora"), "the meeting date must be a date"),
    (("panel", "add", "1899-12-31T10:00", "--by", "cora"), "before 1900"),
]


@pytest.mark.parametrize(("args", "phrase"), BAD_DATES)
def test_a_bad_date_is_one_line_of_bad_input(
    cli: Cli, db: Database, args: tuple[str, ...], phrase: str
) -> None:
    audited = db.audit_count()
    one_line_error(cli(*args), 2, phrase)
    assert db.audit_count() == audited
    assert db.denials() == []


@pytest.mark.parametrize(
    "args",
    [
        ("panel", "list", "--from", "9999-12-01"),
        ("panel", "add", "9999-12-31T23:00-05:00", "--by", "cora"),
    ],
)
def test_dates_at_the_end_of_the_calendar_are_bad_input_not_a_crash(
    cli: Cli, args: tuple[str, ...]
) -> None:
    outcome = cli(*args)
    assert outcome.code == 2, outcome.err
    assert outcome.err.count("\n") == 1


def test_a_panel_agenda_is_shown_only_to_case_readers_and_each_look_is_logged(
    cli: Cli, db: Database
) -> None:
    # The agenda lists case references: need-to-know, like `referral list`.
    one_line_error(cli("panel", "agenda"), 2, "--by")
    one_line_error(cli("panel", "agenda", "--by", "admin"), 4, "may not do panel.agenda")
    assert db.denials() == [("admin", "admin", "panel.agenda", False)]
    assert cli("panel", "agenda", "--by", "mel").code == 0
    looks = db.rows("SELECT actor, action FROM access_log WHERE allowed = true ORDER BY id")
    assert looks == [("mel", "panel.agenda")]
    # A board summary is counts only: anyone may preview it.
    assert cli("board", "agenda").code == 0
