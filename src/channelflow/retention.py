"""Retention: removing the personal details of cases closed longer ago than the council keeps them.

Personal details live only in the ``person`` table (the audit trail holds keyed hashes of
them, never the values), so a purge deletes ``person`` rows and unlinks their referrals: the
referrals, their history and every audit event stay exactly as they were, and the trail still
verifies. The purge itself is one audit event listing the references it covered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, delete, exists, select, update
from sqlmodel import col

from channelflow import clock
from channelflow.audit import chain
from channelflow.audit.canonical import format_time, parse_time
from channelflow.audit.chain import EventDraft
from channelflow.config import MAX_RETENTION_YEARS
from channelflow.exceptions import InvalidInput
from channelflow.store.db import read_session, write_session
from channelflow.store.models import AuditEvent, Person, Referral, User
from channelflow.workflow import policy
from channelflow.workflow.dates import add_months
from channelflow.workflow.engine import Workflow

RETENTION_ENTITY = "retention"
PURGE_EVENT = "purge_personal_data"
ACTION = "retention.apply"
# Rows changed per statement: well inside both backends' limits on bound parameters.
_BATCH = 500


@dataclass(frozen=True)
class Purge:
    """What a purge removed, or with ``dry_run`` would remove."""

    references: tuple[str, ...]
    years: int
    # Referrals closed on a day before this one had run out their retention period.
    closed_before: date
    dry_run: bool
    # The audit event recording the purge; None for a dry run or when nothing was due.
    seq: int | None = None
    entity_id: str | None = None

    @property
    def count(self) -> int:
        return len(self.references)


def closed_before(today: date, years: int) -> date:
    """The first closing day whose retention period has not run out by ``today``.

    A referral closed on ``day`` is due once ``add_months(day, 12 * years) <= today``; a
    closing day of 29 February runs out on 28 February in a year that has none.
    """
    months = 12 * years
    last_due = add_months(today, -months)
    while add_months(last_due + timedelta(days=1), months) <= today:
        last_due += timedelta(days=1)
    return last_due + timedelta(days=1)


def apply(workflow: Workflow, *, years: int, by: str | None, dry_run: bool = False) -> Purge:
    """Remove the personal details of every referral closed ``years`` or more ago.

    Admins only (a refusal is logged). In one transaction: the referrals lose their link to
    their ``person`` rows, those rows are deleted, and one audit event records the purge.
    With ``dry_run`` nothing is changed or recorded.
    """
    if not 1 <= years <= MAX_RETENTION_YEARS:
        raise InvalidInput(f"the retention period must be 1 to {MAX_RETENTION_YEARS} years")
    purge = _purge(workflow, years=years, by=by, dry_run=dry_run)
    if purge.seq is not None:
        _settle_storage(workflow)
    return purge


def _purge(workflow: Workflow, *, years: int, by: str | None, dry_run: bool) -> Purge:
    transaction = read_session if dry_run else write_session
    with workflow.denials_logged(by, ACTION), transaction(workflow.engine) as session:
        actor = workflow.actor(session, by, action=ACTION, allowed=policy.RETENTION_MANAGERS)
        now = clock.now()
        before = closed_before(clock.local_date(now), years)
        due = session.execute(
            select(col(Referral.id), col(Referral.reference), col(Referral.person_id))
            .where(
                col(Referral.closed_on).is_not(None),
                col(Referral.closed_on) < before,
                col(Referral.person_id).is_not(None),
            )
            .order_by(col(Referral.reference))
        ).all()
        references = tuple(row.reference for row in due)
        purge = Purge(references, years, before, dry_run)
        if dry_run or not due:
            return purge
        connection = session.connection()
        _remove(
            connection,
            [row.id for row in due],
            sorted({row.person_id for row in due}),
        )
        draft = _purge_event(purge, actor, now)
        rows = chain.append(connection, [draft], key=workflow.key)
        return Purge(references, years, before, False, rows[0]["seq"], draft.entity_id)


def _remove(connection: Connection, referral_ids: list[int], person_ids: list[int]) -> None:
    """Unlink the referrals, then delete the person rows no referral links to any more."""
    with _secure_delete(connection):
        for chunk in _chunks(referral_ids):
            connection.execute(
                update(Referral).where(col(Referral.id).in_(chunk)).values(person_id=None)
            )
        # A person row belongs to one referral (a re-referral copies the details into a new
        # row), but a row some other referral still links to is kept all the same.
        still_linked = exists().where(col(Referral.person_id) == col(Person.id))
        for chunk in _chunks(person_ids):
            connection.execute(delete(Person).where(col(Person.id).in_(chunk), ~still_linked))


@contextmanager
def _secure_delete(connection: Connection) -> Iterator[None]:
    """On SQLite, overwrite deleted rows with zeros rather than leave them in free space."""
    if connection.dialect.name != "sqlite":
        yield
        return
    previous = int(connection.exec_driver_sql("PRAGMA secure_delete").scalar_one())
    connection.exec_driver_sql("PRAGMA secure_delete = ON")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA secure_delete = {previous}")


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _BATCH):
        yield values[start : start + _BATCH]


def _purge_event(purge: Purge, actor: User, now: datetime) -> EventDraft:
    return EventDraft(
        RETENTION_ENTITY,
        f"purge-{format_time(now)[:19]}Z",
        PURGE_EVENT,
        None,
        None,
        actor.name,
        actor.role,
        now,
        data={
            "references": list(purge.references),
            "count": purge.count,
            "years": purge.years,
            "closed_before": purge.closed_before.isoformat(),
        },
    )


def _settle_storage(workflow: Workflow) -> None:
    """After a purge on SQLite, fold the write-ahead log into the database file and empty it,
    so no copy of a deleted row's page lingers there. Best effort: a reader still holding an
    old snapshot lets the log shrink at the next checkpoint instead."""
    engine = workflow.engine
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


@dataclass(frozen=True)
class Removal:
    """A purge that removed a referral's personal details."""

    on: date
    seq: int
    years: int


def removals(connection: Connection, references: Iterable[str]) -> dict[str, Removal]:
    """When each of ``references`` had its personal details removed, for those that did."""
    wanted = set(references)
    found: dict[str, Removal] = {}
    if not wanted:
        return found
    rows = connection.execute(
        select(col(AuditEvent.seq), col(AuditEvent.occurred_at), col(AuditEvent.data))
        .where(
            col(AuditEvent.entity_type) == RETENTION_ENTITY,
            col(AuditEvent.event) == PURGE_EVENT,
        )
        .order_by(col(AuditEvent.seq))
    )
    for seq, occurred_at, data in rows:
        # Cheap test first: most purges name none of the few references asked about.
        if not any(f'"{reference}"' in data for reference in wanted):
            continue
        parsed = json.loads(data)
        on = clock.local_date(parse_time(occurred_at))
        for reference in wanted.intersection(parsed.get("references", ())):
            found.setdefault(reference, Removal(on, seq, int(parsed.get("years", 0))))
    return found
