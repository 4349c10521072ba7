"""Planning passes, one behaviour at a time: re-runs, downtime, stopping, escalation, membership,
configuration errors, the watermark, the start at `init`, agenda content, addenda, moves and
cancellations, and planners running at the same time.

Every expected date is worked out by hand from the calendar in the comment next to it. The
default panel is the last Thursday of the month at 10:00 (31 Dec 2026, 28 Jan 2027, 25 Feb
2027), agendas go five working days before at 08:00, reminders 7 days before and on the day,
escalations two working days after. With the default membership the panel is chris (chair)
and mel (member); the board is chris and admin (who has no email address).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from channelflow import clock
from channelflow.exceptions import ConfigurationError
from channelflow.meetings.calendar import MeetingCalendar
from channelflow.planning.agenda import build_agenda
from channelflow.planning.planner import PLANNING_LOCK, Planner
from channelflow.runtime import Runtime
from channelflow.states import Role
from channelflow.states import referral as lc
from channelflow.store.db import open_engine, read_session
from channelflow.store.models import OutboxMessage
from tests.conftest import PostgresServer, make_runtime
from tests.factories import CHAIR, COORDINATOR
from tests.planning_helpers import (
    Cases,
    Sent,
    add_lead,
    add_user,
    config,
    get_meta,
    local,
    make_book,
    make_planner,
    outbox_keys,
    plan,
    planned,
    set_initialised,
    set_meta,
    summaries,
)

LEE, LOU = "lee@example.org", "lou@example.org"
CHRIS, MEL, CORA, ADA = (
    "chris@example.org",
    "mel@example.org",
    "cora@example.org",
    "ada@example.org",
)
INITIALISED = local(date(2026, 11, 30), 9)
SEEDED = local(date(2026, 11, 30), 12)
A = "CF-2026-0001"
REFERENCE = re.compile(r"CF-\d{4}-\d{4}")

DEFAULTS = config()


@pytest.fixture
def cases(runtime: Runtime) -> Cases:
    set_initialised(runtime.engine, INITIALISED)
    return Cases(runtime.workflow)


def daily(planner: Planner, first: date, last: date, hour: int = 8, minute: int = 0) -> list[Any]:
    """A pass every day from ``first`` to ``last`` at ``hour:minute`` London time; the reports."""
    reports = []
    day = first
    while day <= last:
        reports.append(plan(planner, local(day, hour, minute)))
        day += timedelta(days=1)
    return reports


def around(planner: Planner, day: date) -> None:
    """Passes just before, at and after the sending time, and at both ends of ``day``."""
    for hour, minute in ((0, 0), (7, 59), (8, 0), (8, 1), (13, 0), (23, 59)):
        plan(planner, local(day, hour, minute))


def start_planning_at(engine: Engine, instant: datetime) -> None:
    """As if channelflow had been planning up to ``instant`` (no catch-up before it)."""
    set_meta(engine, "planned_through", instant.isoformat())


def outbox_count(engine: Engine) -> int:
    with read_session(engine) as session:
        count: int = session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
        return count


def lead_a_due_17_december(cases: Cases, *, lead: str = "lee") -> str:
    """A, in intervention since 30 Nov, support-plan review due Thu 17 Dec 2026.

    Reminders: 7 days before = Thu 10 Dec, on the day = Thu 17 Dec; escalation two working
    days after = Fri 18, Mon 21 Dec.
    """
    reference = cases.in_intervention(
        date(2026, 11, 2), lead=lead, first_review=date(2026, 12, 17), at=SEEDED
    )
    assert reference == A
    return reference


# Re-runs -------------------------------------------------------------------------------


def test_planning_the_same_instant_twice_queues_nothing_new(runtime: Runtime, cases: Cases) -> None:
    lead_a_due_17_december(cases)
    planner = make_planner(runtime, DEFAULTS)
    now = local(date(2026, 12, 22), 8)

    first = plan(planner, now)
    # Everything since init is due: A's two reminders and its escalation (21 Dec), and the
    # 31 December panel's agenda (22 Dec: 30, 29, [28, 25 bank holidays], 24, 23, 22).
    assert first.queued == Counter(review_reminder=2, review_escalation=1, panel_agenda=2)
    keys = sorted(outbox_keys(runtime.engine))

    again = plan(planner, now)
    assert again.total == 0
    assert not again.skipped
    assert sorted(outbox_keys(runtime.engine)) == keys
    later_that_day = plan(planner, local(date(2026, 12, 22), 17))
    assert later_that_day.total == 0
    assert sorted(outbox_keys(runtime.engine)) == keys


# Downtime ------------------------------------------------------------------------------


@pytest.fixture
def twin(database_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """A second, independent database on the same backend, set up like ``runtime``."""
    if database_url.startswith("sqlite"):
        rt = make_runtime(f"sqlite:///{tmp_path / 'twin.db'}", tmp_path / "twin.key")
        yield rt
        rt.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    rt = make_runtime(server.url(name), tmp_path / "twin.key")
    yield rt
    rt.close()
    server.drop_database(name)


def downtime_world(runtime: Runtime) -> Planner:
    """A due 17 Dec, and an extra panel on Tue 22 Dec 2026 10:00 added on 1 December.

    The extra panel's agenda: 21, 18, 17, 16, 15 -> Tue 15 Dec.
    """
    set_initialised(runtime.engine, INITIALISED)
    cases = Cases(runtime.workflow)
    lead_a_due_17_december(cases)
    with clock.frozen_at(local(date(2026, 12, 1), 14)):
        make_book(runtime, DEFAULTS).add("panel", local(date(2026, 12, 22), 10), by="cora")
    return make_planner(runtime, DEFAULTS)


def test_after_ten_days_without_a_pass_one_pass_queues_everything_due_in_the_gap_once(
    runtime: Runtime, twin: Runtime
) -> None:
    gapped, always = downtime_world(runtime), downtime_world(twin)
    daily(always, date(2026, 12, 1), date(2026, 12, 31))

    daily(gapped, date(2026, 12, 1), date(2026, 12, 13))
    before_gap = set(outbox_keys(runtime.engine))
    back = plan(gapped, local(date(2026, 12, 23), 8))
    assert back.since == local(date(2026, 12, 13), 8)
    assert back.queued == Counter(review_reminder=1, review_escalation=1, panel_agenda=4)
    gap = sorted(s.summary for s in planned(runtime.engine) if s.key not in before_gap)
    assert gap == sorted(
        [
            ("2026-12-23", "review_reminder", LEE, f"{A}:support_plan:2026-12-17:d0"),
            ("2026-12-23", "review_escalation", CHRIS, f"{A}:support_plan:2026-12-17"),
            # Held yesterday, but its agenda fell due (15 Dec) while the server was off.
            ("2026-12-23", "panel_agenda", CHRIS, "panel-added-2026-12-22@channelflow:s0"),
            ("2026-12-23", "panel_agenda", MEL, "panel-added-2026-12-22@channelflow:s0"),
            ("2026-12-23", "panel_agenda", CHRIS, "panel-2026-12-31@channelflow:s0"),
            ("2026-12-23", "panel_agenda", MEL, "panel-2026-12-31@channelflow:s0"),
        ]
    )
    daily(gapped, date(2026, 12, 24), date(2026, 12, 31))

    def what(engine: Engine) -> list[tuple[str, str, str]]:
        return sorted((kind, to, about) for _, kind, to, about in summaries(engine))

    # The same emails as a server that never stopped, each once.
    assert what(runtime.engine) == what(twin.engine)
    assert what(runtime.engine) == sorted(
        [
            ("review_reminder", LEE, f"{A}:support_plan:2026-12-17:d7"),
            ("review_reminder", LEE, f"{A}:support_plan:2026-12-17:d0"),
            ("review_escalation", CHRIS, f"{A}:support_plan:2026-12-17"),
            ("panel_agenda", CHRIS, "panel-added-2026-12-22@channelflow:s0"),
            ("panel_agenda", MEL, "panel-added-2026-12-22@channelflow:s0"),
            ("panel_agenda", CHRIS, "panel-2026-12-31@channelflow:s0"),
            ("panel_agenda", MEL, "panel-2026-12-31@channelflow:s0"),
        ]
    )
    # The server that never stopped sent each on its day.
    assert [day for day, *_ in summaries(twin.engine)] == [
        "2026-12-10",  # A, 7 days before
        "2026-12-15",  # the extra panel's agenda, to chris
        "2026-12-15",  # and to mel
        "2026-12-17",  # A, on the day
        "2026-12-21",  # A's escalation
        "2026-12-22",  # the 31 Dec agenda, to chris
        "2026-12-22",  # and to mel
    ]


# Stopping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "by", "values", "reason"),
    [
        (lc.REVIEW, CHAIR, {"outcome": "progressing", "next_review": "2027-03-25"}, None),
        (lc.EXIT, CHAIR, {"summary": "objectives met"}, None),
        (lc.WITHDRAW_CONSENT, COORDINATOR, {"route": "no_further_action"}, "consent withdrawn"),
    ],
)
def test_reminders_stop_once_the_review_is_recorded_or_the_case_closes(
    runtime: Runtime,
    cases: Cases,
    event: str,
    by: str,
    values: dict[str, str],
    reason: str | None,
) -> None:
    lead_a_due_17_december(cases)
    planner = make_planner(runtime, DEFAULTS)
    daily(planner, date(2026, 12, 1), date(2026, 12, 14))
    # Mon 14 Dec, after the 7-day reminder (10 Dec) and before the day itself.
    cases.fire(A, event, by=by, at=local(date(2026, 12, 14), 14), reason=reason, values=values)
    daily(planner, date(2026, 12, 15), date(2027, 1, 15))

    reviews = [s for s in summaries(runtime.engine) if s[1].startswith("review_")]
    assert reviews == [
        ("2026-12-10", "review_reminder", LEE, f"{A}:support_plan:2026-12-17:d7"),
    ]


def test_a_review_recorded_on_its_due_day_after_the_reminder_is_not_escalated(
    runtime: Runtime, cases: Cases
) -> None:
    lead_a_due_17_december(cases)
    planner = make_planner(runtime, DEFAULTS)
    daily(planner, date(2026, 12, 1), date(2026, 12, 17))
    cases.review(A, at=local(date(2026, 12, 17), 14), next_review=date(2027, 1, 7))
    daily(planner, date(2026, 12, 18), date(2027, 1, 12))
    # The next review, Thu 7 Jan 2027: 7 days before is Thu 31 Dec; escalation Fri 8,
    # Mon 11 Jan.
    reviews = [s for s in summaries(runtime.engine) if s[1].startswith("review_")]
    assert reviews == [
        ("2026-12-10", "review_reminder", LEE, f"{A}:support_plan:2026-12-17:d7"),
        ("2026-12-17", "review_reminder", LEE, f"{A}:support_plan:2026-12-17:d0"),
        ("2026-12-31", "review_reminder", LEE, f"{A}:support_plan:2027-01-07:d7"),
        ("2027-01-07", "review_reminder", LEE, f"{A}:support_plan:2027-01-07:d0"),
        ("2027-01-11", "review_escalation", CHRIS, f"{A}:support_plan:2027-01-07"),
    ]


def test_post_exit_review_reminders_stop_once_it_is_recorded(
    runtime: Runtime, cases: Cases
) -> None:
    # Exited Tue 16 Jun 2026: the 6-month review is due Wed 16 Dec 2026 (7 days before:
    # Wed 9 Dec; escalation Thu 17, Fri 18 Dec), the 12-month one 16 Jun 2027.
    reference = cases.in_intervention(
        date(2026, 5, 1), lead="lee", first_review=date(2026, 6, 25), at=local(date(2026, 6, 1))
    )
    cases.fire(reference, lc.EXIT, by=CHAIR, at=local(date(2026, 6, 16), 14), summary="done")
    planner = make_planner(runtime, DEFAULTS)
    daily(planner, date(2026, 12, 1), date(2026, 12, 16))
    cases.fire(
        reference,
        lc.RECORD_POST_EXIT_REVIEW,
        by=COORDINATOR,
        at=local(date(2026, 12, 16), 14),
        outcome="no_concerns",
    )
    daily(planner, date(2026, 12, 17), date(2027, 1, 10))
    reviews = [s for s in summaries(runtime.engine) if s[1].startswith("review_")]
    assert reviews == [
        ("2026-12-09", "review_reminder", LEE, f"{reference}:post_exit_6:2026-12-16:d7"),
        ("2026-12-16", "review_reminder", LEE, f"{reference}:post_exit_6:2026-12-16:d0"),
    ]


# Escalation ------------------------------------------------------------------------------


def test_exactly_one_escalation_per_overdue_review_n_working_days_after_it_fell_due(
    runtime: Runtime, cases: Cases
) -> None:
    add_user(runtime, "cher", Role.CHAIR, email="cher@example.org")
    add_lead(runtime, "lou", email=LOU)
    lead_a_due_17_december(cases)
    # B, due Wed 23 Dec 2026.
    b = cases.in_intervention(
        date(2026, 11, 3), lead="lou", first_review=date(2026, 12, 23), at=SEEDED
    )
    planner = make_planner(runtime, config({"reminders": {"escalate_after_working_days": 3}}))
    # A pass every morning, and several more on the days the escalations fall due.
    daily(planner, date(2026, 12, 1), date(2026, 12, 21))
    around(planner, date(2026, 12, 22))
    daily(planner, date(2026, 12, 23), date(2026, 12, 29))
    around(planner, date(2026, 12, 30))
    daily(planner, date(2026, 12, 31), date(2027, 1, 31))

    escalations = [s for s in planned(runtime.engine) if s.kind == "review_escalation"]
    assert sorted(
        (s.created_at.astimezone(clock.LOCAL_ZONE), s.recipient, s.summary[3]) for s in escalations
    ) == sorted(
        [
            # A due Thu 17 Dec; three working days after: Fri 18, Mon 21, Tue 22 Dec.
            (local(date(2026, 12, 22), 8), CHRIS, f"{A}:support_plan:2026-12-17"),
            (local(date(2026, 12, 22), 8), "cher@example.org", f"{A}:support_plan:2026-12-17"),
            # B due Wed 23 Dec: Thu 24, [25, 28 bank holidays], Tue 29, Wed 30 Dec.
            (local(date(2026, 12, 30), 8), CHRIS, f"{b}:support_plan:2026-12-23"),
            (local(date(2026, 12, 30), 8), "cher@example.org", f"{b}:support_plan:2026-12-23"),
        ]
    )


def test_escalations_go_to_the_configured_users_instead_of_the_chairs(
    runtime: Runtime, cases: Cases
) -> None:
    lead_a_due_17_december(cases)
    planner = make_planner(runtime, config({"reminders": {"escalate_to": ["cora", "ada"]}}))
    report = plan(planner, local(date(2026, 12, 21), 8))
    assert report.queued["review_escalation"] == 2
    escalations = [s for s in planned(runtime.engine) if s.kind == "review_escalation"]
    assert sorted(s.recipient for s in escalations) == [ADA, CORA]


def test_the_configured_sending_time_closed_days_and_reminder_lead_times_are_used(
    runtime: Runtime, cases: Cases
) -> None:
    add_lead(runtime, "lou", email=LOU)
    lead_a_due_17_december(cases)
    b = cases.in_intervention(
        date(2026, 11, 3), lead="lou", first_review=date(2026, 12, 16), at=SEEDED
    )
    planner = make_planner(
        runtime,
        config(
            {
                "reminders": {"days_before": [14, 0]},
                "schedule": {
                    "sending_time": "07:30",
                    "closed_days": [date(2026, 12, 16), date(2026, 12, 29)],
                },
            }
        ),
    )
    daily(planner, date(2026, 12, 1), date(2026, 12, 31), 7, 30)

    assert summaries(runtime.engine) == sorted(
        [
            ("2026-12-02", "review_reminder", LOU, f"{b}:support_plan:2026-12-16:d14"),
            ("2026-12-03", "review_reminder", LEE, f"{A}:support_plan:2026-12-17:d14"),
            # B is due on Wed 16 Dec, a day the council is closed: the Tuesday before.
            ("2026-12-15", "review_reminder", LOU, f"{b}:support_plan:2026-12-16:d0"),
            ("2026-12-17", "review_reminder", LEE, f"{A}:support_plan:2026-12-17:d0"),
            ("2026-12-18", "review_escalation", CHRIS, f"{b}:support_plan:2026-12-16"),
            ("2026-12-21", "review_escalation", CHRIS, f"{A}:support_plan:2026-12-17"),
            # 31 Dec: 30, [29 closed, 28 and 25 bank holidays], 24, 23, 22, 21.
            ("2026-12-21", "panel_agenda", CHRIS, "panel-2026-12-31@channelflow:s0"),
            ("2026-12-21", "panel_agenda", MEL, "panel-2026-12-31@channelflow:s0"),
        ]
    )
    assert {
        s.created_at.astimezone(clock.LOCAL_ZONE).time().isoformat()
        for s in planned(runtime.engine)
    } == {"07:30:00"}


CHRISTMAS_CLOSURE = [date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31)]


@pytest.mark.parametrize(
    ("days_before", "due", "days"),
    [
        # Due Fri 8 Jan 2027; 7 days before is Fri 1 Jan (bank holiday), then 31, 30, 29 Dec
        # (closed), 28 (Boxing Day observed), the weekend, 25 (Christmas): Thu 24 Dec.
        ([7, 0], date(2027, 1, 8), ["2026-12-24", "2027-01-08"]),
        # Due Fri 1 Jan 2027 (bank holiday), reminded on the day only: Thu 24 Dec.
        ([0], date(2027, 1, 1), ["2026-12-24"]),
    ],
)
def test_a_reminder_moved_back_across_a_long_closure_still_goes_on_the_working_day_before(
    runtime: Runtime, cases: Cases, days_before: list[int], due: date, days: list[str]
) -> None:
    """A council closed between Christmas and New Year, as [schedule] closed_days says."""
    reference = cases.in_intervention(date(2026, 11, 2), lead="lee", first_review=due, at=SEEDED)
    planner = make_planner(
        runtime,
        config(
            {
                "reminders": {"days_before": days_before},
                "schedule": {"closed_days": CHRISTMAS_CLOSURE},
            }
        ),
    )
    daily(planner, date(2026, 12, 1), date(2027, 1, 10))
    reminders = [s for s in summaries(runtime.engine) if s[1] == "review_reminder"]
    assert [day for day, *_ in reminders] == days, "not on Christmas Day or later"
    assert [about for *_, about in reminders] == [
        f"{reference}:support_plan:{due.isoformat()}:d{n}" for n in days_before
    ]


# Recipients ------------------------------------------------------------------------------


def test_a_lead_without_an_email_address_gets_nothing_and_is_reported(
    runtime: Runtime, cases: Cases
) -> None:
    add_lead(runtime, "nat", email=None)
    lead_a_due_17_december(cases, lead="nat")
    planner = make_planner(runtime, DEFAULTS)

    seven_days_before = plan(planner, local(date(2026, 12, 10), 8))
    assert seven_days_before.no_email == {"nat"}
    assert seven_days_before.total == 0
    on_the_day = plan(planner, local(date(2026, 12, 17), 8))
    assert on_the_day.no_email == {"nat"}
    assert on_the_day.total == 0
    escalation = plan(planner, local(date(2026, 12, 21), 8))
    assert escalation.queued == Counter(review_escalation=1)
    assert [s.summary for s in planned(runtime.engine)] == [
        ("2026-12-21", "review_escalation", CHRIS, f"{A}:support_plan:2026-12-17")
    ]


def test_panel_and_board_are_the_users_of_the_default_roles_without_configured_members(
    runtime: Runtime, cases: Cases
) -> None:
    add_user(runtime, "sam", Role.MEMBER, email="sam@example.org")
    planner = make_planner(runtime, DEFAULTS)
    daily(planner, date(2026, 12, 1), date(2026, 12, 21))
    agenda = plan(planner, local(date(2026, 12, 22), 8))
    # Panel: chair and members (chris, mel, sam); not the coordinator, police, lead, auditor.
    assert agenda.queued == Counter(panel_agenda=3)
    assert agenda.no_email == set()
    daily(planner, date(2026, 12, 23), date(2027, 1, 5))
    # Board 13 Jan 2027 (second Wednesday), reminder 12, 11, 8, 7, 6 -> Wed 6 Jan: the chair
    # and admin, who has no email address.
    board = plan(planner, local(date(2027, 1, 6), 8))
    assert board.queued == Counter(board_reminder=1)
    assert board.no_email == {"admin"}
    sent = {(s.kind, s.recipient) for s in planned(runtime.engine)}
    assert sent == {
        ("panel_agenda", CHRIS),
        ("panel_agenda", MEL),
        ("panel_agenda", "sam@example.org"),
        ("board_reminder", CHRIS),
    }


def test_configured_members_replace_the_default_roles(runtime: Runtime, cases: Cases) -> None:
    planner = make_planner(
        runtime,
        config({"panel": {"members": ["cora", "ada"]}, "board": {"members": ["mel", "lee"]}}),
    )
    daily(planner, date(2026, 12, 1), date(2027, 1, 6))
    assert sorted((s.kind, s.recipient, s.day.isoformat()) for s in planned(runtime.engine)) == [
        ("board_reminder", LEE, "2027-01-06"),
        ("board_reminder", MEL, "2027-01-06"),
        ("panel_agenda", ADA, "2026-12-22"),
        ("panel_agenda", CORA, "2026-12-22"),
    ]


@pytest.mark.parametrize(
    "settings",
    [
        {"panel": {"members": ["chris", "nobody"]}},
        {"board": {"members": ["nobody"]}},
        {"reminders": {"escalate_to": ["nobody"]}},
    ],
    ids=["panel", "board", "escalate_to"],
)
def test_an_unknown_user_in_the_membership_refuses_the_pass_and_plans_nothing(
    runtime: Runtime, cases: Cases, settings: dict[str, Any]
) -> None:
    lead_a_due_17_december(cases)
    plan(make_planner(runtime, DEFAULTS), local(date(2026, 12, 1), 8))
    mark = get_meta(runtime.engine, "planned_through")
    assert mark is not None
    before = outbox_count(runtime.engine)

    bad = make_planner(runtime, config(settings))
    with pytest.raises(ConfigurationError, match="nobody"):
        bad.check()
    with pytest.raises(ConfigurationError, match="nobody"):
        # A, the 31 Dec agenda and more are due by now: none of it may be queued.
        plan(bad, local(date(2026, 12, 22), 8))
    assert outbox_count(runtime.engine) == before
    assert get_meta(runtime.engine, "planned_through") == mark

    recovered = plan(make_planner(runtime, DEFAULTS), local(date(2026, 12, 22), 8))
    assert recovered.since == local(date(2026, 12, 1), 8)
    assert recovered.total == 5


# The watermark and the start -----------------------------------------------------------------


def watermark(engine: Engine) -> datetime:
    """The watermark as stored: channelflow_meta's row 'planned_through'."""
    with engine.connect() as connection:
        value = connection.execute(
            text("SELECT value FROM channelflow_meta WHERE key = 'planned_through'")
        ).scalar_one()
    return datetime.fromisoformat(value)


