"""The email itself: what the outbox stores and the RFC 5322 message built from it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import Header
from email.message import EmailMessage
from email.policy import default
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

    def as_bytes(self) -> bytes:
        """The RFC 5322 message: multipart/alternative (text, HTML) plus any attachments.

        Every byte comes from the outbox row and the key (Message-ID, Date, boundaries), so
        a resend after an uncertain failure is the same message to the recipient's mail
        system. Built directly rather than with `email.message`, which took longer than
        the SMTP exchange itself; the tests parse the result back with the standard library.
        """
        digest = hashlib.sha256(self.idempotency_key.encode()).hexdigest()[:24]
        # "=_" cannot occur in quoted-printable or base64 text, so no body can hold these.
        alternative, mixed = f"=_alt_{digest}", f"=_mixed_{digest}"
        headers = [
            f"From: {self.sender}",
            f"To: {self.recipient}",
            f"Subject: {_header_text(self.subject)}",
            f"Date: {format_datetime(self.created_at.astimezone(UTC))}",
            f"Message-ID: {self.message_id}",
            "Auto-Submitted: auto-generated",
            "MIME-Version: 1.0",
        ]
        body = [
            f"--{alternative}",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
            _quoted_printable(self.text),
            f"--{alternative}",
            'Content-Type: text/html; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
            _quoted_printable(self.html),
            f"--{alternative}--",
        ]
        if not self.attachments:
            lines = [
                *headers,
                f'Content-Type: multipart/alternative; boundary="{alternative}"',
                "",
                *body,
            ]
        else:
            lines = [
                *headers,
                f'Content-Type: multipart/mixed; boundary="{mixed}"',
                "",
                f"--{mixed}",
                f'Content-Type: multipart/alternative; boundary="{alternative}"',
                "",
                *body,
            ]
            for attachment in self.attachments:
                lines += [
                    f"--{mixed}",
                    f"Content-Type: {attachment.content_type}",
                    f'Content-Disposition: attachment; filename="{attachment.filename}"',
                    "Content-Transfer-Encoding: base64",
                    "",
                    base64.encodebytes(attachment.content)
                    .decode("ascii")
                    .rstrip("\n")
                    .replace("\n", "\r\n"),
                ]
            lines.append(f"--{mixed}--")
        return ("\r\n".join(lines) + "\r\n").encode("ascii")

    def to_mime(self) -> EmailMessage:
        """The message parsed back with the standard library, for reading its parts."""
        parsed = message_from_bytes(self.as_bytes(), policy=default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def _quoted_printable(text: str) -> str:
    # b2a_qp breaks long lines with whatever line ending the text uses: make that LF, then
    # turn every LF into the CRLF of the wire format.
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    encoded = binascii.b2a_qp(normalised, istext=True).decode("ascii")
    return encoded.replace("\n", "\r\n")


def _header_text(value: str) -> str:
    # Encoded words can be folded anywhere, so also a long line of plain ASCII (RFC 5322
    # allows 998 octets) goes that way.
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8", header_name="Subject").encode(linesep="\r\n")


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
