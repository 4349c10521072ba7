"""A year in the life: one planning pass every morning from 1 December 2026 to 31 December 2027.

A fixed data set is driven through the real workflow at realistic moments (reviews recorded,
a case added after its panel's agenda went out, a panel moved into Easter week, one cancelled
after its agenda and one before, a board meeting moved), and the exact emails the planner
queued are compared with a list worked out by hand from the calendar:

Panels (last Thursday, 10:00) and their agendas five working days before:
  31 Dec 2026 -> 22 Dec (30, 29, [28 Boxing Day observed, 25 Christmas], 24, 23, 22)
  28 Jan -> 21 Jan     25 Feb -> 18 Feb
  25 Mar, moved on 1 Mar (before its agenda) to Wed 31 Mar: only s1, due 22 Mar
     = 30, [29 Easter Monday, weekend, 26 Good Friday], 25, 24, 23, 22
  29 Apr -> 22 Apr, moved that afternoon to Fri 30 Apr: the updated agenda (s1) is due
     29, 28, 27, 26, 23 -> 23 Apr, the next pass, so it is the update itself that goes
  27 May -> 20 May     24 Jun -> 17 Jun     29 Jul -> 22 Jul
  26 Aug -> 19 Aug (cancelled 23 Aug: cancellation 24 Aug)
  16 Sep (added 1 Sep) -> 9 Sep      30 Sep (cancelled 1 Sep, before its agenda): nothing
  28 Oct -> 21 Oct     25 Nov -> 18 Nov
  30 Dec 2027 -> 21 Dec (29, [28 and 27 Christmas/Boxing Day observed], 24, 23, 22, 21)
Board (second Wednesday of Jan/Apr/Jul/Oct, 14:00), reminder five working days before:
  13 Jan -> 6 Jan    14 Apr -> 7 Apr
  14 Jul -> 7 Jul, moved on 8 Jul to 21 Jul: the move is announced at the next pass (9 Jul),
     the updated reminder (s1) goes 20, 19, 16, 15, 14 -> 14 Jul
  13 Oct (moved 1 Sep to 20 Oct, before its reminder) -> s1 only, due 13 Oct
Reviews (reminders 7 days before and on the day, on the working day on or before; escalation
to the chair two working days after the due date if still outstanding): see EXPECTED.

Every pass runs at exactly 08:00 London time, the configured sending time, so an email lands
on its send date only if the planner put its due time at 08:00 *local* time, on both sides
of the clock changes (28 March 2027, which is also Easter Sunday, and 31 October 2027); on
the days around them a pass runs every half hour all day, and still each email goes once,
at 08:00 local time.
"""

from __future__ import annotations

import base64
import json
import time as timer
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from freezegun import freeze_time

from channelflow import clock
from channelflow.runtime import Runtime
from channelflow.states import referral as lc
from tests.factories import CHAIR, COORDINATOR
from tests.planning_helpers import (
    Cases,
    add_lead,
    config,
    local,
    make_book,
    make_planner,
    planned,
    set_initialised,
)

LEE, LOU = "lee@example.org", "lou@example.org"
CHRIS, MEL, CORA = "chris@example.org", "mel@example.org", "cora@example.org"

FIRST_DAY, LAST_DAY = date(2026, 12, 1), date(2027, 12, 31)
INITIALISED = local(date(2026, 11, 30), 9)
SEEDED = local(date(2026, 11, 30), 12)

# The references the data set gets, in the order it creates them.
A, B, C, F = "CF-2026-0001", "CF-2026-0002", "CF-2026-0003", "CF-2026-0004"
D, E = "CF-2027-0001", "CF-2027-0002"

CONFIG = {
    "panel": {"location": "Committee Room 2"},  # members: the default, chris (chair) and mel
    "board": {"members": ["chris", "cora"]},
    "reminders": {"days_before": [7, 0], "escalate_after_working_days": 2},
    "schedule": {"sending_time": "08:00"},
}


def panel_agenda(day: str, uid: str, sequence: int = 0) -> list[tuple[str, str, str, str]]:
    occasion = f"{uid}@channelflow:s{sequence}"
    return [(day, "panel_agenda", CHRIS, occasion), (day, "panel_agenda", MEL, occasion)]


