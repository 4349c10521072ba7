"""Helpers that put messages in the outbox and read them back, shared by the mail tests."""

from __future__ import annotations

from channelflow import clock
from channelflow.notifications import outbox
from channelflow.notifications.kinds import CaseAssigned
from channelflow.notifications.notifier import Notice
from channelflow.runtime import Runtime
from channelflow.store.db import write_connection
from channelflow.store.models import OutboxMessage

SENDER = "channelflow@council.example.gov.uk"
LEAD_ADDRESS = "lee@example.org"


def assigned(number: int, recipient: str = LEAD_ADDRESS) -> Notice:
    """A case-assigned email about CF-2026-<number>."""
    reference = f"CF-2026-{number:04d}"
    return Notice(
        key=f"case_assigned:{reference}:v4:user:5",
        recipient=recipient,
        context=CaseAssigned(reference=reference),
    )


def queue(runtime: Runtime, *notices: Notice) -> list[int]:
    """Queue ``notices`` in one transaction; their outbox ids, in the order given."""
    with write_connection(runtime.engine) as connection:
        runtime.notifier.queue(connection, list(notices), now=clock.now())
    ids = []
    for notice in notices:
        (message,) = outbox.list_messages(runtime.engine, idempotency_key=notice.key)
        assert message.id is not None
        ids.append(message.id)
    return ids


def row(runtime: Runtime, message_id: int) -> OutboxMessage:
    (message,) = outbox.list_messages(runtime.engine, message_id=message_id)
    return message