def test_the_watermark_is_stored_and_never_moves_backwards(runtime: Runtime, cases: Cases) -> None:
    lead_a_due_17_december(cases)
    planner = make_planner(runtime, DEFAULTS)
    assert get_meta(runtime.engine, "planned_through") is None

    first = plan(planner, local(date(2026, 12, 10), 8, 30))
    assert first.since == INITIALISED
    assert watermark(runtime.engine) == local(date(2026, 12, 10), 8, 30)

    earlier = plan(planner, local(date(2026, 12, 5), 8))
    assert earlier.since == local(date(2026, 12, 10), 8, 30)
    assert earlier.total == 0
    assert watermark(runtime.engine) == local(date(2026, 12, 10), 8, 30)

    later = plan(planner, local(date(2026, 12, 17), 9))
    assert later.since == local(date(2026, 12, 10), 8, 30)
    assert later.queued == Counter(review_reminder=1)
    assert watermark(runtime.engine) == local(date(2026, 12, 17), 9)


def test_nothing_that_fell_due_before_init_or_before_the_review_date_was_known_is_sent(
    runtime: Runtime,
) -> None:
    add_lead(runtime, "lou", email=LOU)
    cases = Cases(runtime.workflow)
    # Before init: A due Thu 17 Dec (its reminders 10 and 17 Dec, escalation Mon 21 Dec 08:00);
    # B due Mon 4 Jan 2027 (7 days before is Mon 28 Dec, a bank holiday -> Thu 24 Dec); an
    # extra panel on Fri 18 Dec (agenda 17, 16, 15, 14, 11 -> Fri 11 Dec).
    a = lead_a_due_17_december(cases)
    b = cases.in_intervention(
        date(2026, 11, 3), lead="lou", first_review=date(2027, 1, 4), at=SEEDED
    )
    with clock.frozen_at(local(date(2026, 12, 1), 14)):
        make_book(runtime, DEFAULTS).add("panel", local(date(2026, 12, 18), 10), by="cora")
    # channelflow starts on Mon 21 Dec at 09:00, after A's escalation fell due.
    set_initialised(runtime.engine, local(date(2026, 12, 21), 9))
    planner = make_planner(runtime, DEFAULTS)
    daily(planner, date(2026, 12, 22), date(2026, 12, 23))
    # A reviewed on Wed 23 Dec at 14:00 (after 08:00, when a reminder 7 days before a
    # 30 Dec review would have been due) with the next review on Wed 30 Dec.
    cases.review(a, at=local(date(2026, 12, 23), 14), next_review=date(2026, 12, 30))
    daily(planner, date(2026, 12, 24), date(2027, 1, 5))

    assert summaries(runtime.engine) == sorted(
        [
            # Upcoming when channelflow started: its agenda goes, the 18 Dec one does not.
            ("2026-12-22", "panel_agenda", CHRIS, "panel-2026-12-31@channelflow:s0"),
            ("2026-12-22", "panel_agenda", MEL, "panel-2026-12-31@channelflow:s0"),
            ("2026-12-24", "review_reminder", LOU, f"{b}:support_plan:2027-01-04:d7"),
            ("2026-12-30", "review_reminder", LEE, f"{a}:support_plan:2026-12-30:d0"),
            # 30 Dec + 2 working days: Thu 31 Dec, [1 Jan bank holiday, weekend], Mon 4 Jan.
            ("2027-01-04", "review_escalation", CHRIS, f"{a}:support_plan:2026-12-30"),
            ("2027-01-04", "review_reminder", LOU, f"{b}:support_plan:2027-01-04:d0"),
            # B due 4 Jan: Tue 5, Wed 6 Jan -- after the last pass.
        ]
    )