def board(day: str, uid: str, sequence: int = 0) -> list[tuple[str, str, str, str]]:
    occasion = f"{uid}@channelflow:s{sequence}"
    return [(day, "board_reminder", CHRIS, occasion), (day, "board_reminder", CORA, occasion)]


def reminder(day: str, lead: str, occasion: str) -> tuple[str, str, str, str]:
    return (day, "review_reminder", lead, occasion)


def escalation(day: str, occasion: str) -> tuple[str, str, str, str]:
    return (day, "review_escalation", CHRIS, occasion)


# Worked out by hand from the calendar (see the module docstring and the comments).
EXPECTED: list[tuple[str, str, str, str]] = sorted(
    [
        # A: support-plan review due Thu 17 Dec 2026, recorded that afternoon.
        reminder("2026-12-10", LEE, f"{A}:support_plan:2026-12-17:d7"),
        reminder("2026-12-17", LEE, f"{A}:support_plan:2026-12-17:d0"),
        *panel_agenda("2026-12-22", "panel-2026-12-31"),
        # B: due Fri 1 Jan 2027 (New Year's Day). 7 days before is Christmas Day, so the
        # Thursday before; on the day is a bank holiday, so Thu 31 Dec; escalation two
        # working days after 1 Jan: Mon 4, Tue 5 Jan. Recorded late, on 6 Jan.
        reminder("2026-12-24", LOU, f"{B}:support_plan:2027-01-01:d7"),
        reminder("2026-12-31", LOU, f"{B}:support_plan:2027-01-01:d0"),
        escalation("2027-01-05", f"{B}:support_plan:2027-01-01"),
        *board("2027-01-06", "board-2027-01-13"),
        *panel_agenda("2027-01-21", "panel-2027-01-28"),
        # D put before the 28 January panel on 25 January, after its agenda: one addendum.
        ("2027-01-26", "agenda_addendum", CHRIS, "panel-2027-01-28@channelflow"),
        ("2027-01-26", "agenda_addendum", MEL, "panel-2027-01-28@channelflow"),
        # C: exited 12 Aug 2026; 6-month post-exit review due Fri 12 Feb 2027, recorded then.
        reminder("2027-02-05", LEE, f"{C}:post_exit_6:2027-02-12:d7"),
        reminder("2027-02-12", LEE, f"{C}:post_exit_6:2027-02-12:d0"),
        *panel_agenda("2027-02-18", "panel-2027-02-25"),
        # A: due Thu 25 Mar 2027, not recorded until 1 April: escalation two working days
        # after, skipping Good Friday, the weekend and Easter Monday: Tue 30, Wed 31 Mar.
        reminder("2027-03-18", LEE, f"{A}:support_plan:2027-03-25:d7"),
        *panel_agenda("2027-03-22", "panel-2027-03-25", 1),
        reminder("2027-03-25", LEE, f"{A}:support_plan:2027-03-25:d0"),
        escalation("2027-03-31", f"{A}:support_plan:2027-03-25"),
        # F: due Mon 5 Apr; 7 days before is Easter Monday, so back over Easter Sunday,
        # Saturday and Good Friday to Thu 25 Mar. Recorded on the day.
        reminder("2027-03-25", LEE, f"{F}:support_plan:2027-04-05:d7"),
        reminder("2027-04-05", LEE, f"{F}:support_plan:2027-04-05:d0"),
        *board("2027-04-07", "board-2027-04-14"),
        *panel_agenda("2027-04-22", "panel-2027-04-29"),
        *panel_agenda("2027-04-23", "panel-2027-04-29", 1),
        *panel_agenda("2027-05-20", "panel-2027-05-27"),
        # D: due Mon 31 May (spring bank holiday): on the day -> Fri 28 May; recorded on
        # 1 June, before its escalation (2 June) fell due.
        reminder("2027-05-24", LOU, f"{D}:support_plan:2027-05-31:d7"),
        reminder("2027-05-28", LOU, f"{D}:support_plan:2027-05-31:d0"),
        # B: due Thu 24 Jun; consent withdrawn that afternoon, so no escalation on 28 June.
        *panel_agenda("2027-06-17", "panel-2027-06-24"),
        reminder("2027-06-17", LOU, f"{B}:support_plan:2027-06-24:d7"),
        reminder("2027-06-24", LOU, f"{B}:support_plan:2027-06-24:d0"),
        *board("2027-07-07", "board-2027-07-14"),
        ("2027-07-09", "meeting_moved", CHRIS, "board-2027-07-14@channelflow:s1"),
        ("2027-07-09", "meeting_moved", CORA, "board-2027-07-14@channelflow:s1"),
        *board("2027-07-14", "board-2027-07-14", 1),
        *panel_agenda("2027-07-22", "panel-2027-07-29"),
        # C: 12-month post-exit review due Thu 12 Aug, recorded on 17 Aug: escalated on 16th.
        reminder("2027-08-05", LEE, f"{C}:post_exit_12:2027-08-12:d7"),
        reminder("2027-08-12", LEE, f"{C}:post_exit_12:2027-08-12:d0"),
        escalation("2027-08-16", f"{C}:post_exit_12:2027-08-12"),
        *panel_agenda("2027-08-19", "panel-2027-08-26"),
        ("2027-08-24", "meeting_cancelled", CHRIS, "panel-2027-08-26@channelflow:s1"),
        ("2027-08-24", "meeting_cancelled", MEL, "panel-2027-08-26@channelflow:s1"),
        *panel_agenda("2027-09-09", "panel-added-2027-09-16"),
        # D: due Thu 30 Sep, recorded on 5 Oct: escalated on Mon 4 Oct.
        reminder("2027-09-23", LOU, f"{D}:support_plan:2027-09-30:d7"),
        reminder("2027-09-30", LOU, f"{D}:support_plan:2027-09-30:d0"),
        escalation("2027-10-04", f"{D}:support_plan:2027-09-30"),
        *board("2027-10-13", "board-2027-10-13", 1),
        *panel_agenda("2027-10-21", "panel-2027-10-28"),
        # The autumn clock-change week: D due Fri 29 Oct (BST), A due Mon 1 Nov (GMT).
        reminder("2027-10-22", LOU, f"{D}:support_plan:2027-10-29:d7"),
        reminder("2027-10-25", LEE, f"{A}:support_plan:2027-11-01:d7"),
        reminder("2027-10-29", LOU, f"{D}:support_plan:2027-10-29:d0"),
        # A exits on the afternoon of 1 Nov: no escalation on 3 Nov.
        reminder("2027-11-01", LEE, f"{A}:support_plan:2027-11-01:d0"),
        *panel_agenda("2027-11-18", "panel-2027-11-25"),
        # F: due Thu 2 Dec, never recorded: escalated Fri 3, Mon 6 Dec.
        reminder("2027-11-25", LEE, f"{F}:support_plan:2027-12-02:d7"),
        reminder("2027-12-02", LEE, f"{F}:support_plan:2027-12-02:d0"),
        escalation("2027-12-06", f"{F}:support_plan:2027-12-02"),
        *panel_agenda("2027-12-21", "panel-2027-12-30"),
    ]
)


