"""Adding, moving and cancelling meetings by hand: checked, audited, one transaction each."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from channelflow import clock
from channelflow.audit import chain
from channelflow.audit.chain import EventDraft
from channelflow.config import BodySettings, Config
from channelflow.exceptions import InvalidInput, MeetingNotFound
from channelflow.meetings.calendar import MeetingCalendar, ScheduledMeeting, uid_for
from channelflow.store.db import read_session, write_session
from channelflow.store.models import MeetingRow, User
from channelflow.workflow import policy
from channelflow.workflow.engine import Workflow, log_access

MEETING_ENTITY = "meeting"
BODIES = ("panel", "board")


class MeetingBook:
    """The calendars of the panel and the board, and the changes made to them by hand."""

    def __init__(self, workflow: Workflow, config: Config) -> None:
        self.workflow = workflow
        self.config = config

    def settings(self, body: str) -> BodySettings:
        if body not in BODIES:
            raise InvalidInput(f"unknown meeting body {body!r}; use panel or board")
        return self.config.body(body)

    def calendar(self, body: str) -> MeetingCalendar:
        with read_session(self.workflow.engine) as session:
            return MeetingCalendar.load(session.connection(), self.settings(body))

    def agenda_reader(self, body: str, *, by: str | None) -> None:
        """A panel agenda lists case references: only users who may read cases see it, and
        each look is logged like any other read of case data. A board summary is counts only."""
        if body != "panel":
            return
        action = "panel.agenda"
        with self.workflow.denials_logged(by, action), write_session(self.workflow.engine) as s:
            actor = self.workflow.actor(s, by, action=action, allowed=policy.CASE_READERS)
            log_access(s, actor.name, action, None, allowed=True, role=actor.role)

    def add(self, body: str, starts_at: datetime, *, by: str | None) -> ScheduledMeeting:
        settings = self.settings(body)
        starts_at = _future(starts_at)
        day = clock.local_date(starts_at)
        action = f"{body}.add"
        with self.workflow.denials_logged(by, action), write_session(self.workflow.engine) as s:
            actor = self.workflow.actor(s, by, action=action, allowed=policy.MEETING_MANAGERS)
            calendar = MeetingCalendar.load(s.connection(), settings)
            if calendar.on(day):
                raise InvalidInput(f"there is already a {body} meeting on {day.isoformat()}")
            cancelled = [m for m in calendar.on(day, include_cancelled=True) if m.cancelled]
            if cancelled:
                # Adding a meeting where one was cancelled reinstates it: the same UID
                # with a higher SEQUENCE updates the entry already in people's calendars.
                row = _row(s, cancelled[0].uid)
                previous = row.starts_at
                row.cancelled = False
                event = "reinstate_meeting"
            else:
                uid = uid_for(body, day, added=True)
                if s.execute(select(col(MeetingRow.id)).where(col(MeetingRow.uid) == uid)).first():
                    raise InvalidInput(
                        f"a {body} meeting first added for {day.isoformat()} was moved; "
                        "move it back instead"
                    )
                previous = None
                row = MeetingRow(
                    body=body,
                    uid=uid,
                    rule_day=None,
                    starts_at=starts_at,
                    cancelled=False,
                    sequence=-1,
                    changed_at=clock.now(),
                    changed_by=actor.name,
                )
                event = "add_meeting"
            return self._save(s, row, starts_at, actor, event, previous)

    def move(
        self, body: str, day: date, new_starts_at: datetime, *, by: str | None
    ) -> ScheduledMeeting:
        settings = self.settings(body)
        new_starts_at = _future(new_starts_at)
        new_day = clock.local_date(new_starts_at)
        action = f"{body}.move"
        with self.workflow.denials_logged(by, action), write_session(self.workflow.engine) as s:
            actor = self.workflow.actor(s, by, action=action, allowed=policy.MEETING_MANAGERS)
            calendar = MeetingCalendar.load(s.connection(), settings)
            meeting = _upcoming_on(calendar, body, day)
            if any(m.uid != meeting.uid for m in calendar.on(new_day)):
                raise InvalidInput(f"there is already a {body} meeting on {new_day.isoformat()}")
            if new_starts_at == meeting.starts_at:
                raise InvalidInput(f"the {body} meeting already starts at that time")
            row = self._row_for(s, meeting, actor)
            return self._save(s, row, new_starts_at, actor, "move_meeting", meeting.starts_at)

    def cancel(self, body: str, day: date, *, by: str | None) -> ScheduledMeeting:
        settings = self.settings(body)
        action = f"{body}.cancel"
        with self.workflow.denials_logged(by, action), write_session(self.workflow.engine) as s:
            actor = self.workflow.actor(s, by, action=action, allowed=policy.MEETING_MANAGERS)
            meeting = _upcoming_on(MeetingCalendar.load(s.connection(), settings), body, day)
            row = self._row_for(s, meeting, actor)
            row.cancelled = True
            return self._save(s, row, meeting.starts_at, actor, "cancel_meeting", None)

    def _row_for(self, session: Session, meeting: ScheduledMeeting, actor: User) -> MeetingRow:
        if meeting.changed_at is not None:
            return _row(session, meeting.uid)
        return MeetingRow(
            body=meeting.body,
            uid=meeting.uid,
            rule_day=meeting.day,
            starts_at=meeting.starts_at,
            cancelled=False,
            sequence=meeting.sequence,
            changed_at=clock.now(),
            changed_by=actor.name,
        )

    def _save(
        self,
        session: Session,
        row: MeetingRow,
        starts_at: datetime,
        actor: User,
        event: str,
        previous: datetime | None,
    ) -> ScheduledMeeting:
        now = clock.now()
        row.starts_at = starts_at
        row.sequence += 1
        row.changed_at = now
        row.changed_by = actor.name
        session.add(row)
        session.flush()
        data: dict[str, Any] = {
            "body": row.body,
            "starts_at": _local_text(starts_at),
            "sequence": row.sequence,
        }
        if previous is not None:
            data["previous_starts_at"] = _local_text(previous)
        if row.rule_day is not None:
            data["rule_date"] = row.rule_day.isoformat()
        draft = EventDraft(
            MEETING_ENTITY, row.uid, event, None, None, actor.name, actor.role, now, data=data
        )
        chain.append(session.connection(), [draft], key=self.workflow.key)
        calendar = MeetingCalendar(self.settings(row.body), [row])
        return calendar.changed[0]


def _row(session: Session, uid: str) -> MeetingRow:
    row: MeetingRow = session.execute(
        select(MeetingRow).where(col(MeetingRow.uid) == uid)
    ).scalar_one()
    return row


def _upcoming_on(calendar: MeetingCalendar, body: str, day: date) -> ScheduledMeeting:
    found = calendar.on(day)
    if not found:
        raise MeetingNotFound(f"no {body} meeting is on {day.isoformat()}")
    meeting = found[0]
    if meeting.starts_at <= clock.now():
        raise InvalidInput(f"the {body} meeting on {day.isoformat()} has already started")
    return meeting


def _future(starts_at: datetime) -> datetime:
    if starts_at.tzinfo is None:
        raise InvalidInput("a meeting's time must carry a timezone")
    if starts_at <= clock.now():
        raise InvalidInput("a meeting can only be added or moved to a time in the future")
    return starts_at.astimezone(clock.LOCAL_ZONE)


def _local_text(instant: datetime) -> str:
    return instant.astimezone(clock.LOCAL_ZONE).isoformat()
