"""A loopback SMTP server (aiosmtpd) speaking TLS with a self-signed certificate, and logins.

``TlsMailServer(certificate, mode="starttls")`` offers STARTTLS and refuses mail until it was
used; ``mode="ssl"`` is TLS from the first byte (port-465 style); ``mode="plain"`` offers
neither. With ``login=("user", "password")`` it offers AUTH and takes only that pair.
Each delivered message records how its session was protected and who logged in.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.mailserver import Received, _Handler, free_port

Mode = Literal["plain", "starttls", "ssl"]


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, and its private key."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.cert))


LOOPBACK_NAMES = "IP:127.0.0.1,DNS:localhost"


def make_certificate(directory: Path, names: str = LOOPBACK_NAMES) -> Certificate:
    """Generate a certificate with the ``openssl`` command (``cryptography`` is not installed).

    ``names`` is its subjectAltName: what a client checks the server's host name against.
    """
    if shutil.which("openssl") is None:
        pytest.skip("the `openssl` command is not installed (needed to make a test certificate)")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=channelflow test SMTP server",
            "-addext",
            f"subjectAltName={names}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Certificate(cert=cert, key=key)


@dataclass(frozen=True)
class Seen:
    """How the session that delivered one message was protected."""

    # The TLS version of the connection the message came over, or None for plain text.
    tls_version: str | None
    # True when the session was upgraded with STARTTLS (aiosmtpd's ``session.ssl``).
    upgraded: bool
    # The user name the session logged in with, if any.
    login: str | None


@dataclass
class _TlsHandler(_Handler):
    seen: list[Seen] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert server.transport is not None
        ssl_object = server.transport.get_extra_info("ssl_object")
        # auth_data is what the authenticator accepted (session.login_data is deprecated).
        auth = session.auth_data
        seen = Seen(
            tls_version=ssl_object.version() if ssl_object is not None else None,
            upgraded=session.ssl is not None,
            login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
        )
        with self.lock:
            self.seen.append(seen)
        return await super().handle_DATA(server, session, envelope)


@dataclass
class _Authenticator:
    """Accepts one user name and password; remembers the user names it was offered."""

    user: str
    password: str
    offered: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        with self.lock:
            self.offered.append(data.login.decode())
        good = data.login == self.user.encode() and data.password == self.password.encode()
        return AuthResult(success=good, handled=False, auth_data=data if good else None)


class TlsMailServer:
    """Start with ``with TlsMailServer(...) as server``; ``server.port`` is where it listens."""

    def __init__(
        self,
        certificate: Certificate,
        *,
        mode: Mode = "starttls",
        login: tuple[str, str] | None = None,
        auth_require_tls: bool = True,
        auth_required: bool = False,
    ) -> None:
        self.handler = _TlsHandler()
        self.port = free_port()
        self.authenticator = _Authenticator(*login) if login else None
        options: dict[str, Any] = {"auth_require_tls": auth_require_tls}
        if auth_required:
            options["auth_required"] = True
        if self.authenticator is not None:
            options["authenticator"] = self.authenticator
        if mode == "starttls":
            options.update(tls_context=certificate.server_context(), require_starttls=True)
        self._controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=10,
            ssl_context=certificate.server_context() if mode == "ssl" else None,
            **options,
        )

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def seen(self) -> list[Seen]:
        with self.handler.lock:
            return list(self.handler.seen)

    @property
    def logins_offered(self) -> list[str]:
        if self.authenticator is None:
            return []
        with self.authenticator.lock:
            return list(self.authenticator.offered)

    def __enter__(self) -> TlsMailServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
