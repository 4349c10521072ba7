"""Working days in England and Wales and the meeting rules (groundwork for the scheduler)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelflow.exceptions import ConfigurationError
from channelflow.meetings.rules import BOARD_RULE, PANEL_RULE, MeetingRule
from channelflow.meetings.workdays import WorkingDays

DAYS = WorkingDays()


def test_five_working_days_before_thursday_26_november_2026_is_thursday_19_november() -> None:
    assert DAYS.before(date(2026, 11, 26), 5) == date(2026, 11, 19)


def test_christmas_and_the_observed_boxing_day_are_not_working_days() -> None:
    # 25 Dec 2026 is a Friday; Boxing Day falls on Saturday, so Monday 28th is the holiday.
    assert not DAYS.is_working_day(date(2026, 12, 25))
    assert not DAYS.is_working_day(date(2026, 12, 28))
    assert DAYS.before(date(2026, 12, 31), 5) == date(2026, 12, 22)


def test_easter_2027_good_friday_and_easter_monday_are_skipped() -> None:
    assert DAYS.before(date(2027, 4, 1), 3) == date(2027, 3, 25)
    assert DAYS.on_or_before(date(2027, 3, 29)) == date(2027, 3, 25)
    assert DAYS.after(date(2027, 3, 25), 1) == date(2027, 3, 30)


def test_a_weekend_day_moves_to_the_friday_before() -> None:
    assert DAYS.on_or_before(date(2026, 11, 29)) == date(2026, 11, 27)
    assert DAYS.on_or_before(date(2026, 11, 27)) == date(2026, 11, 27)


def test_extra_closures_are_not_working_days() -> None:
    closed = WorkingDays(extra_closures=frozenset({date(2026, 11, 24)}))
    assert closed.before(date(2026, 11, 26), 2) == date(2026, 11, 23)


def test_counting_needs_at_least_one_day() -> None:
    with pytest.raises(ValueError, match="at least one"):
        DAYS.before(date(2026, 11, 26), 0)


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31)),
    st.integers(min_value=1, max_value=30),
)
def test_before_lands_on_a_working_day_exactly_count_working_days_back(
    day: date, count: int
) -> None:
    found = DAYS.before(day, count)
    assert DAYS.is_working_day(found)
    between = [
        found + timedelta(days=offset)
        for offset in range(1, (day - found).days)
        if DAYS.is_working_day(found + timedelta(days=offset))
    ]
    assert len(between) == count - 1
    first_on_or_after = day
    while not DAYS.is_working_day(first_on_or_after):
        first_on_or_after += timedelta(days=1)
    assert DAYS.after(found, count) == first_on_or_after


def test_the_panel_rule_is_the_last_thursday_of_every_month_at_ten() -> None:
    days = list(PANEL_RULE.between(date(2026, 1, 1), date(2026, 12, 31)))
    assert len(days) == 12
    assert days[10] == date(2026, 11, 26)
    for day in days:
        assert day.weekday() == 3
        assert (day + timedelta(days=7)).month != day.month


def test_the_board_rule_is_the_second_wednesday_of_each_quarter_at_two() -> None:
    days = list(BOARD_RULE.between(date(2027, 1, 1), date(2027, 12, 31)))
    assert days == [date(2027, 1, 13), date(2027, 4, 14), date(2027, 7, 14), date(2027, 10, 13)]
    assert BOARD_RULE.day_in(2027, 2) is None


def test_meetings_keep_their_wall_clock_time_across_the_clock_changes() -> None:
    winter = PANEL_RULE.starts_at(date(2027, 3, 25))  # before BST begins on 28 March
    summer = PANEL_RULE.starts_at(date(2027, 4, 29))
    assert winter.astimezone(UTC) == datetime(2027, 3, 25, 10, 0, tzinfo=UTC)
    assert summer.astimezone(UTC) == datetime(2027, 4, 29, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "arguments",
    [
        {"weekday": 7, "occurrence": -1},
        {"weekday": 3, "occurrence": 5},
        {"weekday": 3, "occurrence": 0},
        {"weekday": 3, "occurrence": 1, "months": (13,)},
        {"weekday": 3, "occurrence": 1, "months": ()},
    ],
)
def test_a_meeting_rule_that_cannot_be_is_a_configuration_error(
    arguments: dict[str, object],
) -> None:
    with pytest.raises(ConfigurationError):
        MeetingRule(at=time(10, 0), **arguments)  # type: ignore[arg-type]


@given(st.dates(min_value=date(1950, 1, 1), max_value=date(2100, 12, 31)))
def test_next_after_and_last_before_bracket_any_day(day: date) -> None:
    following, previous = PANEL_RULE.next_after(day), PANEL_RULE.last_before(day)
    assert previous < day < following
    assert list(
        PANEL_RULE.between(previous + timedelta(days=1), following - timedelta(days=1))
    ) == [d for d in [day] if PANEL_RULE.day_in(d.year, d.month) == d]