def seed(runtime: Runtime, cases: Cases) -> None:
    """The data as it stands on 30 November 2026, the day after channelflow was set up."""
    add_lead(runtime, "lou", email=LOU)
    set_initialised(runtime.engine, INITIALISED)
    assert (
        cases.in_intervention(
            date(2026, 11, 2), lead="lee", first_review=date(2026, 12, 17), at=SEEDED
        )
        == A
    )
    assert (
        cases.in_intervention(
            date(2026, 11, 3), lead="lou", first_review=date(2027, 1, 1), at=SEEDED
        )
        == B
    )
    # C went through Channel in 2026 and left it on 12 August (typed in on the 30th).
    assert cases.open(date(2026, 1, 5), at=SEEDED) == C
    for day, event, by, values in (
        (date(2026, 1, 6), lc.SCREEN, "pat", {"outcome": "proceed"}),
        (date(2026, 1, 7), lc.REFER_TO_PANEL, COORDINATOR, {"panel": "2026-01-29"}),
        (date(2026, 1, 29), lc.ACCEPT, CHAIR, {"consent": "given", "lead": "lee"}),
        (
            date(2026, 2, 1),
            lc.START_INTERVENTION,
            COORDINATOR,
            {"support_plan": "SP-7", "first_review": "2026-03-26"},
        ),
        (date(2026, 8, 12), lc.EXIT, CHAIR, {"summary": "objectives met"}),
    ):
        cases.fire(C, event, by=by, at=local(day, 14), recorded=SEEDED, values=values)
    assert (
        cases.in_intervention(
            date(2026, 11, 4), lead="lee", first_review=date(2027, 4, 5), at=SEEDED
        )
        == F
    )


