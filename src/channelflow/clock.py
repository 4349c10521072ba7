"""The one clock the whole package reads.

Everything that needs "now" calls :func:`now`, so the CLI's ``--now`` option and the tests
(``freezegun`` or :func:`frozen_at`) move time for all of channelflow at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

LOCAL_ZONE = ZoneInfo("Europe/London")

_override: datetime | None = None


def now() -> datetime:
    """The current instant, timezone-aware, in UTC."""
    if _override is not None:
        return _override
    return datetime.now(UTC)


def today() -> date:
    """Today's date in England and Wales (the date a council's staff would write down)."""
    return local_date(now())


def local_date(instant: datetime) -> date:
    return instant.astimezone(LOCAL_ZONE).date()


def set_now(instant: datetime | None) -> None:
    """Pin the clock to ``instant`` (aware), or release it with ``None``."""
    global _override
    if instant is not None and instant.tzinfo is None:
        raise ValueError("the clock needs a timezone-aware datetime")
    _override = instant.astimezone(UTC) if instant is not None else None


@contextmanager
def frozen_at(instant: datetime) -> Iterator[None]:
    previous = _override
    set_now(instant)
    try:
        yield
    finally:
        set_now(previous)
