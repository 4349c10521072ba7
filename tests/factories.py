"""Helpers that build referrals in a given state, the way a user would get them there."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from channelflow import clock
from channelflow.states import Role
from channelflow.states import referral as lc
from channelflow.workflow.engine import NewReferral, Workflow

POLICE, COORDINATOR, CHAIR, MEMBER, LEAD, AUDITOR, ADMIN = (
    "pat",
    "cora",
    "chris",
    "mel",
    "lee",
    "ada",
    "admin",
)
USERS = (
    (POLICE, Role.POLICE),
    (COORDINATOR, Role.COORDINATOR),
    (CHAIR, Role.CHAIR),
    (MEMBER, Role.MEMBER),
    (LEAD, Role.LEAD),
    (AUDITOR, Role.AUDITOR),
)
USER_OF_ROLE = {role: name for name, role in USERS} | {Role.ADMIN: ADMIN}

# A fixed "now" the state-building helpers work back from.
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def new_referral(**overrides: Any) -> NewReferral:
    values: dict[str, Any] = {
        "received_on": date(2026, 1, 5),
        "sector": "education",
        "concern": "extreme_right_wing",
        "subject_name": "Zebedee Quillfeather",
        "date_of_birth": date(1990, 3, 4),
        "referrer_org": "Demo College",
        "address": "1 Example Street",
        "school": None,
    }
    values.update(overrides)
    return NewReferral(**values)


def open_referral(workflow: Workflow, **overrides: Any) -> str:
    return workflow.open_referral(new_referral(**overrides), by=COORDINATOR)


# The events (with a valid actor and values) that take a fresh referral to each state.
PATH_TO: dict[str, list[tuple[str, str, dict[str, str], str | None]]] = {
    lc.RECEIVED: [],
    lc.SCREENED: [(lc.SCREEN, POLICE, {"outcome": "proceed"}, None)],
}
PATH_TO[lc.PANEL_REVIEW] = [*PATH_TO[lc.SCREENED], (lc.REFER_TO_PANEL, COORDINATOR, {}, None)]
PATH_TO[lc.ACCEPTED] = [
    *PATH_TO[lc.PANEL_REVIEW],
    (lc.ACCEPT, CHAIR, {"consent": "given", "lead": LEAD}, None),
]
PATH_TO[lc.DECLINED] = [
    *PATH_TO[lc.PANEL_REVIEW],
    (lc.DECLINE, CHAIR, {"route": "signposted"}, "early help fits better"),
]
PATH_TO[lc.INTERVENTION] = [
    *PATH_TO[lc.ACCEPTED],
    (lc.START_INTERVENTION, COORDINATOR, {"support_plan": "SP-1"}, None),
]
PATH_TO[lc.CLOSED] = [
    *PATH_TO[lc.INTERVENTION],
    (lc.EXIT, CHAIR, {"summary": "objectives met"}, None),
]


def referral_in(workflow: Workflow, state: str, *, at: datetime = NOW, **overrides: Any) -> str:
    """A referral (an adult's, unless overridden) brought to ``state`` through the lifecycle."""
    start = at - timedelta(days=len(PATH_TO[state]) + 1)
    with clock.frozen_at(at):
        reference = open_referral(workflow, received_on=clock.local_date(start), **overrides)
        for step, (event, actor, values, reason) in enumerate(PATH_TO[state], start=1):
            workflow.fire(
                reference,
                event,
                by=actor,
                values=values,
                reason=reason,
                at=start + timedelta(days=step),
            )
    return reference
