"""Parsing dates and times typed by users, and the calendar arithmetic the lifecycle needs."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time

from channelflow import clock
from channelflow.exceptions import InvalidInput
from channelflow.meetings.rules import PANEL_RULE

EARLIEST_YEAR = 1900
# Far enough for any plan, near enough that date arithmetic never overflows.
LATEST_YEAR = 2999


def parse_date(text: str, *, what: str) -> date:
    try:
        parsed = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{what} must be a date written YYYY-MM-DD") from None
    _check_year(parsed.year, what)
    return parsed


def _check_year(year: int, what: str) -> None:
    if year < EARLIEST_YEAR:
        raise InvalidInput(f"{what} is before {EARLIEST_YEAR}")
    if year > LATEST_YEAR:
        raise InvalidInput(f"{what} is after {LATEST_YEAR}")


def parse_datetime(text: str, *, what: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is Europe/London wall-clock time."""
    text = text.strip()
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time(), clock.LOCAL_ZONE)
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{what} must be a date (YYYY-MM-DD) or date and time (YYYY-MM-DDTHH:MM)"
        ) from None
    _check_year(parsed.year, what)
    if parsed.tzinfo is not None:
        return parsed
    local = parsed.replace(tzinfo=clock.LOCAL_ZONE)
    if local.astimezone(UTC).astimezone(clock.LOCAL_ZONE).replace(tzinfo=None) != parsed:
        raise InvalidInput(
            f"{what} does not exist in Europe/London: the clocks go forward that night"
        )
    return local


def not_in_future(instant: datetime, *, what: str) -> datetime:
    if instant > clock.now():
        raise InvalidInput(f"{what} is in the future")
    return instant


def date_not_in_future(day: date, *, what: str) -> date:
    if day > clock.today():
        raise InvalidInput(f"{what} is in the future")
    return day


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def age_on(date_of_birth: date, day: date) -> int:
    before_birthday = (day.month, day.day) < (date_of_birth.month, date_of_birth.day)
    return day.year - date_of_birth.year - int(before_birthday)


def next_panel_after(day: date) -> date:
    """The first panel day strictly after ``day``, by the default panel rule.

    Stands in until the scheduler's configurable panel calendar exists.
    """
    return PANEL_RULE.next_after(day)
