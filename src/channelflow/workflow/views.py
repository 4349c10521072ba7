"""Reading cases, as need-to-know allows; every read of a case is written to the access log."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlmodel import Session, col

from channelflow import clock
from channelflow.exceptions import InvalidInput, PermissionDenied, ReferralNotFound
from channelflow.retention import removals
from channelflow.states import REFERRAL_LIFECYCLE, Role
from channelflow.states import referral as lc
from channelflow.store.db import write_session
from channelflow.store.models import AuditEvent, Person, PostExitReview, Referral, User
from channelflow.workflow import policy, users
from channelflow.workflow.case import unmet_precondition
from channelflow.workflow.dates import age_on
from channelflow.workflow.engine import Workflow, log_access
from channelflow.workflow.store_mapping import case_of

MAX_LIMIT = 1_000_000_000
SUMMARY_FIELDS = (
    "reference",
    "state",
    "version",
    "received_on",
    "sector",
    "concern",
    "panel_on",
    "lead",
    "next_review_on",
    "closed_on",
)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def load_referral(session: Session, reference: str) -> Referral:
    referral: Referral | None = session.execute(
        select(Referral).where(col(Referral.reference) == reference)
    ).scalar_one_or_none()
    if referral is None:
        raise ReferralNotFound(f"no referral has reference {reference!r}")
    return referral


def _reader(session: Session, by: str | None, action: str) -> tuple[User, Role]:
    actor = users.get_user(session, by)
    role = Role(actor.role)
    if role not in policy.CASE_READERS:
        raise PermissionDenied(f"{actor.name} ({actor.role}) may not read case records")
    return actor, role


def _readable(
    session: Session, by: str | None, reference: str, action: str
) -> tuple[User, Role, Referral]:
    actor, role = _reader(session, by, action)
    referral = load_referral(session, reference)
    if not policy.may_read_case(
        role, actor.name, lead=referral.lead, reached_panel=referral.panel_on is not None
    ):
        raise PermissionDenied(f"{actor.name} ({actor.role}) may not read {reference}")
    log_access(session, actor.name, action, reference, allowed=True, role=actor.role)
    return actor, role, referral


def show_case(workflow: Workflow, reference: str, *, by: str | None) -> dict[str, Any]:
    with (
        workflow.denials_logged(by, "referral.show", reference),
        write_session(workflow.engine) as session,
    ):
        _, role, referral = _readable(session, by, reference, "referral.show")
        view: dict[str, Any] = {
            name: _iso(getattr(referral, name))
            for name in (
                *SUMMARY_FIELDS,
                "referrer_org",
                "gateway_outcome",
                "consent",
                "support_plan",
                "provider",
                "onward_route",
                "close_code",
                "exited_on",
            )
        }
        view["linked_from"] = None
        if referral.linked_from_id is not None:
            view["linked_from"] = session.execute(
                select(col(Referral.reference)).where(col(Referral.id) == referral.linked_from_id)
            ).scalar_one()
        view["due_reviews"] = _due_reviews(session, referral)
        view["history"] = _history(session, reference)
        if policy.may_read_personal_data(role):
            view["personal"] = _personal(session, referral)
            if view["personal"] is None:
                removal = removals(session.connection(), [reference]).get(reference)
                view["personal_removed_on"] = removal.on.isoformat() if removal else None
        return view


def _due_reviews(session: Session, referral: Referral) -> list[dict[str, Any]]:
    due: list[dict[str, Any]] = []
    if referral.state == lc.INTERVENTION and referral.next_review_on:
        due.append({"kind": "support_plan", "due_on": referral.next_review_on.isoformat()})
    rows = session.execute(
        select(PostExitReview)
        .where(
            col(PostExitReview.referral_id) == referral.id,
            col(PostExitReview.recorded_on).is_(None),
        )
        .order_by(col(PostExitReview.due_on))
    ).scalars()
    due += [{"kind": f"post_exit_{row.months}m", "due_on": row.due_on.isoformat()} for row in rows]
    return due


def _history(session: Session, reference: str) -> list[dict[str, Any]]:
    return entity_history(session, "referral", reference)


def entity_history(session: Session, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
    """The audit events of one thing (a referral, a subject access export), oldest first."""
    rows = session.execute(
        select(AuditEvent)
        .where(col(AuditEvent.entity_type) == entity_type, col(AuditEvent.entity_id) == entity_id)
        .order_by(col(AuditEvent.seq))
    ).scalars()
    return [
        {
            "seq": row.seq,
            "event": row.event,
            "from": row.from_state,
            "to": row.to_state,
            "actor": row.actor,
            "role": row.role,
            "occurred_at": row.occurred_at,
            "recorded_at": row.recorded_at,
            "reason": row.reason,
            "data": json.loads(row.data),
        }
        for row in rows
    ]


def _personal(session: Session, referral: Referral) -> dict[str, Any] | None:
    if referral.person_id is None:
        return None
    person = session.get(Person, referral.person_id)
    assert person is not None
    return {
        "full_name": person.full_name,
        "date_of_birth": person.date_of_birth.isoformat(),
        "age": _age(person.date_of_birth),
        "address": person.address,
        "school": person.school,
    }


def _age(date_of_birth: date) -> int:
    return age_on(date_of_birth, clock.today())


def list_cases(
    workflow: Workflow, *, by: str | None, state: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    if state is not None and state not in REFERRAL_LIFECYCLE.states:
        raise InvalidInput(
            f"unknown state {state!r}; use one of: {', '.join(REFERRAL_LIFECYCLE.states)}"
        )
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"--limit must be a number from 1 to {MAX_LIMIT:,}")
    with workflow.denials_logged(by, "referral.list"), write_session(workflow.engine) as session:
        actor, role = _reader(session, by, "referral.list")
        conditions: list[ColumnElement[bool]] = []
        if state is not None:
            conditions.append(col(Referral.state) == state)
        if role is Role.MEMBER:
            conditions.append(col(Referral.panel_on).is_not(None))
        elif role is Role.LEAD:
            conditions.append(col(Referral.lead) == actor.name)
        columns = [getattr(Referral, name) for name in SUMMARY_FIELDS]
        query = select(*columns).where(*conditions).order_by(col(Referral.id))
        if limit is not None:
            query = query.limit(limit)
        log_access(session, actor.name, "referral.list", None, allowed=True, role=actor.role)
        return [
            {name: _iso(value) for name, value in zip(SUMMARY_FIELDS, row, strict=True)}
            for row in session.execute(query)
        ]


def available_events(workflow: Workflow, reference: str, *, by: str | None) -> list[dict[str, Any]]:
    """The events this user's role may fire from the referral's current state."""
    with (
        workflow.denials_logged(by, "referral.events", reference),
        write_session(workflow.engine) as session,
    ):
        _, role, referral = _readable(session, by, reference, "referral.events")
        date_of_birth = (
            session.get(Person, referral.person_id) if referral.person_id is not None else None
        )
        case = case_of(
            session.connection(),
            referral,
            date_of_birth=date_of_birth.date_of_birth if date_of_birth else None,
        )
        return [
            {
                "event": spec.name,
                "dest": spec.dest,
                "requires": spec.requires,
                "optional": [key.name for key in spec.keys if not key.required],
                "summary": spec.summary,
            }
            for spec in REFERRAL_LIFECYCLE.events
            if referral.state in spec.sources
            and role in spec.roles
            and unmet_precondition(case, spec.name, clock.today()) is None
        ]
