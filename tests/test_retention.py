"""Retention: personal details removed once the period after closing has run out, nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from channelflow import clock
from channelflow.audit.verify import verify_chain
from channelflow.config import parse_config
from channelflow.exceptions import ConfigurationError, GuardRefused, PermissionDenied
from channelflow.retention import apply, closed_before
from channelflow.runtime import Runtime
from channelflow.states import referral as lc
from channelflow.workflow.engine import Workflow
from tests.cli_helpers import Cli
from tests.factories import ADMIN, COORDINATOR, referral_in

# "Today" for these tests; in November London keeps UTC, so local dates are UTC dates.
TODAY = datetime(2032, 11, 28, 12, 0, tzinfo=UTC)
NAME, BORN, ADDRESS = "Ottoline Purgeworthy", date(1987, 6, 5), "7 Vanishing Lane"


def closed_on(workflow: Workflow, day: date, **overrides: Any) -> str:
    """A referral that exited Channel (closed) on ``day``."""
    # referral_in fires the last step (exit) a day before ``at``.
    at = datetime.combine(day + timedelta(days=1), time(12), UTC)
    return referral_in(workflow, lc.CLOSED, at=at, **overrides)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], runtime: Runtime, database_url: str) -> Cli:
    return Cli(capsys, database_url, runtime.settings.key_file)


@pytest.fixture
def today() -> Iterator[None]:
    with clock.frozen_at(TODAY):
        yield


def personal(engine: Engine) -> dict[str, int | None]:
    """Each referral's person row id (None once removed)."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT reference, person_id FROM referral"))
        return {reference: person_id for reference, person_id in rows}


