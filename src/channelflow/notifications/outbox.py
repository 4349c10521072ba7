"""The outbox table's operations: queue inside the caller's transaction, claim, record.

Statuses: ``queued`` -> ``sending`` (claimed, under a lease) -> ``sent``; a transient failure
goes to ``failed`` with a next attempt time, a permanent one (or too many attempts) to ``dead``.
A ``sending`` row's next attempt time is when its lease runs out: if it is still ``sending``
then, its dispatcher died mid-send, so it is claimed again, its outcome marked unknown
because the provider may have received it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import Engine, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import col

from channelflow.exceptions import NotFound, Refused
from channelflow.notifications.message import (
    Attachment,
    Email,
    attachments_from_json,
    validate_address,
)
from channelflow.notifications.message import attachments_to_json as _attachments_json
from channelflow.store.db import DriverConnection, DriverStatement, read_session, write_connection
from channelflow.store.models import OutboxMessage
from channelflow.store.types import UTCDateTime

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

    def as_email(self, *, message_id: int, sender: str, created_at: datetime) -> Email:
        """The Email a dispatcher sends for this message once stored as ``message_id``."""
        return Email(
            id=message_id,
            idempotency_key=self.idempotency_key,
            kind=self.kind,
            sender=sender,
            recipient=self.recipient,
            subject=self.subject,
            text=self.text,
            html=self.html,
            created_at=created_at,
            attachments=self.attachments,
        )


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
    for message in messages:
        # Transports write addresses into protocol commands: only plain ones get this far.
        validate_address(message.recipient, what="the recipient's email address")
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


@cache
def _claim_statement(limit: int) -> DriverStatement:
    """Mark up to ``limit`` due messages ``sending`` and return them, in one statement.

    On PostgreSQL the chosen rows are locked and rows another dispatcher has locked are
    skipped (FOR UPDATE SKIP LOCKED, in a CTE so it runs once); SQLite runs the statement
    under its write lock. Either way no two dispatchers claim the same message.
    """
    due = (
        select(col(OutboxMessage.id))
        .where(col(OutboxMessage.next_attempt_at) <= bindparam("now", type_=UTCDateTime()))
        .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    return DriverStatement(
        update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(select(due.c.id)))
        .values(
            status=Status.SENDING.value,
            attempts=col(OutboxMessage.attempts) + 1,
            claim_token=bindparam("token"),
            next_attempt_at=bindparam("expires", type_=UTCDateTime()),
            # A message still "sending" when claimed again was in flight when its
            # dispatcher died: the provider may have it.
            outcome_unknown=case(
                (col(OutboxMessage.status) == Status.SENDING.value, True),
                else_=col(OutboxMessage.outcome_unknown),
            ),
        )
        .returning(*TABLE.c)
    )


def claim(
    connection: DriverConnection,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    sender: str,
) -> list[Claimed]:
    """Take up to ``limit`` due messages for this dispatcher, oldest due first."""
    token = uuid.uuid4().hex
    expires = now + lease
    rows = _claim_statement(limit).all(connection, {"now": now, "token": token, "expires": expires})
    rows.sort(key=lambda row: row.id)
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
            outcome_unknown=bool(row.outcome_unknown),
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
        .values(claim_token=None, **values)
    )


_SENT = _finishing(
    status=Status.SENT.value,
    next_attempt_at=None,
    provider_id=bindparam("new_provider_id"),
    sent_at=bindparam("new_sent_at"),
    outcome_unknown=False,
)
_FAILED = _finishing(
    status=Status.FAILED.value,
    attempts=bindparam("new_attempts"),
    last_error=bindparam("new_error"),
    outcome_unknown=bindparam("new_outcome_unknown"),
    next_attempt_at=bindparam("new_next_attempt_at"),
)
_DEAD = _finishing(
    status=Status.DEAD.value,
    attempts=bindparam("new_attempts"),
    next_attempt_at=None,
    last_error=bindparam("new_error"),
    outcome_unknown=bindparam("new_outcome_unknown"),
)
_RELEASED = _finishing(
    status=bindparam("new_status"),
    attempts=bindparam("new_attempts"),
    next_attempt_at=bindparam("new_next_attempt_at"),
)


def _finish(
    connection: DriverConnection, claimed: Claimed, statement: DriverStatement, **values: Any
) -> bool:
    """Record an attempt's result, only if this dispatcher still holds the message.

    One statement, committed before the next message goes, so a killed dispatcher leaves
    at most the message in flight unrecorded (see `autocommit_connection` for what a power
    cut can do: send the last few again, as of unknown outcome, with the same Message-ID).
    """
    changed = statement.execute(
        connection, {"message_id": claimed.email.id, "token": claimed.token, **values}
    )
    return bool(changed)


def record_sent(
    connection: DriverConnection, claimed: Claimed, *, provider_id: str, now: datetime
) -> bool:
    return _finish(connection, claimed, _SENT, new_provider_id=provider_id[:255], new_sent_at=now)


def record_failure(
    connection: DriverConnection,
    claimed: Claimed,
    *,
    error: str,
    next_attempt_at: datetime | None,
    outcome_unknown: bool,
    attempts: int | None = None,
) -> bool:
    """``next_attempt_at=None`` means the message is dead: no further attempts.

    ``attempts`` overrides the count the claim made (an attempt that could not even start
    is not counted).
    """
    values: dict[str, Any] = {
        "new_error": error[:MAX_ERROR],
        "new_outcome_unknown": outcome_unknown or claimed.outcome_unknown,
        "new_attempts": claimed.attempts if attempts is None else attempts,
    }
    if next_attempt_at is None:
        return _finish(connection, claimed, _DEAD, **values)
    return _finish(connection, claimed, _FAILED, new_next_attempt_at=next_attempt_at, **values)


def release(connection: DriverConnection, claimed: Claimed, *, now: datetime) -> bool:
    """Hand back a claimed message that was never attempted, due at once, attempt uncounted."""
    return _finish(
        connection,
        claimed,
        _RELEASED,
        new_status=Status.FAILED.value if claimed.attempts > 1 else Status.QUEUED.value,
        new_attempts=claimed.attempts - 1,
        new_next_attempt_at=now,
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
            .values(status=Status.DEAD.value, last_error=reason[:MAX_ERROR], next_attempt_at=None)
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
        live_lease = message.next_attempt_at is not None and message.next_attempt_at > now
        if message.status == Status.SENDING.value and live_lease:
            raise Refused(f"outbox message {message_id} is being sent now")
        status = Status.QUEUED.value if message.attempts == 0 else Status.FAILED.value
        # A message still "sending" was in flight when its dispatcher died.
        unknown = message.outcome_unknown or message.status == Status.SENDING.value
        connection.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == message_id)
            .values(status=status, next_attempt_at=now, claim_token=None, outcome_unknown=unknown)
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
