"""The board's aggregate summary: counts only, never a case reference."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import Connection, and_, case, func, select

from channelflow import categories
from channelflow.meetings.calendar import MeetingCalendar, ScheduledMeeting
from channelflow.notifications.kinds import BoardReminder, Meeting
from channelflow.states import REFERRAL_LIFECYCLE
from channelflow.states import referral as lc
from channelflow.store.models import PostExitReview, Referral
from channelflow.toolkit.queries import ratings_by_colour

_referral = Referral.__table__  # type: ignore[attr-defined]
_review = PostExitReview.__table__  # type: ignore[attr-defined]

# Outcomes as the Home Office publishes them, most advanced first: a referral counts once.
OUTCOMES = (
    "adopted",
    "discussed_at_panel",
    "no_further_action",
    "signposted",
    "police_led",
    "closed_other",
    "awaiting_decision",
)


def board_period(
    calendar: MeetingCalendar,
    meeting: ScheduledMeeting,
    sends_on: Callable[[ScheduledMeeting], date],
    sent_on: date,
) -> tuple[date, date]:
    """The days a board summary covers: from where the previous one stopped to the day before
    this one goes, so every referral is counted in exactly one summary."""
    previous = calendar.previous(meeting)
    start = sends_on(previous) if previous else sent_on - timedelta(days=91)
    return start, sent_on - timedelta(days=1)


def board_summary(
    connection: Connection, meeting: Meeting, *, period_from: date, period_to: date
) -> BoardReminder:
    """Referrals received from ``period_from`` to ``period_to``; the rest as they stand now."""
    received = and_(_referral.c.received_on >= period_from, _referral.c.received_on <= period_to)
    outcome = case(
        (_referral.c.lead.is_not(None), "adopted"),
        (_referral.c.panel_on.is_not(None), "discussed_at_panel"),
        (_referral.c.gateway_outcome == "no_further_action", "no_further_action"),
        (_referral.c.gateway_outcome == "signpost", "signposted"),
        (_referral.c.gateway_outcome == "police_led", "police_led"),
        (_referral.c.state == lc.CLOSED, "closed_other"),
        else_="awaiting_decision",
    )
    by_sector: dict[str, int] = dict(
        connection.execute(
            select(_referral.c.sector, func.count()).where(received).group_by(_referral.c.sector)
        ).all()
    )
    by_outcome: dict[str, int] = dict(
        connection.execute(select(outcome, func.count()).where(received).group_by(outcome)).all()
    )
    by_state: dict[str, int] = dict(
        connection.execute(
            select(_referral.c.state, func.count()).group_by(_referral.c.state)
        ).all()
    )
    overdue_plans = connection.execute(
        select(func.count()).where(
            _referral.c.state == lc.INTERVENTION, _referral.c.next_review_on <= period_to
        )
    ).scalar_one()
    overdue_post_exit = connection.execute(
        select(func.count()).where(_review.c.recorded_on.is_(None), _review.c.due_on <= period_to)
    ).scalar_one()
    sectors = [
        item for item in categories.values("sector", include_retired=True) if item in by_sector
    ]
    sectors += sorted(set(by_sector) - set(sectors))
    return BoardReminder(
        meeting=meeting,
        period_from=period_from,
        period_to=period_to,
        referrals_by_sector=tuple((name, by_sector[name]) for name in sectors),
        referrals_by_outcome=tuple(
            (name, by_outcome[name]) for name in OUTCOMES if by_outcome.get(name)
        ),
        cases_by_state=tuple(
            (state, by_state.get(state, 0)) for state in REFERRAL_LIFECYCLE.states
        ),
        overdue_reviews=overdue_plans + overdue_post_exit,
        ratings_by_colour=tuple(ratings_by_colour(connection)),
    )
