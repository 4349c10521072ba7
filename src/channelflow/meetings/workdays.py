"""Working days in England and Wales: Monday to Friday, less bank holidays.

Bank holidays come from the `holidays` package's data (no network at run time), including
substitute days ("Boxing Day (observed)") and one-off holidays it knows of.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

SATURDAY = 5


@lru_cache(maxsize=64)
def _bank_holidays(year: int) -> frozenset[date]:
    # Loaded on first use: the package's data costs every command's start otherwise.
    import holidays

    found = holidays.country_holidays("GB", subdiv="ENG", years=[year])
    return frozenset(found.keys())


class WorkingDays:
    """Counting working days; ``extra_closures`` are further days the council is closed."""

    def __init__(self, *, extra_closures: frozenset[date] = frozenset()) -> None:
        self.extra_closures = extra_closures

    def is_working_day(self, day: date) -> bool:
        return (
            day.weekday() < SATURDAY
            and day not in _bank_holidays(day.year)
            and day not in self.extra_closures
        )

    def before(self, day: date, count: int) -> date:
        """The working day ``count`` working days before ``day``, not counting ``day`` itself.

        For Thursday 26 November 2026 and 5 that is Thursday 19 November.
        """
        if count < 1:
            raise ValueError("count must be at least one")
        found = 0
        current = day
        while found < count:
            current -= timedelta(days=1)
            if self.is_working_day(current):
                found += 1
        return current

    def after(self, day: date, count: int) -> date:
        """The working day ``count`` working days after ``day``, not counting ``day`` itself."""
        if count < 1:
            raise ValueError("count must be at least one")
        found = 0
        current = day
        while found < count:
            current += timedelta(days=1)
            if self.is_working_day(current):
                found += 1
        return current

    def on_or_before(self, day: date) -> date:
        """``day`` if it is a working day, else the working day before it."""
        current = day
        while not self.is_working_day(current):
            current -= timedelta(days=1)
        return current
