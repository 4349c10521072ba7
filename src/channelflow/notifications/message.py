"""The email itself: what the outbox stores and the RFC 5322 message built from it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from channelflow.exceptions import InvalidInput

_ADDRESS = re.compile(r"^[^@\s<>\"(),;:\\\[\]]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_ANY_ADDRESS = re.compile(r"[^@\s<>\"'(),;:]+@[A-Za-z0-9.-]+")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Email:
    """A rendered message with everything needed to send it, identical on every attempt."""

    id: int
    idempotency_key: str
    kind: str
    sender: str
    recipient: str
    subject: str
    text: str
    html: str
    created_at: datetime
    attachments: tuple[Attachment, ...] = field(default=())

    @property
    def message_id(self) -> str:
        return message_id_for(self.idempotency_key, self.sender)

    def to_mime(self) -> EmailMessage:
        """multipart/mixed holding multipart/alternative (text, HTML) and the attachments.

        Message-ID and Date are fixed by the outbox row, so a resend after an uncertain
        failure is byte-for-byte the same message to the recipient's mail system.
        """
        message = EmailMessage(policy=SMTP)
        message["From"] = self.sender
        message["To"] = self.recipient
        message["Subject"] = self.subject
        message["Date"] = format_datetime(self.created_at)
        message["Message-ID"] = self.message_id
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self.text, cte="quoted-printable")
        message.add_alternative(self.html, subtype="html", cte="quoted-printable")
        for attachment in self.attachments:
            maintype, subtype = attachment.content_type.split(";", 1)[0].split("/", 1)
            params = dict(
                part.strip().split("=", 1)
                for part in attachment.content_type.split(";")[1:]
                if "=" in part
            )
            message.add_attachment(
                attachment.content,
                maintype=maintype,
                subtype=subtype,
                filename=attachment.filename,
                params=params,
            )
        return message


def message_id_for(idempotency_key: str, sender: str) -> str:
    """A Message-ID derived from the idempotency key (hashed: keys may name recipients)."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    domain = sender.rsplit("@", 1)[-1] if "@" in sender else "channelflow.invalid"
    return f"<{digest}@{domain}>"


def validate_address(value: str, *, what: str = "the email address") -> str:
    value = value.strip()
    if not value.isascii() or len(value) > 254 or not _ADDRESS.match(value):
        raise InvalidInput(f"{what} is not a valid email address")
    return value


def without_addresses(text: str) -> str:
    """Error text from a mail server may quote an address; keep none of them."""
    return _ANY_ADDRESS.sub("<address>", text)


def attachments_to_json(attachments: tuple[Attachment, ...]) -> str:
    return json.dumps(
        [
            {
                "filename": item.filename,
                "content_type": item.content_type,
                "content": base64.b64encode(item.content).decode("ascii"),
            }
            for item in attachments
        ]
    )


def attachments_from_json(value: str) -> tuple[Attachment, ...]:
    items: list[dict[str, Any]] = json.loads(value)
    return tuple(
        Attachment(item["filename"], item["content_type"], base64.b64decode(item["content"]))
        for item in items
    )