def everything(engine: Engine, *, skip: tuple[str, ...] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show that nothing changed."""
    with engine.connect() as connection:
        return {
            table: sorted(
                (tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))),
                key=repr,
            )
            for table in sorted(inspect(connection).get_table_names())
            if table not in skip
        }


def audit_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT seq, entity_type, entity_id, event, actor, role, data FROM audit_event")
        ).all()
    return [{**row._mapping, "data": json.loads(row.data)} for row in rows]


def test_referrals_closed_at_least_the_period_ago_lose_their_details_and_nothing_else(
    cli: Cli, workflow: Workflow, engine: Engine
) -> None:
    older = closed_on(workflow, date(2026, 11, 27))  # six years and a day before TODAY
    exact = closed_on(workflow, date(2026, 11, 28))  # six years to the day
    newer = closed_on(workflow, date(2026, 11, 29))  # six years less a day
    still_open = referral_in(workflow, lc.INTERVENTION, at=datetime(2020, 1, 10, tzinfo=UTC))
    before = everything(engine, skip=("person", "referral", "audit_event", "access_log"))
    trail = audit_rows(engine)

    with clock.frozen_at(TODAY):
        purged = cli("retention", "apply", "--by", ADMIN, "--json")

    assert purged.code == 0, purged.err
    assert purged.json() == {
        "purged": 2,
        "references": sorted([older, exact]),
        "dry_run": False,
        "closed_before": "2026-11-29",
        "years": 6,
    }
    links = personal(engine)
    assert links[older] is None
    assert links[exact] is None
    assert links[newer] is not None
    assert links[still_open] is not None
    with engine.connect() as connection:
        people = connection.execute(text("SELECT id FROM person ORDER BY id")).scalars().all()
    assert people == sorted([links[newer], links[still_open]])
    # Other tables untouched; the trail gained exactly one event, the purge.
    assert everything(engine, skip=("person", "referral", "audit_event", "access_log")) == before
    after = audit_rows(engine)
    assert after[: len(trail)] == trail
    (event,) = after[len(trail) :]
    assert (event["entity_type"], event["event"], event["actor"], event["role"]) == (
        "retention",
        "purge_personal_data",
        ADMIN,
        "admin",
    )
    assert event["entity_id"] == "purge-2032-11-28T12:00:00Z"
    assert event["data"] == {
        "references": sorted([older, exact]),
        "count": 2,
        "years": 6,
        "closed_before": "2026-11-29",
    }


def test_the_text_output_is_one_sentence_and_the_references(
    cli: Cli, workflow: Workflow, today: None
) -> None:
    older = closed_on(workflow, date(2026, 1, 5))
    shown = cli("retention", "apply", "--by", ADMIN)
    assert shown.code == 0, shown.err
    first, *rest = shown.out.splitlines()
    assert first.startswith(
        "purged the personal details of 1 referral closed before 2026-11-29 (6-year retention), "
        "recorded as audit event "
    )
    assert rest == [f"  {older}"]


def test_after_a_purge_no_personal_detail_is_left_in_any_table(
    cli: Cli, workflow: Workflow, engine: Engine, database_url: str
) -> None:
    reference = closed_on(
        workflow,
        date(2025, 6, 2),
        subject_name=NAME,
        date_of_birth=BORN,
        address=ADDRESS,
        school="Forgetful Academy",
    )
    cli("referral", "show", reference, "--by", COORDINATOR)  # an access-log entry too
    details = (NAME, BORN.isoformat(), ADDRESS, "Forgetful Academy")
    assert any(value in repr(everything(engine)) for value in details)

    with clock.frozen_at(TODAY):
        assert cli("retention", "apply", "--by", ADMIN).code == 0

    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f"SELECT * FROM {table}")):
                for value in row:
                    text_value = str(value)
                    for detail in details:
                        assert detail not in text_value, f"{detail!r} is still in {table}"
    if database_url.startswith("sqlite"):
        # Deleted rows are zeroed and the write-ahead log emptied: not even the file keeps them.
        database = Path(database_url.removeprefix("sqlite:///"))
        stored = b"".join(
            path.read_bytes() for path in (database, Path(f"{database}-wal")) if path.exists()
        )
        for detail in details:
            assert detail.encode() not in stored


def test_the_trail_still_verifies_after_a_purge(
    cli: Cli, workflow: Workflow, runtime: Runtime
) -> None:
    closed_on(workflow, date(2026, 3, 1))
    closed_on(workflow, date(2027, 3, 1))
    before = verify_chain(runtime.engine, runtime.key)
    with clock.frozen_at(TODAY):
        assert cli("retention", "apply", "--by", ADMIN).code == 0
    after = verify_chain(runtime.engine, runtime.key)
    assert after.count == before.count + 1
    verified = cli("audit", "verify", "--json")
    assert verified.code == 0
    assert verified.json()["ok"] is True


def test_a_dry_run_lists_what_would_go_and_changes_nothing(
    cli: Cli, workflow: Workflow, engine: Engine
) -> None:
    older = closed_on(workflow, date(2026, 2, 3))
    closed_on(workflow, date(2027, 2, 3))
    before = everything(engine)
    with clock.frozen_at(TODAY):
        dry = cli("retention", "apply", "--dry-run", "--by", ADMIN, "--json")
        shown = cli("retention", "apply", "--dry-run", "--by", ADMIN)
    assert dry.code == 0, dry.err
    assert dry.json() == {
        "purged": 1,
        "references": [older],
        "dry_run": True,
        "closed_before": "2026-11-29",
        "years": 6,
    }
    assert shown.out.splitlines() == [
        "would purge the personal details of 1 referral closed before 2026-11-29 "
        "(6-year retention); nothing was changed:",
        f"  {older}",
    ]
    assert everything(engine) == before


def test_with_nothing_to_purge_it_says_so_and_records_nothing(
    cli: Cli, workflow: Workflow, engine: Engine
) -> None:
    closed_on(workflow, date(2027, 2, 3))
    before = everything(engine)
    with clock.frozen_at(TODAY):
        shown = cli("retention", "apply", "--by", ADMIN)
    assert shown.code == 0
    assert shown.out == (
        "nothing to purge: no referral closed before 2026-11-29 (6-year retention) "
        "still holds personal details\n"
    )
    assert everything(engine) == before


def test_a_second_purge_finds_nothing_left(cli: Cli, workflow: Workflow, engine: Engine) -> None:
    closed_on(workflow, date(2026, 2, 3))
    with clock.frozen_at(TODAY):
        assert cli("retention", "apply", "--by", ADMIN, "--json").json()["purged"] == 1
        before = everything(engine)
        again = cli("retention", "apply", "--by", ADMIN, "--json")
    assert again.json()["purged"] == 0
    assert everything(engine) == before


@pytest.mark.parametrize("extra", [(), ("--dry-run",)])
def test_only_an_admin_may_purge_and_a_refusal_is_logged(
    cli: Cli, workflow: Workflow, engine: Engine, extra: tuple[str, ...]
) -> None:
    closed_on(workflow, date(2026, 2, 3))
    before = everything(engine, skip=("access_log",))
    with clock.frozen_at(TODAY):
        refused = cli("retention", "apply", *extra, "--by", COORDINATOR)
    assert refused.code == 4
    assert "cora (coordinator) may not do retention.apply; only admin may" in refused.err
    assert everything(engine, skip=("access_log",)) == before
    with engine.connect() as connection:
        denied = connection.execute(
            text("SELECT actor, role, action, allowed FROM access_log WHERE allowed = false")
        ).all()
    assert [tuple(row) for row in denied] == [
        (COORDINATOR, "coordinator", "retention.apply", False)
    ]


def test_the_service_refuses_other_roles_and_silly_periods(workflow: Workflow) -> None:
    with pytest.raises(PermissionDenied):
        apply(workflow, years=6, by=COORDINATOR)
    with pytest.raises(ValueError, match="1 to 100 years"):
        apply(workflow, years=0, by=ADMIN)


def test_a_purged_referral_still_shows_without_details_and_cannot_be_re_referred(
    cli: Cli, workflow: Workflow, today: None
) -> None:
    reference = closed_on(workflow, date(2026, 2, 3), subject_name=NAME)
    assert cli("retention", "apply", "--by", ADMIN).code == 0

    shown = cli("referral", "show", reference, "--by", COORDINATOR, "--json")
    assert shown.code == 0, shown.err
    view = shown.json()
    assert view["state"] == lc.CLOSED
    assert view["personal"] is None
    assert view["personal_removed_on"] == TODAY.date().isoformat()
    assert [h["event"] for h in view["history"]][-1] == lc.EXIT
    as_text = cli("referral", "show", reference, "--by", COORDINATOR)
    assert as_text.code == 0
    assert NAME not in as_text.out
    assert f"personal details: removed under retention on {TODAY.date().isoformat()}" in as_text.out
    assert cli("referral", "events", reference, "--by", COORDINATOR).code == 0
    # Its post-exit reviews fell due years ago; a re-referral would need the removed details.
    with pytest.raises(GuardRefused, match="personal details were removed"):
        workflow.fire(
            reference, lc.RECORD_POST_EXIT_REVIEW, by=COORDINATOR, values={"outcome": "re_refer"}
        )


def test_a_re_referral_keeps_its_own_copy_of_the_details(
    cli: Cli, workflow: Workflow, engine: Engine
) -> None:
    original = closed_on(workflow, date(2026, 2, 3), subject_name=NAME)
    with clock.frozen_at(datetime(2026, 8, 4, 12, tzinfo=UTC)):
        opened = workflow.fire(
            original, lc.RECORD_POST_EXIT_REVIEW, by=COORDINATOR, values={"outcome": "re_refer"}
        ).opened
    assert opened is not None
    with clock.frozen_at(TODAY):
        assert cli("retention", "apply", "--by", ADMIN, "--json").json()["references"] == [original]
        again = cli("referral", "show", opened, "--by", COORDINATOR, "--json").json()
    assert personal(engine)[original] is None
    assert again["personal"]["full_name"] == NAME


def test_the_configured_period_is_used(
    cli: Cli, workflow: Workflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "channelflow.toml"
    config.write_text("[retention]\nyears = 7\n", encoding="utf-8")
    monkeypatch.setenv("CHANNELFLOW_CONFIG", str(config))
    six = closed_on(workflow, date(2026, 2, 3))
    seven = closed_on(workflow, date(2025, 11, 28))
    with clock.frozen_at(TODAY):
        purged = cli("retention", "apply", "--by", ADMIN, "--json")
    assert purged.code == 0, purged.err
    assert purged.json()["references"] == [seven]
    assert purged.json()["closed_before"] == "2025-11-29"
    assert purged.json()["years"] == 7
    assert personal(workflow.engine)[six] is not None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[retention]\nyears = 0\n", "[retention] years must be a whole number from 1 to 100"),
        ('[retention]\nyears = "six"\n', "[retention] years must be a whole number from 1 to 100"),
        ("[retention]\nyears = 101\n", "[retention] years must be a whole number from 1 to 100"),
        ("[retention]\nmonths = 3\n", "unknown setting 'months' in [retention]"),
        ("retention = 6\n", "[retention] in the configuration must be a table"),
    ],
)
def test_a_bad_retention_setting_is_exit_2_and_changes_nothing(
    cli: Cli,
    workflow: Workflow,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    message: str,
) -> None:
    closed_on(workflow, date(2026, 2, 3))
    config = tmp_path / "channelflow.toml"
    config.write_text(body, encoding="utf-8")
    monkeypatch.setenv("CHANNELFLOW_CONFIG", str(config))
    before = everything(engine)
    with clock.frozen_at(TODAY):
        refused = cli("retention", "apply", "--by", ADMIN)
    assert refused.code == 2
    assert message in refused.err
    assert everything(engine) == before


def test_the_retention_setting_defaults_to_six_years() -> None:
    assert parse_config({}).retention.years == 6
    assert parse_config({"retention": {"years": 7}}).retention.years == 7
    with pytest.raises(ConfigurationError, match="from 1 to 100"):
        parse_config({"retention": {"years": True}})


@pytest.mark.parametrize(
    ("today", "years", "first_kept"),
    [
        (date(2032, 11, 28), 6, date(2026, 11, 29)),
        (date(2032, 11, 28), 7, date(2025, 11, 29)),
        (date(2032, 12, 31), 6, date(2027, 1, 1)),
        # Closed on 29 February 2020: its six years run out on 28 February 2026.
        (date(2026, 2, 28), 6, date(2020, 3, 1)),
        (date(2026, 2, 27), 6, date(2020, 2, 28)),
        (date(2024, 2, 29), 4, date(2020, 3, 1)),
    ],
)
def test_the_period_runs_out_on_the_same_day_years_later(
    today: date, years: int, first_kept: date
) -> None:
    assert closed_before(today, years) == first_kept