def actions(runtime: Runtime, cases: Cases) -> dict[date, Callable[[], None]]:
    """What people do during the year, each at 14:00 London time on the day."""
    book = make_book(runtime, config(CONFIG))

    def on(day: date) -> datetime:
        return local(day, 14)

    def add_d() -> None:
        day = date(2027, 1, 25)
        assert cases.to_panel(date(2027, 1, 18), date(2027, 1, 28), at=on(day)) == D

    def add_e() -> None:
        day = date(2027, 2, 10)
        assert cases.to_panel(date(2027, 2, 8), date(2027, 2, 25), at=on(day)) == E

    def review(reference: str, day: date, next_review: date) -> Callable[[], None]:
        return lambda: cases.review(reference, at=on(day), next_review=next_review)

    def fire(reference: str, event: str, by: str, day: date, **values: str) -> Callable[[], None]:
        reason = "as discussed" if event in (lc.ADJOURN, lc.DECLINE, lc.WITHDRAW_CONSENT) else None
        return lambda: cases.fire(reference, event, by=by, at=on(day), reason=reason, values=values)

    def meetings_on_1_september() -> None:
        with clock.frozen_at(on(date(2027, 9, 1))):
            book.cancel("panel", date(2027, 9, 30), by="chris")
            book.add("panel", local(date(2027, 9, 16), 10), by="cora")
            book.move("board", date(2027, 10, 13), local(date(2027, 10, 20), 14), by="cora")

    def move_march_panel() -> None:
        with clock.frozen_at(on(date(2027, 3, 1))):
            book.move("panel", date(2027, 3, 25), local(date(2027, 3, 31), 10), by="cora")

    def move_april_panel() -> None:
        with clock.frozen_at(on(date(2027, 4, 22))):
            book.move("panel", date(2027, 4, 29), local(date(2027, 4, 30), 10), by="cora")

    def move_july_board() -> None:
        with clock.frozen_at(on(date(2027, 7, 8))):
            book.move("board", date(2027, 7, 14), local(date(2027, 7, 21), 14), by="chris")

    def cancel_august_panel() -> None:
        with clock.frozen_at(on(date(2027, 8, 23))):
            book.cancel("panel", date(2027, 8, 26), by="chris")

    return {
        date(2026, 12, 17): review(A, date(2026, 12, 17), date(2027, 3, 25)),
        date(2027, 1, 6): review(B, date(2027, 1, 6), date(2027, 6, 24)),
        date(2027, 1, 25): add_d,
        date(2027, 1, 28): fire(
            D, lc.ACCEPT, CHAIR, date(2027, 1, 28), consent="given", lead="lou"
        ),
        date(2027, 2, 4): fire(
            D,
            lc.START_INTERVENTION,
            COORDINATOR,
            date(2027, 2, 4),
            support_plan="SP-9",
            first_review="2027-05-31",
        ),
        date(2027, 2, 10): add_e,
        date(2027, 2, 12): fire(
            C, lc.RECORD_POST_EXIT_REVIEW, COORDINATOR, date(2027, 2, 12), outcome="no_concerns"
        ),
        date(2027, 2, 25): fire(E, lc.ADJOURN, CHAIR, date(2027, 2, 25), panel="2027-03-25"),
        date(2027, 3, 1): move_march_panel,
        date(2027, 3, 31): fire(E, lc.DECLINE, CHAIR, date(2027, 3, 31), route="signposted"),
        date(2027, 4, 1): review(A, date(2027, 4, 1), date(2027, 11, 1)),
        date(2027, 4, 5): review(F, date(2027, 4, 5), date(2027, 12, 2)),
        date(2027, 4, 22): move_april_panel,
        date(2027, 6, 1): review(D, date(2027, 6, 1), date(2027, 9, 30)),
        date(2027, 6, 24): fire(
            B, lc.WITHDRAW_CONSENT, COORDINATOR, date(2027, 6, 24), route="no_further_action"
        ),
        date(2027, 7, 8): move_july_board,
        date(2027, 8, 17): fire(
            C, lc.RECORD_POST_EXIT_REVIEW, COORDINATOR, date(2027, 8, 17), outcome="no_concerns"
        ),
        date(2027, 8, 23): cancel_august_panel,
        date(2027, 9, 1): meetings_on_1_september,
        date(2027, 10, 5): review(D, date(2027, 10, 5), date(2027, 10, 29)),
        date(2027, 10, 29): review(D, date(2027, 10, 29), date(2028, 2, 24)),
        date(2027, 11, 1): fire(A, lc.EXIT, CHAIR, date(2027, 11, 1), summary="objectives met"),
    }


