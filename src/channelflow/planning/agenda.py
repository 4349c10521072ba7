"""A panel's agenda as it stands: built from the database with a handful of indexed queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, Connection, and_, exists, func, select

from channelflow.meetings.calendar import MeetingCalendar, ScheduledMeeting
from channelflow.notifications.kinds import PanelAgenda, ReviewDue
from channelflow.states import REFERRAL_LIFECYCLE
from channelflow.states import referral as lc
from channelflow.store.models import AuditEvent, PostExitReview, Referral

_referral = Referral.__table__  # type: ignore[attr-defined]
_review = PostExitReview.__table__  # type: ignore[attr-defined]
_audit = AuditEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AgendaWindow:
    """Which dates a meeting's agenda covers: after ``after`` (if any) up to ``day``.

    Cases and reviews dated before the previous meeting belong to it while it is still to
    come; once it has met, whatever it did not settle carries over to this one.
    """

    day: date
    after: date | None

    @classmethod
    def of(
        cls, calendar: MeetingCalendar, meeting: ScheduledMeeting, *, now: datetime
    ) -> AgendaWindow:
        previous = calendar.previous(meeting)
        pending = previous is not None and previous.starts_at > now
        return cls(meeting.day, previous.day if pending and previous else None)

    def covers(self, column: ColumnElement[date]) -> ColumnElement[bool]:
        if self.after is None:
            return column <= self.day
        return and_(column <= self.day, column > self.after)


def panel_cases(connection: Connection, window: AgendaWindow) -> tuple[list[str], list[str]]:
    """References of the cases for this panel: new ones, and ones adjourned to it."""
    adjourned = exists().where(
        _audit.c.entity_type == "referral",
        _audit.c.entity_id == _referral.c.reference,
        _audit.c.event == lc.ADJOURN,
    )
    rows = connection.execute(
        select(_referral.c.reference, adjourned.label("adjourned"))
        .where(_referral.c.state == lc.PANEL_REVIEW, window.covers(_referral.c.panel_on))
        .order_by(_referral.c.reference)
    ).all()
    return [r.reference for r in rows if not r.adjourned], [
        r.reference for r in rows if r.adjourned
    ]


def build_agenda(
    connection: Connection,
    calendar: MeetingCalendar,
    meeting: ScheduledMeeting,
    *,
    now: datetime,
) -> PanelAgenda:
    window = AgendaWindow.of(calendar, meeting, now=now)
    new_cases, adjourned = panel_cases(connection, window)
    support_plans = connection.execute(
        select(_referral.c.reference, _referral.c.next_review_on)
        .where(_referral.c.state == lc.INTERVENTION, window.covers(_referral.c.next_review_on))
        .order_by(_referral.c.next_review_on, _referral.c.reference)
    ).all()
    post_exit = connection.execute(
        select(_referral.c.reference, _review.c.months, _review.c.due_on)
        .join(_referral, _referral.c.id == _review.c.referral_id)
        .where(_review.c.recorded_on.is_(None), window.covers(_review.c.due_on))
        .order_by(_review.c.due_on, _referral.c.reference)
    ).all()
    counts = connection.execute(
        select(_referral.c.state, func.count()).group_by(_referral.c.state)
    ).all()
    order = {state: index for index, state in enumerate(REFERRAL_LIFECYCLE.states)}
    return PanelAgenda(
        meeting=meeting.context(calendar.settings),
        new_cases=tuple(new_cases),
        adjourned=tuple(adjourned),
        reviews_due=tuple(
            ReviewDue(r.reference, "support_plan", r.next_review_on) for r in support_plans
        ),
        post_exit_reviews=tuple(
            ReviewDue(r.reference, f"post_exit_{r.months}", r.due_on) for r in post_exit
        ),
        counts_by_state=tuple(
            sorted(((state, count) for state, count in counts), key=lambda c: order.get(c[0], 99))
        ),
    )
