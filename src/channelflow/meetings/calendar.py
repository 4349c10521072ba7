"""A body's meetings: the configured rule, with the meetings moved, cancelled or added by hand.

Meetings on the rule have no stored row. A stored row replaces its rule day (``rule_day``) or
adds a meeting off the rule, so the calendar stays right when the rule in the configuration
changes, and a moved meeting keeps the identity (UID) calendar programs know it by.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select

from channelflow import clock
from channelflow.config import BodySettings
from channelflow.notifications.kinds import Meeting
from channelflow.store.db import DriverConnection, DriverStatement
from channelflow.store.models import MeetingRow

# How far ahead `next_after` looks: a rule meets at least once a year.
_HORIZON = timedelta(days=400)
_meeting = MeetingRow.__table__  # type: ignore[attr-defined]
_ROWS = DriverStatement(select(_meeting).where(_meeting.c.body == bindparam("body")))


def uid_for(body: str, day: date, *, added: bool = False) -> str:
    return f"{body}-{'added-' if added else ''}{day.isoformat()}@channelflow"


@dataclass(frozen=True)
class ScheduledMeeting:
    body: str
    uid: str
    starts_at: datetime  # aware; Europe/London wall-clock time
    sequence: int = 0
    cancelled: bool = False
    rule_day: date | None = None
    # When it was last changed by hand, and by whom; None for a meeting on the rule.
    changed_at: datetime | None = None
    changed_by: str | None = None
    added: bool = False

    @property
    def day(self) -> date:
        return clock.local_date(self.starts_at)

    @property
    def origin(self) -> str:
        if self.added:
            return "added"
        if self.changed_at is None:
            return "rule"
        return "cancelled" if self.cancelled else "moved"

    def context(self, settings: BodySettings) -> Meeting:
        """What an email (and its calendar invitation) says about this meeting."""
        return Meeting(
            body=self.body,
            uid=self.uid,
            starts_at=self.starts_at.astimezone(clock.LOCAL_ZONE),
            minutes=settings.minutes,
            sequence=self.sequence,
            location=settings.location,
            link=settings.link,
            cancelled=self.cancelled,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "body": self.body,
            "date": self.day.isoformat(),
            "starts_at": self.starts_at.astimezone(clock.LOCAL_ZONE).isoformat(),
            "uid": self.uid,
            "sequence": self.sequence,
            "status": "cancelled" if self.cancelled else "scheduled",
            "origin": self.origin,
            "rule_date": self.rule_day.isoformat() if self.rule_day else None,
        }


class MeetingCalendar:
    """One body's meetings, from its rule and its stored changes."""

    def __init__(self, settings: BodySettings, rows: Iterable[Any]) -> None:
        self.settings = settings
        self.changed: list[ScheduledMeeting] = [_from_row(row) for row in rows]
        self._replaced = {m.rule_day for m in self.changed if m.rule_day is not None}

    @classmethod
    def load(
        cls, connection: Connection | DriverConnection, settings: BodySettings
    ) -> MeetingCalendar:
        """Within the caller's transaction, on either kind of connection."""
        return cls(settings, _ROWS.all(connection, {"body": settings.name}))

    def meetings(
        self, first: date, last: date, *, include_cancelled: bool = False
    ) -> list[ScheduledMeeting]:
        """Meetings on the days from ``first`` to ``last`` (both included), in time order."""
        rule = self.settings.rule
        found = [
            ScheduledMeeting(
                self.settings.name, uid_for(self.settings.name, day), rule.starts_at(day)
            )
            for day in rule.between(first, last)
            if day not in self._replaced
        ]
        found += [
            m
            for m in self.changed
            if first <= m.day <= last and (include_cancelled or not m.cancelled)
        ]
        return sorted(found, key=lambda m: (m.starts_at, m.uid))

    def on(self, day: date, *, include_cancelled: bool = False) -> list[ScheduledMeeting]:
        return self.meetings(day, day, include_cancelled=include_cancelled)

    def next_after(self, day: date) -> ScheduledMeeting | None:
        """The first meeting on a day after ``day``."""
        upcoming = self.meetings(day + timedelta(days=1), day + _HORIZON)
        return upcoming[0] if upcoming else None

    def previous(self, meeting: ScheduledMeeting) -> ScheduledMeeting | None:
        """The meeting before ``meeting`` (on an earlier day), if any within the horizon."""
        earlier = [
            m for m in self.meetings(meeting.day - _HORIZON, meeting.day) if m.day < meeting.day
        ]
        return earlier[-1] if earlier else None

    def by_uid(self, uid: str) -> ScheduledMeeting | None:
        return next((m for m in self.changed if m.uid == uid), None)


def _from_row(row: Any) -> ScheduledMeeting:
    rule_day: date | None = row.rule_day
    return ScheduledMeeting(
        body=row.body,
        uid=row.uid,
        starts_at=row.starts_at.astimezone(clock.LOCAL_ZONE),
        sequence=row.sequence,
        cancelled=bool(row.cancelled),
        rule_day=rule_day,
        changed_at=row.changed_at,
        changed_by=row.changed_by,
        added=rule_day is None,
    )
