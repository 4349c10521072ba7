"""Moving a referral between its table rows and the lifecycle's :class:`Case`.

`fire` runs these on every change, so the statements are built once at import and run with
SQLAlchemy Core on the transaction's connection: building ORM statements and entities per
call cost more than the database work itself (see BENCHMARKS.md).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, true, update

from channelflow.audit.chain import HEAD, HEAD_COLUMNS
from channelflow.exceptions import (
    ConcurrentChange,
    PermissionDenied,
    ReferralNotFound,
    UserNotFound,
)
from channelflow.states import Role
from channelflow.states.referral import CLOSED
from channelflow.store.db import DriverConnection, DriverStatement
from channelflow.store.models import Person, PostExitReview, Referral, User
from channelflow.workflow.case import Case, PostExitReviewDue

# What the statements run on: a SQLAlchemy connection or the driver's, in a write transaction.
Writer = Connection | DriverConnection

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

# What a change needs besides the lifecycle's fields (a re-referral copies the last three).
_IDENTITY_FIELDS = (
    "id",
    "reference",
    "version",
    "last_event_at",
    "person_id",
    "sector",
    "concern",
    "referrer_org",
)
_referral = Referral.__table__  # type: ignore[attr-defined]
_person = Person.__table__  # type: ignore[attr-defined]
_users = User.__table__  # type: ignore[attr-defined]
_reviews = PostExitReview.__table__  # type: ignore[attr-defined]

_ACTOR_ROLE = select(_users.c.role).where(_users.c.name == bindparam("actor"))
_ROLE_OF = DriverStatement(_ACTOR_ROLE)
_LOAD_FOR_CHANGE = DriverStatement(
    select(
        *(_referral.c[name] for name in (*_IDENTITY_FIELDS, *CASE_FIELDS)),
        _person.c.date_of_birth,
        _ACTOR_ROLE.scalar_subquery().label("actor_role"),
        *HEAD_COLUMNS,
    )
    .select_from(
        _referral.outerjoin(_person, _referral.c.person_id == _person.c.id).outerjoin(HEAD, true())
    )
    .where(_referral.c.reference == bindparam("reference"))
)
_LOAD_REVIEWS = DriverStatement(
    select(
        _reviews.c.id,
        _reviews.c.months,
        _reviews.c.due_on,
        _reviews.c.recorded_on,
        _reviews.c.outcome,
    ).where(_reviews.c.referral_id == bindparam("referral_id"))
)
_SAVE = DriverStatement(
    update(_referral)
    .where(_referral.c.id == bindparam("row_id"), _referral.c.version == bindparam("expected"))
    .values(
        version=bindparam("new_version"),
        last_event_at=bindparam("new_last_event_at"),
        updated_at=bindparam("new_updated_at"),
        **{name: bindparam(f"new_{name}") for name in CASE_FIELDS},
    )
)
_ADD_REVIEW = DriverStatement(insert(_reviews), column_keys=["referral_id", "months", "due_on"])
_RECORD_REVIEW = DriverStatement(
    update(_reviews)
    .where(_reviews.c.id == bindparam("review_id"))
    .values(recorded_on=bindparam("new_recorded_on"), outcome=bindparam("new_outcome"))
)


def load_for_change(
    connection: Writer, reference: str, actor: str, *, allowed: frozenset[Role]
) -> tuple[Any, Role]:
    """The referral row (with the subject's date of birth and the audit chain's head) and the
    actor's role, in one query; the caller holds the writers' lock, so the head stays the head.

    A role not in ``allowed`` is refused before it can learn whether the reference exists.
    """
    found = _LOAD_FOR_CHANGE.first(connection, {"reference": reference, "actor": actor})
    role = Role(found.actor_role) if found is not None and found.actor_role else None
    if found is None:
        role = role_of(connection, actor)
    if role is None:
        raise UserNotFound(f"no user is called {actor!r}")
    if found is None:
        if role not in allowed:
            raise PermissionDenied(f"{actor} ({role}) may not do that")
        raise ReferralNotFound(f"no referral has reference {reference!r}")
    return found, role


def case_of(connection: Writer, referral: Any, *, date_of_birth: date | None) -> Case:
    """The lifecycle's view of a referral; post-exit reviews matter only once it is closed."""
    reviews = (
        _LOAD_REVIEWS.all(connection, {"referral_id": referral.id})
        if referral.state == CLOSED
        else []
    )
    return Case(
        reference=referral.reference,
        date_of_birth=date_of_birth,
        post_exit_reviews=[
            PostExitReviewDue(r.months, r.due_on, r.recorded_on, r.outcome) for r in reviews
        ],
        **{name: getattr(referral, name) for name in CASE_FIELDS},
    )


def role_of(connection: Writer, name: str) -> Role | None:
    found = _ROLE_OF.first(connection, {"actor": name})
    return Role(found.role) if found is not None else None


def save_case(
    connection: Writer,
    referral: Any,
    case: Case,
    *,
    occurred_at: datetime,
    recorded_at: datetime,
) -> int:
    """Write ``case`` back if nobody changed the referral since it was read."""
    params: dict[str, Any] = {f"new_{name}": getattr(case, name) for name in CASE_FIELDS}
    params.update(
        row_id=referral.id,
        expected=referral.version,
        new_version=referral.version + 1,
        new_last_event_at=max(occurred_at, referral.last_event_at),
        new_updated_at=recorded_at,
    )
    if _SAVE.execute(connection, params) != 1:
        raise ConcurrentChange(
            f"{referral.reference} was changed by someone else since it was read; "
            "reload it and try again"
        )
    if case.post_exit_reviews:
        _save_post_exit_reviews(connection, referral, case)
    return int(referral.version) + 1


def _save_post_exit_reviews(connection: Writer, referral: Any, case: Case) -> None:
    known = {row.months: row for row in _LOAD_REVIEWS.all(connection, {"referral_id": referral.id})}
    for due in case.post_exit_reviews:
        row = known.get(due.months)
        if row is None:
            _ADD_REVIEW.execute(
                connection,
                {"referral_id": referral.id, "months": due.months, "due_on": due.due_on},
            )
        elif (row.recorded_on, row.outcome) != (due.recorded_on, due.outcome):
            _RECORD_REVIEW.execute(
                connection,
                {
                    "review_id": row.id,
                    "new_recorded_on": due.recorded_on,
                    "new_outcome": due.outcome,
                },
            )
