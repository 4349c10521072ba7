"""Moving a referral between its table rows and the lifecycle's :class:`Case`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session, col

from channelflow.exceptions import ConcurrentChange, ReferralNotFound
from channelflow.states.referral import CLOSED
from channelflow.store.models import Person, PostExitReview, Referral
from channelflow.workflow.case import Case, PostExitReviewDue

# Projection columns the lifecycle may change.
CASE_FIELDS = (
    "state",
    "gateway_outcome",
    "panel_on",
    "lead",
    "consent",
    "support_plan",
    "provider",
    "next_review_on",
    "onward_route",
    "close_code",
    "exited_on",
    "closed_on",
)


def load_referral(session: Session, reference: str) -> Referral:
    referral: Referral | None = session.execute(
        select(Referral).where(col(Referral.reference) == reference)
    ).scalar_one_or_none()
    if referral is None:
        raise ReferralNotFound(f"no referral has reference {reference!r}")
    return referral


def load_case(session: Session, referral: Referral) -> Case:
    date_of_birth = None
    if referral.person_id is not None:
        date_of_birth = session.execute(
            select(col(Person.date_of_birth)).where(col(Person.id) == referral.person_id)
        ).scalar_one_or_none()
    reviews = _post_exit_reviews(session, referral) if referral.state == CLOSED else []
    return Case(
        reference=referral.reference,
        date_of_birth=date_of_birth,
        post_exit_reviews=[
            PostExitReviewDue(r.months, r.due_on, r.recorded_on, r.outcome) for r in reviews
        ],
        **{name: getattr(referral, name) for name in CASE_FIELDS},
    )


def _post_exit_reviews(session: Session, referral: Referral) -> list[PostExitReview]:
    return list(
        session.execute(
            select(PostExitReview).where(col(PostExitReview.referral_id) == referral.id)
        ).scalars()
    )


def save_case(
    session: Session,
    referral: Referral,
    case: Case,
    *,
    expected_version: int,
    occurred_at: datetime,
    recorded_at: datetime,
) -> int:
    """Write ``case`` back if nobody changed the referral since ``expected_version``."""
    assert referral.id is not None
    values = {name: getattr(case, name) for name in CASE_FIELDS}
    # exec, unlike execute, types an UPDATE's result as a CursorResult, which has rowcount.
    result = session.exec(
        update(Referral)
        .where(col(Referral.id) == referral.id, col(Referral.version) == expected_version)
        .values(
            version=expected_version + 1,
            last_event_at=max(occurred_at, referral.last_event_at),
            updated_at=recorded_at,
            **values,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConcurrentChange(
            f"{referral.reference} was changed by someone else since it was read; "
            "reload it and try again"
        )
    if case.post_exit_reviews:
        _save_post_exit_reviews(session, referral, case)
    return expected_version + 1


def _save_post_exit_reviews(session: Session, referral: Referral, case: Case) -> None:
    assert referral.id is not None
    known = {row.months: row for row in _post_exit_reviews(session, referral)}
    for due in case.post_exit_reviews:
        row = known.get(due.months)
        if row is None:
            session.add(
                PostExitReview(referral_id=referral.id, months=due.months, due_on=due.due_on)
            )
        elif (row.recorded_on, row.outcome) != (due.recorded_on, due.outcome):
            row.recorded_on, row.outcome = due.recorded_on, due.outcome