def ics_of(attachments: str) -> str:
    (invitation,) = json.loads(attachments)
    return base64.b64decode(invitation["content"]).decode()


# Around the clock changes a pass runs every half hour (in UTC, so through the hour that
# happens twice in October and past the one that never happens in March), not just at 08:00.
CLOCK_CHANGE_DAYS = frozenset(
    {
        date(2027, 3, 27),
        date(2027, 3, 28),  # 23 hours long
        date(2027, 3, 29),
        date(2027, 10, 30),
        date(2027, 10, 31),  # 25 hours long
        date(2027, 11, 1),
    }
)


def passes_on(day: date) -> list[datetime]:
    if day not in CLOCK_CHANGE_DAYS:
        return [local(day, 8)]
    instant, end = local(day, 0).astimezone(UTC), local(day + timedelta(days=1), 0)
    instants = []
    while instant < end:
        instants.append(instant)
        instant += timedelta(minutes=30)
    return instants


@dataclass
class Year:
    passes: int = 0
    queued: int = 0
    no_email: set[str] = field(default_factory=set)
    skipped: int = 0
    seconds: float = 0.0


def live_through_the_year(runtime: Runtime) -> Year:
    """Seed, then plan through the year, doing each day's action at 14:00 London time."""
    cases = Cases(runtime.workflow)
    seed(runtime, cases)
    todo = actions(runtime, cases)
    planner = make_planner(runtime, config(CONFIG))
    year = Year()
    started = timer.perf_counter()
    day = FIRST_DAY
    # Time moves under freezegun and each pass reads the application's clock, as `run` does.
    with freeze_time(local(FIRST_DAY, 0)) as frozen:
        while day <= LAST_DAY:
            action_at = local(day, 14)
            for now in passes_on(day):
                if day in todo and now >= action_at:
                    todo.pop(day)()
                frozen.move_to(now)
                report = planner.plan()
                assert report.now == now
                year.passes += 1
                year.queued += report.total
                year.no_email |= report.no_email
                year.skipped += report.skipped
            if day in todo:
                todo.pop(day)()
            day += timedelta(days=1)
    year.seconds = timer.perf_counter() - started
    assert not todo, "every action of the year ran"
    return year


def test_a_year_of_daily_planning_passes_queues_exactly_the_emails_worked_out_by_hand(
    runtime: Runtime,
) -> None:
    year = live_through_the_year(runtime)
    # 396 days, of which six have 48 passes instead of one, less two on the 23-hour day
    # and two more on the 25-hour one: 390 + 4 * 48 + 46 + 50.
    assert year.passes == 678
    assert year.skipped == 0
    assert year.no_email == set()

    sent = planned(runtime.engine)
    assert sorted(s.summary for s in sent) == EXPECTED
    assert year.queued == len(EXPECTED)
    # Every email went in the first pass at or after its due time, 08:00 London time.
    assert {s.created_at.astimezone(clock.LOCAL_ZONE).time().isoformat() for s in sent} == {
        "08:00:00"
    }
    print(f"{year.passes} planning passes in {year.seconds:.1f} s")