# Agenda content, moves, addenda, cancellations ------------------------------------------------

SECTIONS = (
    ("new", "1. New cases"),
    ("adjourned", "2. Cases adjourned to this panel"),
    ("reviews", "3. Support plan reviews due"),
    ("post_exit", "4. Post-exit reviews due"),
    ("aob", "5. Any other business"),
    ("counts", "Cases by state:"),
)


def agenda_sections(body: str) -> dict[str, str]:
    """The rendered agenda cut at its numbered headings."""
    found: dict[str, str] = {}
    for (name, heading), (_, following) in zip(SECTIONS, [*SECTIONS[1:], ("end", "")], strict=True):
        start = body.index(heading) + len(heading)
        end = body.index(following, start) if following else len(body)
        found[name] = body[start:end]
    return found


def test_the_agenda_of_a_moved_panel_lists_new_adjourned_reviews_post_exit_and_counts(
    runtime: Runtime, cases: Cases
) -> None:
    add_lead(runtime, "lou", email=LOU)
    # P: left Channel on Tue 20 Jul 2026: 6-month post-exit review due Wed 20 Jan 2027.
    p = cases.in_intervention(
        date(2026, 5, 1), lead="lee", first_review=date(2026, 6, 25), at=local(date(2026, 6, 1))
    )
    cases.fire(p, lc.EXIT, by=CHAIR, at=local(date(2026, 7, 20), 14), summary="done")
    # R1 review due Wed 20 Jan, R2 Wed 3 Feb, R3 Wed 10 Feb 2027.
    r1, r2, r3 = (
        cases.in_intervention(date(2026, 11, 2), lead="lou", first_review=due, at=SEEDED)
        for due in (date(2027, 1, 20), date(2027, 2, 3), date(2027, 2, 10))
    )
    # J: before the 31 Dec panel, adjourned there to the 28 Jan one.
    j = cases.to_panel(date(2026, 12, 1), date(2026, 12, 31), at=local(date(2026, 12, 2), 14))
    cases.fire(
        j,
        lc.ADJOURN,
        by=CHAIR,
        at=local(date(2026, 12, 31), 14),
        reason="report awaited",
        panel="2027-01-28",
    )
    # N new for 28 Jan; X for 25 Feb.
    n = cases.to_panel(date(2027, 1, 4), date(2027, 1, 28), at=local(date(2027, 1, 5), 14))
    x = cases.to_panel(date(2027, 1, 6), date(2027, 2, 25), at=local(date(2027, 1, 7), 14))
    # The 28 Jan panel is moved to Thu 4 Feb before its agenda (which would have gone 21 Jan):
    # the agenda goes 3, 2, 1 Feb, 29, 28 Jan -> Thu 28 Jan, as version 1.
    with clock.frozen_at(local(date(2027, 1, 15), 14)):
        make_book(runtime, DEFAULTS).move(
            "panel", date(2027, 1, 28), local(date(2027, 2, 4), 10), by="cora"
        )
    start_planning_at(runtime.engine, local(date(2027, 1, 15), 15))
    planner = make_planner(runtime, DEFAULTS)
    daily(planner, date(2027, 1, 16), date(2027, 1, 27))
    assert [s for s in planned(runtime.engine) if s.kind == "panel_agenda"] == []
    plan(planner, local(date(2027, 1, 28), 8))

    agendas = [s for s in planned(runtime.engine) if s.kind == "panel_agenda"]
    assert sorted((s.recipient, s.summary[3], s.day.isoformat()) for s in agendas) == [
        (CHRIS, "panel-2027-01-28@channelflow:s1", "2027-01-28"),
        (MEL, "panel-2027-01-28@channelflow:s1", "2027-01-28"),
    ]
    sections = agenda_sections(agendas[0].body_text)
    assert REFERENCE.findall(sections["new"]) == [n]
    assert REFERENCE.findall(sections["adjourned"]) == [j]
    # Due by 4 Feb: R1 and R2, not R3; and P's 6-month review (its 12-month one is in July).
    assert REFERENCE.findall(sections["reviews"]) == [r1, r2]
    assert REFERENCE.findall(sections["post_exit"]) == [p]
    assert "post-exit" in sections["post_exit"]
    assert x not in agendas[0].body_text
    assert re.findall(r"(\w[\w ]*): (\d+)", sections["counts"]) == [
        ("panel review", "3"),
        ("intervention", "3"),
        ("closed", "1"),
    ]

    # While the moved 4 Feb panel is still to come, the 25 Feb agenda covers only what
    # comes after it: X, and R3 (due 10 Feb); not J, N, R1, R2 or P's review.
    settings = DEFAULTS.panel
    with read_session(runtime.engine) as session:
        calendar = MeetingCalendar.load(session.connection(), settings)
        (february,) = calendar.on(date(2027, 2, 25))
        preview = build_agenda(
            session.connection(), calendar, february, now=local(date(2027, 1, 28), 8)
        )
    assert preview.new_cases == (x,)
    assert preview.adjourned == ()
    assert [review.reference for review in preview.reviews_due] == [r3]
    assert preview.post_exit_reviews == ()


