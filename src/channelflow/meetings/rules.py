"""Recurring meeting rules such as "last Thursday of the month at 10:00" (Europe/London).

A rule is data: a weekday, which occurrence of it in the month (1-4, or -1 for the last),
the months it applies to, and a wall-clock time. Meetings are in local time, so a meeting at
10:00 stays at 10:00 across the clock changes.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time

from channelflow import clock
from channelflow.exceptions import ConfigurationError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALL_MONTHS = tuple(range(1, 13))


@dataclass(frozen=True)
class MeetingRule:
    weekday: int  # Monday is 0
    occurrence: int  # 1-4, or -1 for the last in the month
    at: time
    months: tuple[int, ...] = ALL_MONTHS

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ConfigurationError("a meeting rule's weekday must be monday to sunday")
        if self.occurrence not in (-1, 1, 2, 3, 4):
            raise ConfigurationError(
                "a meeting rule's occurrence must be 1, 2, 3, 4 or -1 (the last in the month)"
            )
        if not self.months or any(not 1 <= month <= 12 for month in self.months):
            raise ConfigurationError("a meeting rule's months must be between 1 and 12")

    def day_in(self, year: int, month: int) -> date | None:
        """The meeting day in ``month`` of ``year``, or None if the rule skips that month."""
        if month not in self.months:
            return None
        days = [
            day
            for day in calendar.Calendar().itermonthdates(year, month)
            if day.month == month and day.weekday() == self.weekday
        ]
        return days[-1] if self.occurrence == -1 else days[self.occurrence - 1]

    def starts_at(self, day: date) -> datetime:
        return datetime.combine(day, self.at, clock.LOCAL_ZONE)

    def next_after(self, day: date) -> date:
        """The first meeting day strictly after ``day``."""
        year, month = day.year, day.month
        while True:
            found = self.day_in(year, month)
            if found is not None and found > day:
                return found
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def last_before(self, day: date) -> date:
        """The latest meeting day strictly before ``day``."""
        year, month = day.year, day.month
        while True:
            found = self.day_in(year, month)
            if found is not None and found < day:
                return found
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)

    def between(self, first: date, last: date) -> Iterator[date]:
        """Meeting days from ``first`` to ``last``, both included."""
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            day = self.day_in(year, month)
            if day is not None and first <= day <= last:
                yield day
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)


# DOMAIN.md's defaults: a monthly panel on the last Thursday at 10:00, the Strategic Prevent
# Board on the second Wednesday of January, April, July and October at 14:00.
PANEL_RULE = MeetingRule(weekday=3, occurrence=-1, at=time(10, 0))
BOARD_RULE = MeetingRule(weekday=2, occurrence=2, at=time(14, 0), months=(1, 4, 7, 10))
