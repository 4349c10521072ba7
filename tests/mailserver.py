"""A real SMTP server on loopback (aiosmtpd) that can be told to fail in chosen ways."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# Faults, each applied to one SMTP transaction in the order queued:
#   ("MAIL", "421 ...") / ("RCPT", "451 ...") / ("DATA", "550 ...")  reply with that status
#   ("DROP_AFTER_DATA", None)  take the message, then close the connection without replying
Fault = tuple[str, str | None]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: int = 0

    def _fault(self, step: str) -> Fault | None:
        with self.lock:
            if self.faults and self.faults[0][0] == step:
                return self.faults.popleft()
        return None

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> Any:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        fault = self._fault("MAIL")
        if fault is not None:
            assert fault[1] is not None
            return fault[1]
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        fault = self._fault("RCPT")
        if fault is not None:
            assert fault[1] is not None
            return fault[1]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self._fault("DATA")
        if fault is not None:
            assert fault[1] is not None
            return fault[1]
        content = envelope.original_content or b""
        with self.lock:
            self.received.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(content))
            )
        if self._fault("DROP_AFTER_DATA") is not None:
            assert server.transport is not None
            server.transport.abort()
        return "250 2.0.0 OK: queued"


class MailServer:
    """Start with ``with MailServer() as server``; ``server.port`` is where it listens."""

    def __init__(self) -> None:
        self.handler = _Handler()
        self.port = free_port()
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=10
        )

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def fail_next(self, *faults: Fault) -> None:
        with self.handler.lock:
            self.handler.faults.extend(faults)

    def __enter__(self) -> MailServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def free_port() -> int:
    """A loopback port nothing listens on (also what "connection refused" tests use)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def smtp_environment(port: int) -> dict[str, str]:
    """The CHANNELFLOW_* settings that send through the loopback server."""
    return {
        "CHANNELFLOW_MAIL_TRANSPORT": "smtp",
        "CHANNELFLOW_SMTP_HOST": "127.0.0.1",
        "CHANNELFLOW_SMTP_PORT": str(port),
        "CHANNELFLOW_SMTP_TLS": "none",
        "CHANNELFLOW_SMTP_TIMEOUT": "5",
        "CHANNELFLOW_MAIL_FROM": "channelflow@council.example.gov.uk",
    }