def test_an_addendum_goes_once_for_each_set_of_cases_added_after_the_agenda(
    runtime: Runtime, cases: Cases
) -> None:
    start_planning_at(runtime.engine, local(date(2027, 1, 5), 7))
    n1 = cases.to_panel(date(2027, 1, 4), date(2027, 1, 28), at=local(date(2027, 1, 5), 14))
    planner = make_planner(runtime, DEFAULTS)
    daily(planner, date(2027, 1, 6), date(2027, 1, 22))  # agenda Thu 21 Jan, with n1
    n2 = cases.to_panel(date(2027, 1, 22), date(2027, 1, 28), at=local(date(2027, 1, 22), 14))
    daily(planner, date(2027, 1, 23), date(2027, 1, 25))
    n3 = cases.to_panel(date(2027, 1, 25), date(2027, 1, 28), at=local(date(2027, 1, 25), 14))
    # For the next panel: no addendum to this one.
    later = cases.to_panel(date(2027, 1, 25), date(2027, 2, 25), at=local(date(2027, 1, 25), 15))
    daily(planner, date(2027, 1, 26), date(2027, 1, 28))
    # After the meeting: nothing more for it.
    after = cases.to_panel(date(2027, 1, 28), date(2027, 2, 25), at=local(date(2027, 1, 28), 14))
    daily(planner, date(2027, 1, 29), date(2027, 2, 5))

    sent = planned(runtime.engine)
    agenda = [s for s in sent if s.kind == "panel_agenda" and "2027-01-28" in s.key]
    assert {s.day.isoformat() for s in agenda} == {"2027-01-21"}
    assert REFERENCE.findall(agenda_sections(agenda[0].body_text)["new"]) == [n1]
    addenda = sorted(
        (s.day.isoformat(), s.recipient, tuple(REFERENCE.findall(s.body_text)))
        for s in sent
        if s.kind == "agenda_addendum"
    )
    assert addenda == [
        ("2027-01-23", CHRIS, (n2,)),
        ("2027-01-23", MEL, (n2,)),
        ("2027-01-26", CHRIS, (n3,)),
        ("2027-01-26", MEL, (n3,)),
    ]
    assert all(
        s.summary[3] == "panel-2027-01-28@channelflow" for s in sent if s.kind == "agenda_addendum"
    )
    assert later not in {r for *_, refs in addenda for r in refs}
    assert after not in {r for *_, refs in addenda for r in refs}