def test_the_year_lands_on_the_right_days_around_christmas_easter_and_the_clock_changes(
    runtime: Runtime,
) -> None:
    """The spot checks the year is for, stated on their own so a failure says which one."""
    live_through_the_year(runtime)
    sent = planned(runtime.engine)

    def days_of(kind: str, occasion_part: str) -> set[str]:
        return {s.day.isoformat() for s in sent if s.kind == kind and occasion_part in s.key}

    def utc_times(kind: str, occasion_part: str) -> set[datetime]:
        return {
            s.created_at.astimezone(UTC) for s in sent if s.kind == kind and occasion_part in s.key
        }

    # Christmas 2026: 30, 29, (28 observed Boxing Day, 25 Christmas, weekend), 24, 23, 22.
    assert days_of("panel_agenda", "panel-2026-12-31@") == {"2026-12-22"}
    assert days_of("board_reminder", "board-2027-01-13@") == {"2027-01-06"}
    assert days_of("review_reminder", f"{B}:support_plan:2027-01-01:d7") == {"2026-12-24"}
    assert days_of("review_reminder", f"{B}:support_plan:2027-01-01:d0") == {"2026-12-31"}
    assert days_of("review_escalation", f"{B}:support_plan:2027-01-01") == {"2027-01-05"}
    # Christmas 2027 (Christmas and Boxing Day fall at the weekend: 27 and 28 are off).
    assert days_of("panel_agenda", "panel-2027-12-30@") == {"2027-12-21"}

    # Easter 2027 (Good Friday 26 March, Easter Monday 29 March) is also the spring clock
    # change (Sunday 28 March): the agenda of the panel moved into Easter week, and the
    # escalation. The panel was moved before its first agenda, so there is no s0 at all.
    assert days_of("panel_agenda", "panel-2027-03-25@channelflow:s1") == {"2027-03-22"}
    assert days_of("panel_agenda", "panel-2027-03-25@channelflow:s0") == set()
    assert utc_times("panel_agenda", "panel-2027-03-25@channelflow:s1") == {
        datetime(2027, 3, 22, 8, 0, tzinfo=UTC)  # GMT
    }
    assert days_of("review_escalation", f"{A}:support_plan:2027-03-25") == {"2027-03-31"}
    assert days_of("review_reminder", f"{F}:support_plan:2027-04-05:d7") == {"2027-03-25"}
    assert utc_times("review_reminder", f"{A}:support_plan:2027-03-25:d0") == {
        datetime(2027, 3, 25, 8, 0, tzinfo=UTC)  # GMT
    }
    assert utc_times("review_escalation", f"{A}:support_plan:2027-03-25") == {
        datetime(2027, 3, 31, 7, 0, tzinfo=UTC)  # BST
    }
    updated = [s for s in sent if "panel-2027-03-25@channelflow:s1" in s.key]
    assert sorted(s.recipient for s in updated) == [CHRIS, MEL]
    for message in updated:
        invitation = ics_of(message.attachments)
        assert "SEQUENCE:1" in invitation
        assert "UID:panel-2027-03-25@channelflow" in invitation
        assert "DTSTART;TZID=Europe/London:20270331T100000" in invitation
    # The July board's move is announced with an updated invitation for the same entry.
    moves = [s for s in sent if s.kind == "meeting_moved"]
    assert sorted(s.recipient for s in moves) == [CHRIS, CORA]
    for message in moves:
        invitation = ics_of(message.attachments)
        assert "UID:board-2027-07-14@channelflow" in invitation
        assert "SEQUENCE:1" in invitation
        assert "DTSTART;TZID=Europe/London:20270721T140000" in invitation
    # The cancellation of the August panel cancels the same calendar entry.
    cancelled = [s for s in sent if s.kind == "meeting_cancelled"]
    assert len(cancelled) == 2
    for message in cancelled:
        invitation = ics_of(message.attachments)
        assert "METHOD:CANCEL" in invitation
        assert "UID:panel-2027-08-26@channelflow" in invitation
        assert "SEQUENCE:1" in invitation

    # The autumn clock change (Sunday 31 October 2027).
    assert utc_times("review_reminder", f"{D}:support_plan:2027-10-29:d0") == {
        datetime(2027, 10, 29, 7, 0, tzinfo=UTC)  # BST
    }
    assert utc_times("review_reminder", f"{A}:support_plan:2027-11-01:d0") == {
        datetime(2027, 11, 1, 8, 0, tzinfo=UTC)  # GMT
    }
    # Nothing twice: every idempotency key, and every (kind, recipient, occasion), once.
    assert len({s.key for s in sent}) == len(sent)
    assert len({(s.kind, s.recipient, s.summary[3]) for s in sent}) == len(sent)
