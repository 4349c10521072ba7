"""The Prevent duty toolkit self-assessment: loading, rating, actions and their reviews."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from channelflow import clock
from channelflow.exceptions import InvalidInput, NotFound, PermissionDenied, Refused
from channelflow.runtime import Runtime
from channelflow.toolkit import Toolkit, due_actions, next_review, ratings_by_colour
from channelflow.workflow.engine import Workflow
from tests.cli_helpers import Cli
from tests.factories import CHAIR, COORDINATOR, LEAD, MEMBER

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "toolkit-2019.toml"
# A day soon after the report (4 July 2019), before the October 2019 reviews.
AFTER_REPORT = datetime(2019, 7, 10, 9, 0, tzinfo=UTC)
REPORT_RATINGS = {
    "local-risk-assessment": "green",
    "multi-agency-partnership-board": "amber",
    "prevent-partnership-action-plan": "green",
    "referral-process": "green",
    "channel-panel": "amber",
    "prevent-problem-solving-process": "green",
    "training-programme": "red",
    "venue-hire": "amber",
    "community-engagement": "amber",
    "communications": "green",
}
REFERRAL_REVIEW, PANEL_REVIEW = 4, 5  # the example's October 2019 process reviews, by id


@pytest.fixture(autouse=True)
def _after_the_report() -> Iterator[None]:
    with clock.frozen_at(AFTER_REPORT):
        yield


@pytest.fixture
def toolkit(workflow: Workflow) -> Toolkit:
    return Toolkit(workflow)


@pytest.fixture
def loaded(toolkit: Toolkit) -> Toolkit:
    toolkit.load(EXAMPLE, default_owner=COORDINATOR, by=COORDINATOR)
    return toolkit


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], runtime: Runtime, database_url: str) -> Cli:
    return Cli(capsys, database_url, runtime.settings.key_file)


def audit_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT entity_type, entity_id, event, actor, role, reason, data "
                "FROM audit_event ORDER BY seq"
            )
        ).all()
    return [{**row._mapping, "data": json.loads(row.data)} for row in rows]


def toolkit_audit(engine: Engine) -> list[tuple[str, str]]:
    return [
        (r["entity_id"], r["event"]) for r in audit_rows(engine) if r["entity_type"] == "toolkit"
    ]


def stored(engine: Engine) -> tuple[list[Any], list[Any], list[Any], int]:
    """Everything the toolkit keeps, and the length of the audit trail."""
    with engine.connect() as connection:
        return (
            [tuple(r) for r in connection.execute(text("SELECT * FROM toolkit_benchmark"))],
            [tuple(r) for r in connection.execute(text("SELECT * FROM toolkit_action"))],
            [
                tuple(r)
                for r in connection.execute(
                    text("SELECT value FROM channelflow_meta WHERE key = 'toolkit_scale'")
                )
            ],
            connection.execute(text("SELECT count(*) FROM audit_event")).scalar_one(),
        )


def by_key(benchmarks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {b["key"]: b for b in benchmarks}


def write(tmp_path: Path, body: str, name: str = "toolkit.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


# Loading ----------------------------------------------------------------------------------


def test_the_2019_example_loads_the_reports_ten_benchmarks_with_their_ratings(
    cli: Cli, engine: Engine
) -> None:
    loaded = cli(
        "toolkit", "load", str(EXAMPLE), "--default-owner", COORDINATOR, "--by", COORDINATOR
    )
    assert loaded.code == 0, loaded.err
    assert "loaded 10 benchmarks and 8 actions" in loaded.out
    listed = cli("toolkit", "list", "--json")
    assert listed.code == 0, listed.err
    benchmarks = listed.json()
    assert [b["key"] for b in benchmarks] == list(REPORT_RATINGS)
    assert [b["position"] for b in benchmarks] == list(range(1, 11))
    assert {b["key"]: b["rating"] for b in benchmarks} == REPORT_RATINGS
    for benchmark in benchmarks:
        assert set(benchmark) == {"key", "name", "position", "rating", "comment", "actions"}
        for action in benchmark["actions"]:
            assert set(action) == {"id", "text", "owner", "review_on", "completed_on"}
            # The report names no owners, so the file's placeholder went to the default.
            assert action["owner"] == COORDINATOR
    kit = by_key(benchmarks)
    assert kit["channel-panel"]["name"] == "Channel Panel"
    assert kit["channel-panel"]["comment"].endswith("monthly meetings in place from 29/3/19")
    reviews = {b["key"]: a["review_on"] for b in benchmarks for a in b["actions"] if a["review_on"]}
    assert reviews == {"referral-process": "2019-10-01", "channel-panel": "2019-10-01"}
    assert kit["local-risk-assessment"]["actions"][0]["completed_on"] == "2019-07-04"
    for empty in ("prevent-problem-solving-process", "communications"):
        assert kit[empty]["actions"] == []
    assert cli("audit", "verify").code == 0
    events = toolkit_audit(engine)
    assert events[0] == ("toolkit", "load_toolkit")
    assert events.count(("channel-panel", "add_benchmark")) == 1
    assert sum(1 for _, event in events if event == "add_action") == 8


def test_the_table_listing_shows_benchmarks_and_actions(cli: Cli, loaded: Toolkit) -> None:
    listed = cli("toolkit", "list")
    assert listed.code == 0, listed.err
    assert "Prevent problem solving process" in listed.out
    assert "6 month review of revised process in Oct 19" in listed.out


def test_an_owner_who_is_a_user_keeps_the_action(toolkit: Toolkit, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[benchmark]]\nkey = "venue-hire"\nname = "Venue Hire"\nrating = "Amber"\n'
        '[[benchmark.action]]\ntext = "Promote"\nowner = "lee"\nreview_on = "2019-11-01"\n'
        '[[benchmark.action]]\ntext = "Cascade"\nowner = "venue-officer"\n',
    )
    loaded = toolkit.load(path, default_owner=CHAIR, by=CHAIR)
    assert (loaded.benchmarks, loaded.actions, loaded.defaulted) == (1, 2, 1)
    [benchmark] = toolkit.list()
    assert benchmark["rating"] == "amber"
    assert [(a["owner"], a["review_on"]) for a in benchmark["actions"]] == [
        (LEAD, date(2019, 11, 1)),
        (CHAIR, None),
    ]


def test_a_file_whose_owners_are_all_users_needs_no_default_owner(
    toolkit: Toolkit, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "red"\n'
        '[[benchmark.action]]\ntext = "Do it"\nowner = "cora"\n',
    )
    assert toolkit.load(path, default_owner=None, by=COORDINATOR).defaulted == 0


def test_loading_a_second_time_is_refused_and_changes_nothing(
    cli: Cli, loaded: Toolkit, engine: Engine
) -> None:
    before = stored(engine)
    again = cli("toolkit", "load", str(EXAMPLE), "--default-owner", CHAIR, "--by", CHAIR)
    assert again.code == 4
    assert "already loaded" in again.err
    assert stored(engine) == before


def test_only_a_coordinator_or_chair_may_load_and_a_refusal_is_logged(
    cli: Cli, engine: Engine
) -> None:
    before = stored(engine)
    refused = cli("toolkit", "load", str(EXAMPLE), "--default-owner", LEAD, "--by", MEMBER)
    assert refused.code == 4
    assert "mel (member) may not do toolkit.load" in refused.err
    assert stored(engine) == before
    with engine.connect() as connection:
        denied = connection.execute(
            text("SELECT actor, action FROM access_log WHERE allowed = false")
        ).all()
    assert [tuple(row) for row in denied] == [(MEMBER, "toolkit.load")]


BAD_FILES = [
    ("not toml", "[[benchmark]\nkey =", "is not valid TOML"),
    ("unknown top field", 'colour = "red"\n', "unknown field 'colour'"),
    (
        "unknown benchmark field",
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "red"\nowner = "x"\n',
        "benchmark 'a': unknown field 'owner'",
    ),
    (
        "unknown action field",
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "red"\n'
        '[[benchmark.action]]\ntext = "t"\ndue = 2019-10-01\n',
        "benchmark 'a': action 1: unknown field 'due'",
    ),
    (
        "rating off the scale",
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "purple"\n',
        "benchmark 'a': rating: 'purple' is not a rating; use one of: red, amber, green",
    ),
    (
        "rating off a declared scale",
        'scale = ["not met", "met", "exceeding"]\n'
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "green"\n',
        "use one of: not met, met, exceeding",
    ),
    (
        "duplicate key",
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "red"\n'
        '[[benchmark]]\nkey = "a"\nname = "B"\nrating = "red"\n',
        "benchmark key 'a' appears twice",
    ),
    ("no benchmarks", 'scale = ["red", "green"]\n', "declares no [[benchmark]] tables"),
    (
        "missing rating",
        '[[benchmark]]\nkey = "a"\nname = "A"\n',
        "benchmark 'a': rating is missing",
    ),
    (
        "bad key",
        '[[benchmark]]\nkey = "Local Risk"\nname = "A"\nrating = "red"\n',
        "benchmark 1: a benchmark key must be",
    ),
    (
        "reserved key",
        '[[benchmark]]\nkey = "action-1"\nname = "A"\nrating = "red"\n',
        "is reserved",
    ),
    (
        "rating not text",
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = 3\n',
        "benchmark 'a': rating must be a string",
    ),
    (
        "date-time review",
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "red"\n'
        '[[benchmark.action]]\ntext = "t"\nreview_on = 2019-10-01T10:00:00\n',
        "action 1: review_on must be a date",
    ),
    (
        "completed and reviewed",
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "red"\n'
        '[[benchmark.action]]\ntext = "t"\nreview_on = 2019-10-01\ncompleted_on = 2019-07-01\n',
        "a completed action has no review_on",
    ),
    (
        "completed in the future",
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "red"\n'
        '[[benchmark.action]]\ntext = "t"\ncompleted_on = 2019-08-01\n',
        "action 1: completed_on is in the future",
    ),
    (
        "action too long",
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "red"\n'
        f'[[benchmark.action]]\ntext = "{"x" * 201}"\n',
        "action 1: text is longer than 200 characters",
    ),
    (
        "scale repeats",
        'scale = ["red", "Red"]\n[[benchmark]]\nkey = "a"\nname = "A"\nrating = "red"\n',
        "scale lists 'red' twice",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_a_bad_file_is_refused_naming_the_file_and_nothing_is_written(
    cli: Cli, engine: Engine, tmp_path: Path, body: str, message: str
) -> None:
    path = write(tmp_path, body)
    before = stored(engine)
    outcome = cli("toolkit", "load", str(path), "--default-owner", CHAIR, "--by", CHAIR)
    assert outcome.code == 2, outcome.err
    assert outcome.err.startswith("channelflow: error: ")
    assert outcome.err.count("error:") == 1
    assert str(path) in outcome.err
    assert message in outcome.err
    assert stored(engine) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--default-owner", "nobody"), "the default owner 'nobody' is not a user"),
        ((), "action 1 names owner 'prevent-lead', who is not a user; give a default owner"),
    ],
    ids=["unknown default owner", "no default owner"],
)
def test_owners_that_cannot_be_resolved_refuse_the_load(
    cli: Cli, engine: Engine, extra: tuple[str, ...], message: str
) -> None:
    before = stored(engine)
    outcome = cli("toolkit", "load", str(EXAMPLE), *extra, "--by", COORDINATOR)
    assert outcome.code == 2, outcome.err
    assert str(EXAMPLE) in outcome.err
    assert message in outcome.err
    assert stored(engine) == before


def test_a_missing_or_unreadable_file_is_one_clear_error(cli: Cli, tmp_path: Path) -> None:
    missing = cli("toolkit", "load", str(tmp_path / "nope.toml"), "--by", CHAIR)
    assert missing.code == 2
    assert f"{tmp_path / 'nope.toml'}: no such file" in missing.err
    (tmp_path / "latin1.toml").write_bytes(b'scale = ["r\xe9d"]\n')
    undecodable = cli("toolkit", "load", str(tmp_path / "latin1.toml"), "--by", CHAIR)
    assert undecodable.code == 2
    assert str(tmp_path / "latin1.toml") in undecodable.err


# Rating -----------------------------------------------------------------------------------


def test_rating_a_benchmark_changes_it_and_is_audited(
    cli: Cli, loaded: Toolkit, engine: Engine
) -> None:
    rated = cli(
        "toolkit", "rate", "Venue-Hire", "GREEN", "--reason", "promoted", "--by", CHAIR, "--json"
    )
    assert rated.code == 0, rated.err
    assert rated.json() == {"key": "venue-hire", "rating": "green", "previous": "amber"}
    assert by_key(loaded.list())["venue-hire"]["rating"] == "green"
    last = audit_rows(engine)[-1]
    assert (last["entity_type"], last["entity_id"], last["event"]) == (
        "toolkit",
        "venue-hire",
        "rate",
    )
    assert (last["actor"], last["role"], last["reason"]) == (CHAIR, "chair", "promoted")
    assert last["data"] == {"previous": "amber", "rating": "green"}
    assert cli("audit", "verify").code == 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("venue-hire", "purple", "--reason", "r", "--by", CHAIR), 2, "'purple' is not a rating"),
        (("nope", "red", "--reason", "r", "--by", CHAIR), 3, "no toolkit benchmark has the key"),
        (("venue-hire", "red", "--by", CHAIR), 2, "say why the rating changes with --reason"),
        (("venue-hire", "red", "--reason", " ", "--by", CHAIR), 2, "--reason"),
        (("venue-hire", "amber", "--reason", "r", "--by", CHAIR), 2, "already rated amber"),
        (("venue-hire", "red", "--reason", "r", "--by", MEMBER), 4, "mel (member) may not"),
        (("venue-hire", "red", "--reason", "r", "--by", "nobody"), 3, "no user is called"),
        (("venue-hire", "red", "--reason", "r"), 2, "say who you are"),
    ],
    ids=[
        "bad rating",
        "unknown benchmark",
        "no reason",
        "blank reason",
        "unchanged",
        "wrong role",
        "unknown user",
        "nobody",
    ],
)
def test_a_refused_rating_is_one_clear_error_and_changes_nothing(
    cli: Cli, loaded: Toolkit, engine: Engine, args: tuple[str, ...], code: int, message: str
) -> None:
    before = stored(engine)
    outcome = cli("toolkit", "rate", *args)
    assert outcome.code == code, outcome.err
    assert outcome.err.count("error:") == 1
    assert message in outcome.err
    assert stored(engine) == before


def test_ratings_by_colour_counts_in_scale_order(
    loaded: Toolkit, toolkit: Toolkit, engine: Engine
) -> None:
    with engine.connect() as connection:
        assert ratings_by_colour(connection) == [("red", 1), ("amber", 4), ("green", 5)]
    toolkit.rate("training-programme", "amber", by=COORDINATOR, reason="WRAP replaced")
    with engine.connect() as connection:
        assert ratings_by_colour(connection) == [("red", 0), ("amber", 5), ("green", 5)]


def test_ratings_by_colour_is_empty_before_a_load_and_follows_a_declared_scale(
    toolkit: Toolkit, engine: Engine, tmp_path: Path
) -> None:
    with engine.connect() as connection:
        assert ratings_by_colour(connection) == []
    path = write(
        tmp_path,
        'scale = ["Not met", "met", "exceeding"]\n'
        '[[benchmark]]\nkey = "a"\nname = "A"\nrating = "met"\n'
        '[[benchmark]]\nkey = "b"\nname = "B"\nrating = "MET"\n',
    )
    toolkit.load(path, default_owner=None, by=CHAIR)
    with engine.connect() as connection:
        assert ratings_by_colour(connection) == [("not met", 0), ("met", 2), ("exceeding", 0)]
    toolkit.rate("a", "not met", by=CHAIR, reason="reassessed")
    with pytest.raises(InvalidInput, match="'green' is not a rating"):
        toolkit.rate("a", "green", by=CHAIR, reason="reassessed")


# Actions ----------------------------------------------------------------------------------


def test_a_recorded_review_sets_the_next_six_months_on_and_completing_stops_reviews(
    cli: Cli, loaded: Toolkit, engine: Engine
) -> None:
    with clock.frozen_at(datetime(2019, 10, 3, 9, 0, tzinfo=UTC)):
        reviewed = cli("toolkit", "action", "done", str(REFERRAL_REVIEW), "--by", CHAIR, "--json")
    assert reviewed.code == 0, reviewed.err
    assert reviewed.json()["review_on"] == "2020-04-01"
    # Done a little late, the next review keeps the cadence.
    with clock.frozen_at(datetime(2020, 4, 20, 9, 0, tzinfo=UTC)):
        again = cli("toolkit", "action", "done", str(REFERRAL_REVIEW), "--by", COORDINATOR)
    assert again.code == 0, again.err
    assert "next review: 2020-10-01" in again.out
    completed = cli(
        "toolkit",
        "action",
        "done",
        str(PANEL_REVIEW),
        "--on",
        "2019-07-08",
        "--complete",
        "--by",
        CHAIR,
        "--json",
    )
    assert completed.code == 0, completed.err
    assert completed.json() == {
        "benchmark": "channel-panel",
        "id": PANEL_REVIEW,
        "text": "6 month review of revised process in Oct 19",
        "owner": COORDINATOR,
        "review_on": None,
        "completed_on": "2019-07-08",
    }
    with engine.connect() as connection:
        due = due_actions(connection, date(2019, 1, 1), date(2021, 12, 31))
    assert [(a.id, a.review_on) for a in due] == [(REFERRAL_REVIEW, date(2020, 10, 1))]
    events = [(r["entity_id"], r["event"], r["data"]) for r in audit_rows(engine)]
    panel = [(event, data) for entity, event, data in events if entity == f"action-{PANEL_REVIEW}"]
    assert [event for event, _ in panel] == ["add_action", "complete_action"]
    assert panel[1][1]["review_was_due"] == "2019-10-01"
    assert panel[1][1]["completed_on"] == "2019-07-08"
    referral = [d for e, ev, d in events if e == f"action-{REFERRAL_REVIEW}" and ev != "add_action"]
    assert [(d["done_on"], d["review_was_due"], d["review_on"]) for d in referral] == [
        ("2019-10-03", "2019-10-01", "2020-04-01"),
        ("2020-04-20", "2020-04-01", "2020-10-01"),
    ]
    assert cli("audit", "verify").code == 0
    refused = cli("toolkit", "action", "done", str(PANEL_REVIEW), "--by", CHAIR)
    assert refused.code == 2
    assert f"action {PANEL_REVIEW} was completed on 2019-07-08" in refused.err


def test_an_added_action_is_owned_reviewed_and_audited(
    cli: Cli, loaded: Toolkit, engine: Engine
) -> None:
    added = cli(
        "toolkit",
        "action",
        "add",
        "channel-panel",
        "Review the terms of reference",
        "--owner",
        LEAD,
        "--review-on",
        "2019-12-01",
        "--by",
        COORDINATOR,
        "--json",
    )
    assert added.code == 0, added.err
    action = added.json()
    assert action["benchmark"] == "channel-panel"
    assert (action["owner"], action["review_on"], action["completed_on"]) == (
        LEAD,
        "2019-12-01",
        None,
    )
    panel = by_key(loaded.list())["channel-panel"]["actions"]
    assert [a["text"] for a in panel][-1] == "Review the terms of reference"
    last = audit_rows(engine)[-1]
    assert (last["entity_id"], last["event"]) == (f"action-{action['id']}", "add_action")
    assert last["data"]["owner"] == LEAD
    mine = cli("toolkit", "action", "add", "venue-hire", "Cascade", "--by", CHAIR, "--json")
    assert mine.json()["owner"] == CHAIR
    assert mine.json()["review_on"] is None
    with engine.connect() as connection:
        due = due_actions(connection, date(2019, 12, 1), date(2019, 12, 1))
    assert [(a.id, a.owner, a.benchmark, a.benchmark_key) for a in due] == [
        (action["id"], LEAD, "Channel Panel", "channel-panel")
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("add", "channel-panel", "t", "--owner", "nobody", "--by", CHAIR), 2, "'nobody' is not"),
        (("add", "channel-panel", "t", "--review-on", "2019-07-01", "--by", CHAIR), 2, "past"),
        (("add", "channel-panel", "t", "--review-on", "Oct 19", "--by", CHAIR), 2, "YYYY-MM-DD"),
        (("add", "channel-panel", "x" * 201, "--by", CHAIR), 2, "longer than 200"),
        (("add", "channel-panel", "  ", "--by", CHAIR), 2, "the action text is empty"),
        (("add", "nope", "t", "--by", CHAIR), 3, "no toolkit benchmark"),
        (("add", "channel-panel", "t", "--by", LEAD), 4, "lee (lead) may not"),
        (("done", "99", "--by", CHAIR), 3, "no toolkit action has the id 99"),
        (("done", "4", "--on", "2019-07-11", "--by", CHAIR), 2, "in the future"),
        (("done", "4", "--on", "2019-03-01", "--by", CHAIR), 2, "an earlier cycle"),
        (("done", "4", "--by", MEMBER), 4, "mel (member) may not"),
        (("done", "four", "--by", CHAIR), 2, "is not a valid integer"),
    ],
)
def test_a_refused_action_change_is_one_clear_error_and_changes_nothing(
    cli: Cli, loaded: Toolkit, engine: Engine, args: tuple[str, ...], code: int, message: str
) -> None:
    before = stored(engine)
    outcome = cli("toolkit", "action", *args)
    assert outcome.code == code, outcome.err
    assert message in outcome.err
    assert stored(engine) == before


def test_the_service_raises_the_documented_errors(loaded: Toolkit) -> None:
    with pytest.raises(PermissionDenied):
        loaded.rate("venue-hire", "red", by=LEAD, reason="r")
    with pytest.raises(NotFound):
        loaded.action_done(99, by=CHAIR)
    with pytest.raises(Refused, match="already loaded"):
        loaded.load(EXAMPLE, default_owner=CHAIR, by=CHAIR)


def test_due_actions_leaves_out_completed_unowned_and_out_of_range_actions(
    loaded: Toolkit, engine: Engine
) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE toolkit_action SET owner = NULL WHERE id = 5"))
    with engine.connect() as connection:
        assert [a.id for a in due_actions(connection, date(2019, 10, 1), date(2019, 10, 1))] == [4]
        assert due_actions(connection, date(2019, 10, 2), date(2020, 12, 31)) == []
        [action] = due_actions(connection, date(2019, 9, 1), date(2019, 10, 31))
    assert (action.text, action.owner, action.review_on) == (
        "6 month review of process in Oct 19",
        COORDINATOR,
        date(2019, 10, 1),
    )
    assert action.benchmark == "Referral Process"
    assert action.updated_at.tzinfo is not None


@pytest.mark.parametrize(
    ("due", "done_on", "expected"),
    [
        (date(2019, 10, 1), date(2019, 10, 3), date(2020, 4, 1)),
        (date(2019, 10, 1), date(2019, 9, 20), date(2020, 4, 1)),
        (date(2019, 8, 31), date(2019, 9, 2), date(2020, 2, 29)),
        # So late that the next date has passed: six months after it was done.
        (date(2019, 10, 1), date(2020, 5, 1), date(2020, 11, 1)),
        (None, date(2019, 10, 3), date(2020, 4, 3)),
    ],
)
def test_the_next_review_keeps_the_six_month_cadence(
    due: date | None, done_on: date, expected: date
) -> None:
    assert next_review(due, done_on) == expected