def ics(message: Sent) -> str:
    (invitation,) = json.loads(message.attachments)
    return base64.b64decode(invitation["content"]).decode()


@pytest.mark.parametrize(
    ("new_day", "agenda_day"),
    [
        # Thu 11 Feb: the updated agenda goes 10, 9, 8, 5, 4 -> Thu 4 Feb.
        (date(2027, 2, 11), "2027-02-04"),
        # Wed 3 Mar, further ahead than meetings are usually looked at: 2, 1, 26, 25, 24 Feb.
        (date(2027, 3, 3), "2027-02-24"),
    ],
)
def test_moving_a_panel_after_its_agenda_tells_members_at_once_and_sends_the_agenda_later(
    runtime: Runtime, cases: Cases, new_day: date, agenda_day: str
) -> None:
    start_planning_at(runtime.engine, local(date(2027, 1, 1), 7))
    planner = make_planner(runtime, DEFAULTS)
    daily(planner, date(2027, 1, 1), date(2027, 1, 22))  # agenda Thu 21 Jan
    with clock.frozen_at(local(date(2027, 1, 22), 14)):
        make_book(runtime, DEFAULTS).move("panel", date(2027, 1, 28), local(new_day, 10), by="cora")
    daily(planner, date(2027, 1, 23), new_day)
    about_it = sorted(
        (s.day.isoformat(), s.kind, s.recipient, s.summary[3])
        for s in planned(runtime.engine)
        if "panel-2027-01-28@" in s.key
    )
    # The move is announced at the next pass (Sat 23 Jan): calendars must not keep the old
    # time until the updated agenda's lead time comes round.
    assert about_it == sorted(
        [
            ("2027-01-21", "panel_agenda", CHRIS, "panel-2027-01-28@channelflow:s0"),
            ("2027-01-21", "panel_agenda", MEL, "panel-2027-01-28@channelflow:s0"),
            ("2027-01-23", "meeting_moved", CHRIS, "panel-2027-01-28@channelflow:s1"),
            ("2027-01-23", "meeting_moved", MEL, "panel-2027-01-28@channelflow:s1"),
            (agenda_day, "panel_agenda", CHRIS, "panel-2027-01-28@channelflow:s1"),
            (agenda_day, "panel_agenda", MEL, "panel-2027-01-28@channelflow:s1"),
        ]
    )
    starts = f"DTSTART;TZID=Europe/London:{new_day.strftime('%Y%m%d')}T100000"
    for message in planned(runtime.engine):
        if message.summary[3] == "panel-2027-01-28@channelflow:s1":
            invitation = ics(message)
            assert "UID:panel-2027-01-28@channelflow" in invitation
            assert "SEQUENCE:1" in invitation
            assert starts in invitation


