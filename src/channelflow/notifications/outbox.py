"""The outbox table's operations: queue inside the caller's transaction, claim, record.

Statuses: ``queued`` -> ``sending`` (claimed, under a lease) -> ``sent``; a transient failure
goes to ``failed`` with a next attempt time, a permanent one (or too many attempts) to ``dead``.
A ``sending`` row whose lease has run out belonged to a dispatcher that died mid-send: it is
claimed again, and its outcome is marked unknown because the provider may have received it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, and_, bindparam, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import col

from channelflow.exceptions import NotFound, Refused
from channelflow.notifications.message import Attachment, Email, attachments_from_json
from channelflow.notifications.message import attachments_to_json as _attachments_json
from channelflow.store.db import (
    DriverConnection,
    DriverStatement,
    driver_transaction,
    read_session,
    write_connection,
)
from channelflow.store.models import OutboxMessage

TABLE = OutboxMessage.__table__  # type: ignore[attr-defined]
MAX_ERROR = 500


class Status(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"


@dataclass(frozen=True)
class NewMessage:
    idempotency_key: str
    kind: str
    recipient: str
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Claimed:
    email: Email
    token: str
    attempts: int
    lease_expires_at: datetime
    outcome_unknown: bool


def _insert(dialect: Any) -> DriverStatement:
    return DriverStatement(
        dialect.insert(TABLE).on_conflict_do_nothing(index_elements=["idempotency_key"]),
        column_keys=[
            "idempotency_key",
            "kind",
            "recipient",
            "subject",
            "body_text",
            "body_html",
            "attachments",
            "status",
            "attempts",
            "next_attempt_at",
            "outcome_unknown",
            "created_at",
        ],
    )


_INSERTS = {"sqlite": _insert(sqlite), "postgresql": _insert(postgresql)}


def enqueue(
    connection: Connection | DriverConnection, messages: Sequence[NewMessage], *, now: datetime
) -> int:
    """Queue ``messages`` in the caller's transaction; returns how many were new.

    A key already in the outbox is skipped by the database itself, so a job that runs twice,
    or two processes that plan the same thing at once, queue nothing twice.
    """
    statement = _INSERTS[connection.dialect.name]
    return sum(
        statement.execute(
            connection,
            {
                "idempotency_key": message.idempotency_key,
                "kind": message.kind,
                "recipient": message.recipient,
                "subject": message.subject,
                "body_text": message.text,
                "body_html": message.html,
                "attachments": _attachments_json(message.attachments),
                "status": Status.QUEUED.value,
                "attempts": 0,
                "next_attempt_at": now,
                "outcome_unknown": False,
                "created_at": now,
            },
        )
        for message in messages
    )


def _due(now: datetime) -> Any:
    return or_(
        and_(
            col(OutboxMessage.status).in_([Status.QUEUED.value, Status.FAILED.value]),
            col(OutboxMessage.next_attempt_at) <= now,
        ),
        and_(
            col(OutboxMessage.status) == Status.SENDING.value,
            col(OutboxMessage.lease_expires_at) <= now,
        ),
    )


def claim(
    engine: Engine, *, now: datetime, lease: timedelta, limit: int, sender: str
) -> list[Claimed]:
    """Take up to ``limit`` due messages for this dispatcher, marking them ``sending``.

    On PostgreSQL rows another dispatcher holds are skipped (FOR UPDATE SKIP LOCKED); on
    SQLite the claim runs under the database's write lock. Either way no two dispatchers
    hold the same message while its lease lasts.
    """
    token = uuid.uuid4().hex
    expires = now + lease
    with write_connection(engine, writers_lock=False) as connection:
        ids = list(
            connection.execute(
                select(col(OutboxMessage.id))
                .where(_due(now))
                .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        if not ids:
            return []
        rows = connection.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(ids))
            .values(
                status=Status.SENDING.value,
                attempts=col(OutboxMessage.attempts) + 1,
                claim_token=token,
                lease_expires_at=expires,
                outcome_unknown=case(
                    (col(OutboxMessage.status) == Status.SENDING.value, True),
                    else_=col(OutboxMessage.outcome_unknown),
                ),
            )
            .returning(*TABLE.c)
        ).all()
    rows = sorted(rows, key=lambda row: (row.next_attempt_at, row.id))
    return [
        Claimed(
            email=Email(
                id=row.id,
                idempotency_key=row.idempotency_key,
                kind=row.kind,
                sender=sender,
                recipient=row.recipient,
                subject=row.subject,
                text=row.body_text,
                html=row.body_html,
                created_at=row.created_at,
                attachments=attachments_from_json(row.attachments),
            ),
            token=token,
            attempts=row.attempts,
            lease_expires_at=expires,
            outcome_unknown=row.outcome_unknown,
        )
        for row in rows
    ]


def _finishing(**values: Any) -> DriverStatement:
    """An update of a message this dispatcher still holds (its claim token, still sending)."""
    return DriverStatement(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == bindparam("message_id"),
            col(OutboxMessage.claim_token) == bindparam("token"),
            col(OutboxMessage.status) == Status.SENDING.value,
        )
        .values(claim_token=None, lease_expires_at=None, **values)
    )


_SENT = _finishing(
    status=Status.SENT.value,
    provider_id=bindparam("new_provider_id"),
    sent_at=bindparam("new_sent_at"),
    outcome_unknown=False,
)
_FAILED = _finishing(
    status=Status.FAILED.value,
    last_error=bindparam("new_error"),
    outcome_unknown=bindparam("new_outcome_unknown"),
    next_attempt_at=bindparam("new_next_attempt_at"),
)
_DEAD = _finishing(
    status=Status.DEAD.value,
    last_error=bindparam("new_error"),
    outcome_unknown=bindparam("new_outcome_unknown"),
)
_RELEASED = _finishing(status=bindparam("new_status"), attempts=bindparam("new_attempts"))


def _finish(engine: Engine, claimed: Claimed, statement: DriverStatement, **values: Any) -> bool:
    """Record an attempt's result, only if this dispatcher still holds the message.

    One short transaction per message, committed before the next message goes, so a killed
    dispatcher leaves at most the message in flight unrecorded. The commit does not wait
    for the disk: a power cut could lose the last few records, and the worst that does is
    send those messages again as of unknown outcome, with the same Message-ID.
    """
    with driver_transaction(engine, writers_lock=False, durable=False) as connection:
        changed = statement.execute(
            connection, {"message_id": claimed.email.id, "token": claimed.token, **values}
        )
    return bool(changed)


def record_sent(engine: Engine, claimed: Claimed, *, provider_id: str, now: datetime) -> bool:
    return _finish(engine, claimed, _SENT, new_provider_id=provider_id[:255], new_sent_at=now)


def record_failure(
    engine: Engine,
    claimed: Claimed,
    *,
    error: str,
    next_attempt_at: datetime | None,
    outcome_unknown: bool,
) -> bool:
    """``next_attempt_at=None`` means the message is dead: no further attempts."""
    values: dict[str, Any] = {
        "new_error": error[:MAX_ERROR],
        "new_outcome_unknown": outcome_unknown or claimed.outcome_unknown,
    }
    if next_attempt_at is None:
        return _finish(engine, claimed, _DEAD, **values)
    return _finish(engine, claimed, _FAILED, new_next_attempt_at=next_attempt_at, **values)


def release(engine: Engine, claimed: Claimed) -> bool:
    """Hand back a claimed message that was never attempted, due at once, attempt uncounted."""
    return _finish(
        engine,
        claimed,
        _RELEASED,
        new_status=Status.FAILED.value if claimed.attempts > 1 else Status.QUEUED.value,
        new_attempts=claimed.attempts - 1,
    )


def give_up(engine: Engine, message_id: int, *, reason: str) -> None:
    """Mark a message that is not sending now dead, so no later pass sends it."""
    with write_connection(engine, writers_lock=False) as connection:
        connection.execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id) == message_id,
                col(OutboxMessage.status).in_([Status.QUEUED.value, Status.FAILED.value]),
            )
            .values(status=Status.DEAD.value, last_error=reason[:MAX_ERROR])
        )


def retry(engine: Engine, message_id: int, *, now: datetime) -> OutboxMessage:
    """Make a failed or dead message due now, whatever its backoff."""
    with write_connection(engine, writers_lock=False) as connection:
        message = connection.execute(
            select(TABLE).where(TABLE.c.id == message_id).with_for_update()
        ).first()
        if message is None:
            raise NotFound(f"no outbox message has id {message_id}")
        if message.status == Status.SENT.value:
            raise Refused(f"outbox message {message_id} was already sent")
        live_lease = message.lease_expires_at is not None and message.lease_expires_at > now
        if message.status == Status.SENDING.value and live_lease:
            raise Refused(f"outbox message {message_id} is being sent now")
        status = Status.QUEUED.value if message.attempts == 0 else Status.FAILED.value
        connection.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == message_id)
            .values(status=status, next_attempt_at=now, claim_token=None, lease_expires_at=None)
        )
    return list_messages(engine, message_id=message_id)[0]


def list_messages(
    engine: Engine,
    *,
    status: Status | None = None,
    message_id: int | None = None,
    idempotency_key: str | None = None,
) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(col(OutboxMessage.id))
    if status is not None:
        query = query.where(col(OutboxMessage.status) == status.value)
    if message_id is not None:
        query = query.where(col(OutboxMessage.id) == message_id)
    if idempotency_key is not None:
        query = query.where(col(OutboxMessage.idempotency_key) == idempotency_key)
    with read_session(engine) as session:
        return list(session.execute(query).scalars())
