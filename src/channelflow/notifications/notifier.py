"""Render a message for a recipient and queue it, in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from channelflow.notifications import ics, outbox
from channelflow.notifications.kinds import Context, kind_of
from channelflow.notifications.message import Attachment, validate_address
from channelflow.notifications.outbox import NewMessage
from channelflow.notifications.templates import Templates
from channelflow.store.db import DriverConnection

DEFAULT_SENDER = "channelflow@localhost"


@dataclass(frozen=True)
class Notice:
    """One email to be queued: what it says, to whom, and the occasion that makes it unique.

    ``key`` names the thing, the recipient and the occasion (never with personal details),
    such as ``case_assigned:CF-2026-0001:v4:user:7``.
    """

    key: str
    recipient: str
    context: Context


class Notifier:
    def __init__(self, *, templates: Templates | None = None, sender: str = DEFAULT_SENDER) -> None:
        self.templates = templates or Templates()
        # Checked when a message is made, so a typo here never blocks work that sends none.
        self.sender = sender

    def message(self, notice: Notice, *, now: datetime) -> NewMessage:
        validate_address(self.sender, what="the sender address (CHANNELFLOW_MAIL_FROM)")
        recipient = validate_address(notice.recipient, what="the recipient's email address")
        rendered = self.templates.render(notice.context)
        attachments: tuple[Attachment, ...] = ()
        meeting = getattr(notice.context, "meeting", None)
        if meeting is not None:
            invitation = ics.attachment(
                meeting, organizer=self.sender, stamp=now, attendee=recipient
            )
            attachments = (invitation,)
        return NewMessage(
            idempotency_key=notice.key,
            kind=kind_of(notice.context).value,
            recipient=recipient,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            attachments=attachments,
        )

    def queue(
        self,
        connection: Connection | DriverConnection,
        notices: list[Notice],
        *,
        now: datetime,
    ) -> int:
        """Render and queue ``notices``; returns how many were new (a known key is skipped)."""
        if not notices:
            return 0
        messages = [self.message(notice, now=now) for notice in notices]
        return outbox.enqueue(connection, messages, now=now)