def test_moving_the_board_after_its_reminder_announces_the_move_then_reminds_again(
    runtime: Runtime, cases: Cases
) -> None:
    start_planning_at(runtime.engine, local(date(2027, 1, 1), 7))
    planner = make_planner(runtime, DEFAULTS)
    daily(planner, date(2027, 1, 1), date(2027, 1, 7))  # 13 Jan board: reminder Wed 6 Jan
    with clock.frozen_at(local(date(2027, 1, 7), 14)):
        make_book(runtime, DEFAULTS).move(
            "board", date(2027, 1, 13), local(date(2027, 1, 20), 14), by="chris"
        )
    reports = daily(planner, date(2027, 1, 8), date(2027, 1, 25))
    assert reports[0].queued == Counter(meeting_moved=1)
    assert reports[0].no_email == {"admin"}
    boards = [s for s in planned(runtime.engine) if s.key.split(":")[1].startswith("board-")]
    # The new date, Wed 20 Jan: 19, 18, 15, 14, 13 -> the reminder again on Wed 13 Jan.
    assert sorted(s.summary for s in boards) == [
        ("2027-01-06", "board_reminder", CHRIS, "board-2027-01-13@channelflow:s0"),
        ("2027-01-08", "meeting_moved", CHRIS, "board-2027-01-13@channelflow:s1"),
        ("2027-01-13", "board_reminder", CHRIS, "board-2027-01-13@channelflow:s1"),
    ]
    for message in boards[1:]:
        assert "SEQUENCE:1" in ics(message)
        assert "DTSTART;TZID=Europe/London:20270120T140000" in ics(message)


