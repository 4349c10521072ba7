"""Sending over SMTP, one connection kept open for a whole dispatch pass.

Replies are classified by RFC 5321: 4xx is transient, 5xx permanent. A connection that drops
after the message data was sent leaves the outcome unknown: the server may have accepted it.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from channelflow.exceptions import (
    DeliveryOutcomeUnknown,
    PermanentDeliveryFailure,
    TransientDeliveryFailure,
    TransportUnavailable,
)
from channelflow.notifications.message import Email, without_addresses
from channelflow.notifications.transports.base import Transport


class TLSMode(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


DEFAULT_PORTS = {TLSMode.NONE: 25, TLSMode.STARTTLS: 587, TLSMode.SSL: 465}


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: TLSMode = TLSMode.STARTTLS
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {without_addresses(' '.join(text.split()))}"


def _refused(
    step: str, code: int, text: bytes | str
) -> TransientDeliveryFailure | PermanentDeliveryFailure:
    reason = f"the SMTP server refused {step}: {_reply(code, text)}"
    if code == 530:
        # "Must issue STARTTLS first" / "Authentication required" (RFC 3207, 4954): about
        # the connection's settings, so every message would get it; none should die of it.
        return TransportUnavailable(
            f"{reason}; it wants STARTTLS or a login first: check CHANNELFLOW_SMTP_TLS and "
            "CHANNELFLOW_SMTP_USER"
        )
    if 500 <= code < 600:
        return PermanentDeliveryFailure(reason)
    return TransientDeliveryFailure(reason)


class SmtpTransport(Transport):
    name = "smtp"

    def __init__(
        self, settings: SmtpSettings, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.settings = settings
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._connection: smtplib.SMTP | None = None

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    @property
    def longest_send(self) -> float:
        # The timeout bounds each socket operation: a send is at most a dozen (connect,
        # EHLO, STARTTLS, EHLO, login, MAIL, RCPT, DATA, the data, the reply), twice when
        # a kept-open connection has to be made again.
        return self.settings.timeout * 25

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        where = f"{settings.host}:{settings.port}"
        try:
            connection: smtplib.SMTP
            if settings.tls is TLSMode.SSL:
                connection = smtplib.SMTP_SSL(
                    settings.host,
                    settings.port,
                    timeout=settings.timeout,
                    context=self._ssl_context,
                )
            else:
                connection = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
            try:
                connection.ehlo()
                if settings.tls is TLSMode.STARTTLS:
                    connection.starttls(context=self._ssl_context)
                    connection.ehlo()
                if settings.user:
                    connection.login(settings.user, settings.password or "")
            except BaseException:
                connection.close()
                raise
        except smtplib.SMTPAuthenticationError:
            raise TransportUnavailable(
                f"the SMTP server {where} refused the user name or password"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise TransportUnavailable(
                f"the SMTP server {where} does not support STARTTLS or login; "
                "check CHANNELFLOW_SMTP_TLS"
            ) from None
        except smtplib.SMTPConnectError as error:
            raise TransportUnavailable(
                f"the SMTP server {where} would not take mail: "
                f"{_reply(error.smtp_code, error.smtp_error)}"
            ) from None
        except (OSError, smtplib.SMTPException, ValueError) as error:
            # ValueError: UnicodeError from a host name that cannot be encoded, for one.
            raise TransportUnavailable(
                f"cannot connect to the SMTP server {where} ({type(error).__name__})"
            ) from None
        self._connection = connection
        return connection

    def send(
        self,
        email: Email,
        *,
        outcome_unknown: bool,
        while_waiting: Callable[[], None] = lambda: None,
    ) -> str:
        reused = self._connection is not None
        try:
            return self._send(email, while_waiting)
        except _Dropped:
            self.close()
            if not reused:
                raise TransientDeliveryFailure(
                    "the SMTP server closed the connection before the message was sent"
                ) from None
        # A kept-open connection may have been closed by the server while idle: once more.
        try:
            return self._send(email, while_waiting)
        except _Dropped:
            self.close()
            raise TransientDeliveryFailure(
                "the SMTP server closed the connection before the message was sent"
            ) from None

    def _send(self, email: Email, while_waiting: Callable[[], None]) -> str:
        connection = self._connection or self._connect()
        try:
            # Addresses are checked plain ASCII when queued, so they need no quoting (and
            # smtplib's own quoting parses each address again, for every message).
            connection.putcmd("mail", f"FROM:<{email.sender}>")
            # Work done while the server answers costs no time.
            try:
                while_waiting()
            except BaseException:
                self.close()
                raise
            code, text = connection.getreply()
            if code != 250:
                # A refused sender is about the settings (address, login, TLS), not this
                # message: every message would get the same answer.
                self._reset(code)
                raise TransportUnavailable(
                    f"the SMTP server refused the sender: {_reply(code, text)}; check "
                    "CHANNELFLOW_MAIL_FROM, CHANNELFLOW_SMTP_USER and CHANNELFLOW_SMTP_TLS"
                )
            connection.putcmd("rcpt", f"TO:<{email.recipient}>")
            payload = email.as_bytes()
            code, text = connection.getreply()
            if code not in (250, 251):
                raise _refused("the recipient", code, text)
        except (smtplib.SMTPServerDisconnected, OSError):
            raise _Dropped() from None
        except smtplib.SMTPResponseException as error:
            self.close()
            raise _refused("the message", error.smtp_code, error.smtp_error) from None
        except TransportUnavailable:
            raise
        except (TransientDeliveryFailure, PermanentDeliveryFailure):
            self._reset(code)
            raise
        try:
            # data() raises for a refused DATA command, but returns the final reply.
            code, text = connection.data(payload)
        except smtplib.SMTPDataError as error:
            self._reset(error.smtp_code)
            raise _refused("the message", error.smtp_code, error.smtp_error) from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError):
            self.close()
            raise DeliveryOutcomeUnknown(
                "the SMTP connection was lost after the message was sent, before the server "
                "confirmed it"
            ) from None
        if code != 250:
            self._reset(code)
            raise _refused("the message", code, text)
        return _reply(code, text)

    def _reset(self, code: int) -> None:
        """After a refusal, start the next message clean; 421 means the server is closing."""
        if code == 421 or self._connection is None:
            self.close()
            return
        try:
            self._connection.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()


class _Dropped(Exception):
    """The connection went away before the message data was sent: nothing was delivered."""