def test_cancelling_a_panel_after_its_agenda_sends_one_cancellation_and_reinstating_it_an_update(
    runtime: Runtime, cases: Cases
) -> None:
    start_planning_at(runtime.engine, local(date(2027, 1, 1), 7))
    planner = make_planner(runtime, DEFAULTS)
    book = make_book(runtime, DEFAULTS)
    daily(planner, date(2027, 1, 1), date(2027, 1, 4))
    # The 25 Feb panel is cancelled before its agenda (18 Feb): nothing is sent for it.
    with clock.frozen_at(local(date(2027, 1, 4), 14)):
        book.cancel("panel", date(2027, 2, 25), by="chris")
    daily(planner, date(2027, 1, 5), date(2027, 1, 22))  # 28 Jan agenda on Thu 21 Jan
    with clock.frozen_at(local(date(2027, 1, 22), 14)):
        book.cancel("panel", date(2027, 1, 28), by="chris")
    daily(planner, date(2027, 1, 23), date(2027, 1, 25))
    with clock.frozen_at(local(date(2027, 1, 25), 11)):
        book.add("panel", local(date(2027, 1, 28), 10), by="cora")  # reinstated: s2
    daily(planner, date(2027, 1, 26), date(2027, 3, 1))

    sent = [s for s in planned(runtime.engine) if s.key.split(":")[1].startswith("panel-")]
    assert sorted((s.day.isoformat(), s.kind, s.recipient, s.summary[3]) for s in sent) == [
        ("2027-01-21", "panel_agenda", CHRIS, "panel-2027-01-28@channelflow:s0"),
        ("2027-01-21", "panel_agenda", MEL, "panel-2027-01-28@channelflow:s0"),
        ("2027-01-23", "meeting_cancelled", CHRIS, "panel-2027-01-28@channelflow:s1"),
        ("2027-01-23", "meeting_cancelled", MEL, "panel-2027-01-28@channelflow:s1"),
        ("2027-01-26", "panel_agenda", CHRIS, "panel-2027-01-28@channelflow:s2"),
        ("2027-01-26", "panel_agenda", MEL, "panel-2027-01-28@channelflow:s2"),
        # The March panel (25 Mar): 24, 23, 22, 19, 18 -> Thu 18 Mar, after the last pass.
    ]
    (cancellation,) = [s for s in sent if s.kind == "meeting_cancelled" and s.recipient == MEL]
    assert "METHOD:CANCEL" in ics(cancellation)
    assert "STATUS:CANCELLED" in ics(cancellation)


# Planners at the same time ---------------------------------------------------------------


@pytest.mark.postgres
def test_a_planner_finding_another_one_planning_skips_its_pass(
    postgres_url: str, tmp_path: Path
) -> None:
    rt = make_runtime(postgres_url, tmp_path / "audit.key")
    try:
        set_initialised(rt.engine, INITIALISED)
        lead_a_due_17_december(Cases(rt.workflow))
        planner = make_planner(rt, DEFAULTS)
        now = local(date(2026, 12, 22), 8)
        holder = open_engine(postgres_url)
        try:
            with holder.connect() as other, other.begin():
                other.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PLANNING_LOCK})
                skipped = plan(planner, now)
                assert skipped.skipped
                assert skipped.total == 0
                assert skipped.describe() == (
                    "another process is planning; this pass planned nothing"
                )
                assert planned(rt.engine) == []
                assert get_meta(rt.engine, "planned_through") is None
        finally:
            holder.dispose()
        after = plan(planner, now)
        assert not after.skipped
        assert after.total == 5
    finally:
        rt.close()


def test_planners_racing_at_the_same_instants_queue_each_email_once(
    runtime: Runtime, cases: Cases
) -> None:
    add_lead(runtime, "lou", email=LOU)
    lead_a_due_17_december(cases)
    cases.in_intervention(date(2026, 11, 3), lead="lou", first_review=date(2026, 12, 23), at=SEEDED)
    engines = [open_engine(runtime.settings.database_url) for _ in range(2)]
    planners = [Planner(engine, DEFAULTS, runtime.notifier) for engine in engines]
    rounds: list[list[Any]] = []
    errors: list[BaseException] = []
    try:
        day = date(2026, 12, 1)
        while day <= date(2027, 1, 8):
            now = local(day, 8)
            barrier = threading.Barrier(len(planners))
            reports: list[Any] = []

            def run(
                planner: Planner,
                now: datetime = now,
                barrier: threading.Barrier = barrier,
                reports: list[Any] = reports,
            ) -> None:
                try:
                    barrier.wait(timeout=10)
                    reports.append(planner.plan(now=now))
                except BaseException as error:
                    errors.append(error)

            threads = [threading.Thread(target=run, args=(p,)) for p in planners]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            rounds.append(reports)
            day += timedelta(days=1)
    finally:
        for engine in engines:
            engine.dispose()
    assert errors == []
    keys = outbox_keys(runtime.engine)
    assert len(keys) == len(set(keys))
    # A: 10, 17 Dec reminders, escalation 21 Dec; B (due Wed 23 Dec): 16, 23 Dec, escalation
    # Thu 24, [25, 28], Tue 29 Dec; agenda 22 Dec (2); board 6 Jan (chris; admin no email).
    assert Counter(s.kind for s in planned(runtime.engine)) == Counter(
        review_reminder=4, review_escalation=2, panel_agenda=2, board_reminder=1
    )
    assert sum(report.total for reports in rounds for report in reports) == 9
    # Each instant was planned by at least one of them (the other skipped or found it done).
    assert all(len(reports) == 2 for reports in rounds)
    assert all(any(not report.skipped for report in reports) for reports in rounds)
