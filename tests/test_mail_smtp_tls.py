"""SMTP over TLS and with a login, against a real loopback server with a self-signed certificate.

The server is aiosmtpd (``tests.tls_server``): STARTTLS offered and required before mail, or
TLS from the first byte (port-465 style), optionally with AUTH for one user name and password.
A certificate is trusted either through the transport's ``ssl_context`` or, for the CLI, through
the standard ``SSL_CERT_FILE`` variable that ``ssl.create_default_context()`` honours.
"""

from __future__ import annotations

import logging
import random
import smtplib
import ssl
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from channelflow import clock
from channelflow.exceptions import TransportUnavailable
from channelflow.notifications import outbox
from channelflow.notifications.dispatcher import Dispatcher, PassReport, RetryPolicy
from channelflow.notifications.message import Email
from channelflow.notifications.outbox import Status
from channelflow.notifications.transports.smtp import SmtpSettings, SmtpTransport, TLSMode
from channelflow.runtime import Runtime
from tests.cli_helpers import Cli
from tests.factories import NOW
from tests.outbox_factories import LEAD_ADDRESS, SENDER, assigned, queue, row
from tests.tls_server import Certificate, Mode, TlsMailServer, make_certificate

USER = "channelflow-mailer"
PASSWORD = "Pa55-w0rd-not-for-logs"
WRONG_PASSWORD = "Wr0ng-pa55-not-for-logs"
T0 = NOW + timedelta(hours=1)
FIRST_DELAY = RetryPolicy().delay(1, random.Random(0))
QUEUED_OK = "250 2.0.0 OK: queued"


# Fixtures and helpers.


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (the loopback servers' address)."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def foreign_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for another host name only."""
    return make_certificate(tmp_path_factory.mktemp("tls-foreign"), names="DNS:mail.example.net")


@pytest.fixture(autouse=True)
def _pinned_clock_and_no_ambient_trust(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The default context must mean the system's trust store, whatever the developer's shell.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    clock.set_now(T0)
    yield
    clock.set_now(None)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[smtplib.SMTP]]:
    """Every SMTP connection the transport opens (SMTP_SSL too); all closed at the end."""
    opened: list[smtplib.SMTP] = []
    connect = smtplib.SMTP.connect

    def tracked(self: smtplib.SMTP, *args: Any, **kwargs: Any) -> Any:
        opened.append(self)
        return connect(self, *args, **kwargs)

    monkeypatch.setattr(smtplib.SMTP, "connect", tracked)
    yield opened
    for connection in opened:
        connection.close()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], runtime: Runtime) -> Cli:
    return Cli(capsys, runtime.settings.database_url, runtime.settings.key_file)


def transport(
    port: int,
    tls: TLSMode,
    context: ssl.SSLContext | None = None,
    *,
    user: str | None = None,
    password: str | None = None,
    timeout: float = 5,
) -> SmtpTransport:
    settings = SmtpSettings("127.0.0.1", port, tls, user, password, timeout)
    return SmtpTransport(settings, ssl_context=context)


def send_one(smtp: SmtpTransport, email: Email | None = None) -> str:
    try:
        return smtp.send(email or an_email(), outcome_unknown=False)
    finally:
        smtp.close()


def an_email(**overrides: Any) -> Email:
    values: dict[str, Any] = {
        "id": 1,
        "idempotency_key": "test_message:1",
        "kind": "test_message",
        "sender": SENDER,
        "recipient": "someone@example.org",
        "subject": "channelflow test",
        "text": "Mail is delivered.\n",
        "html": "<p>Mail is delivered.</p>\n",
        "created_at": T0,
    }
    values.update(overrides)
    return Email(**values)


def dispatcher(runtime: Runtime, smtp: SmtpTransport) -> Dispatcher:
    return Dispatcher(engine=runtime.engine, transport=smtp, sender=SENDER, rng=random.Random(0))


def one_line(stream: str) -> str:
    lines = stream.splitlines()
    assert len(lines) == 1, stream
    return lines[0]


def use_smtp(monkeypatch: pytest.MonkeyPatch, port: int, **extra: str) -> None:
    environment = {
        "CHANNELFLOW_MAIL_TRANSPORT": "smtp",
        "CHANNELFLOW_SMTP_HOST": "127.0.0.1",
        "CHANNELFLOW_SMTP_PORT": str(port),
        "CHANNELFLOW_SMTP_TLS": "starttls",
        "CHANNELFLOW_SMTP_TIMEOUT": "5",
        "CHANNELFLOW_MAIL_FROM": SENDER,
        **extra,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


def untrusted(port: int) -> str:
    return f"cannot connect to the SMTP server 127.0.0.1:{port} (SSLCertVerificationError)"


def refused_login(port: int) -> str:
    return f"the SMTP server 127.0.0.1:{port} refused the user name or password"


# 1. STARTTLS and implicit TLS, transport only.


def test_starttls_with_a_context_trusting_the_certificate_delivers_over_tls(
    certificate: Certificate,
) -> None:
    with TlsMailServer(certificate, mode="starttls") as server:
        reply = send_one(transport(server.port, TLSMode.STARTTLS, certificate.client_context()))

        assert reply == QUEUED_OK
        (received,) = server.received
        assert received.rcpt_tos == ["someone@example.org"]
        assert received.parsed()["Subject"] == "channelflow test"
        (seen,) = server.seen
        assert seen.upgraded, "the message did not come over a STARTTLS-upgraded session"
        assert seen.tls_version is not None
        assert seen.tls_version.startswith("TLSv1.")
        assert seen.login is None


def test_implicit_tls_with_a_context_trusting_the_certificate_delivers(
    certificate: Certificate,
) -> None:
    with TlsMailServer(certificate, mode="ssl") as server:
        reply = send_one(transport(server.port, TLSMode.SSL, certificate.client_context()))

        assert reply == QUEUED_OK
        (received,) = server.received
        assert received.rcpt_tos == ["someone@example.org"]
        (seen,) = server.seen
        # Encrypted from the first byte: there was nothing to upgrade.
        assert seen.tls_version is not None
        assert seen.tls_version.startswith("TLSv1.")
        assert not seen.upgraded


def test_several_messages_share_one_tls_connection(certificate: Certificate) -> None:
    with TlsMailServer(certificate, mode="starttls") as server:
        smtp = transport(server.port, TLSMode.STARTTLS, certificate.client_context())
        try:
            for number in (1, 2, 3):
                email = an_email(id=number, idempotency_key=f"test_message:{number}")
                assert smtp.send(email, outcome_unknown=False) == QUEUED_OK
        finally:
            smtp.close()

        assert server.handler.connections == 2  # EHLO before and after STARTTLS, once
        assert len(server.received) == 3
        assert all(seen.upgraded for seen in server.seen)


@pytest.mark.parametrize(
    ("mode", "tls"), [("starttls", TLSMode.STARTTLS), ("ssl", TLSMode.SSL)], ids=["starttls", "ssl"]
)
def test_the_default_context_refuses_a_self_signed_certificate_and_closes_the_socket(
    certificate: Certificate,
    connections: list[smtplib.SMTP],
    mode: Mode,
    tls: TLSMode,
) -> None:
    with TlsMailServer(certificate, mode=mode) as server:
        smtp = transport(server.port, tls)  # ssl.create_default_context(): system CAs only

        with pytest.raises(TransportUnavailable) as raised:
            send_one(smtp)

        assert raised.value.message == untrusted(server.port)
        assert server.received == []
    assert len(connections) == 1
    assert connections[0].sock is None, "the socket was left open"


def test_a_trusted_certificate_for_another_host_name_is_refused(
    foreign_certificate: Certificate, connections: list[smtplib.SMTP]
) -> None:
    with TlsMailServer(foreign_certificate, mode="starttls") as server:
        smtp = transport(server.port, TLSMode.STARTTLS, foreign_certificate.client_context())

        with pytest.raises(TransportUnavailable) as raised:
            send_one(smtp)

        # Trusting the certificate is not enough: it must name the host connected to.
        assert raised.value.message == untrusted(server.port)
        assert server.received == []
    assert connections[0].sock is None


def test_implicit_tls_to_a_starttls_port_makes_the_transport_unavailable(
    certificate: Certificate, connections: list[smtplib.SMTP]
) -> None:
    with TlsMailServer(certificate, mode="starttls") as server:
        smtp = transport(server.port, TLSMode.SSL, certificate.client_context())

        with pytest.raises(TransportUnavailable, match="cannot connect to the SMTP server") as e:
            send_one(smtp)

        assert f"127.0.0.1:{server.port}" in e.value.message
        assert server.received == []
    assert connections[0].sock is None


def test_starttls_to_an_implicit_tls_port_gives_up_after_the_timeout(
    certificate: Certificate, connections: list[smtplib.SMTP]
) -> None:
    # Both ends wait for the other to speak first (a 465 port set up as starttls).
    with TlsMailServer(certificate, mode="ssl") as server:
        smtp = transport(server.port, TLSMode.STARTTLS, certificate.client_context(), timeout=1)

        with pytest.raises(TransportUnavailable) as raised:
            send_one(smtp)

        # smtplib reports its read timeout as a disconnection.
        assert raised.value.message == (
            f"cannot connect to the SMTP server 127.0.0.1:{server.port} (SMTPServerDisconnected)"
        )
        assert server.received == []
    assert connections[0].sock is None


# 2. Login, transport only.


@pytest.mark.parametrize(
    ("mode", "tls", "auth_require_tls"),
    [("starttls", TLSMode.STARTTLS, True), ("plain", TLSMode.NONE, False)],
    ids=["over-starttls", "plain-loopback"],
)
def test_login_with_the_right_password_delivers(
    certificate: Certificate, mode: Mode, tls: TLSMode, auth_require_tls: bool
) -> None:
    with TlsMailServer(
        certificate, mode=mode, login=(USER, PASSWORD), auth_require_tls=auth_require_tls
    ) as server:
        smtp = transport(
            server.port, tls, certificate.client_context(), user=USER, password=PASSWORD
        )

        assert send_one(smtp) == QUEUED_OK

        (seen,) = server.seen
        assert seen.login == USER
        assert seen.upgraded is (tls is TLSMode.STARTTLS)


def test_a_wrong_password_is_transport_unavailable_and_never_quoted(
    certificate: Certificate, connections: list[smtplib.SMTP]
) -> None:
    with TlsMailServer(certificate, mode="starttls", login=(USER, PASSWORD)) as server:
        smtp = transport(
            server.port,
            TLSMode.STARTTLS,
            certificate.client_context(),
            user=USER,
            password=WRONG_PASSWORD,
        )

        with pytest.raises(TransportUnavailable) as raised:
            send_one(smtp)

        assert raised.value.message == refused_login(server.port)
        assert server.logins_offered, "the client never tried to log in"
        assert set(server.logins_offered) == {USER}
        assert server.received == []
    error = raised.value
    assert error.__cause__ is None
    for text in (str(error), repr(error), error.message, str(error.__context__)):
        assert WRONG_PASSWORD not in text
        assert PASSWORD not in text
    assert connections[0].sock is None


def test_a_password_is_never_sent_in_clear_text_to_a_server_that_offers_login_only_over_tls(
    certificate: Certificate,
) -> None:
    # CHANNELFLOW_SMTP_TLS=none by mistake: the server offers AUTH only after STARTTLS.
    with TlsMailServer(certificate, mode="starttls", login=(USER, PASSWORD)) as server:
        smtp = transport(server.port, TLSMode.NONE, user=USER, password=PASSWORD)

        with pytest.raises(TransportUnavailable) as raised:
            send_one(smtp)

        assert raised.value.message == (
            f"the SMTP server 127.0.0.1:{server.port} does not support STARTTLS or login; "
            "check CHANNELFLOW_SMTP_TLS"
        )
        assert server.logins_offered == []
        assert server.received == []


# 3. A dispatch pass, on SQLite and PostgreSQL.


def test_a_dispatch_pass_over_starttls_with_a_login_marks_the_message_sent(
    runtime: Runtime, certificate: Certificate
) -> None:
    (message_id,) = queue(runtime, assigned(1))

    with TlsMailServer(certificate, mode="starttls", login=(USER, PASSWORD)) as server:
        smtp = transport(
            server.port,
            TLSMode.STARTTLS,
            certificate.client_context(),
            user=USER,
            password=PASSWORD,
        )
        report = dispatcher(runtime, smtp).run_once()

        assert report == PassReport(sent=[message_id])
        (received,) = server.received
        assert received.rcpt_tos == [LEAD_ADDRESS]
        (seen,) = server.seen
        assert (seen.upgraded, seen.login) == (True, USER)
    sent = row(runtime, message_id)
    assert (sent.status, sent.attempts, sent.sent_at) == (Status.SENT, 1, T0)
    assert sent.provider_id == QUEUED_OK
    assert sent.last_error is None


def test_an_untrusted_certificate_stops_the_pass_and_the_message_stays_failed(
    runtime: Runtime, certificate: Certificate
) -> None:
    first, second = queue(runtime, assigned(1), assigned(2))

    with TlsMailServer(certificate, mode="starttls") as server:
        report = dispatcher(runtime, transport(server.port, TLSMode.STARTTLS)).run_once()
        port = server.port
        assert server.received == []

    assert report == PassReport(failed=[first], stopped_because=untrusted(port))
    failed = row(runtime, first)
    assert (failed.status, failed.attempts) == (Status.FAILED, 0)
    assert failed.next_attempt_at == T0 + FIRST_DELAY
    assert failed.last_error == untrusted(port)
    assert "@" not in failed.last_error
    assert "Traceback" not in failed.last_error
    assert "\n" not in failed.last_error
    # The pass stopped: the second message was never tried.
    waiting = row(runtime, second)
    assert (waiting.status, waiting.attempts, waiting.last_error) == (Status.QUEUED, 0, None)


def test_a_wrong_password_stops_the_pass_keeps_the_mail_and_is_never_written_down(
    runtime: Runtime, certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="channelflow")
    first, second = queue(runtime, assigned(1), assigned(2))

    with TlsMailServer(certificate, mode="starttls", login=(USER, PASSWORD)) as server:
        port = server.port
        wrong = transport(
            port, TLSMode.STARTTLS, certificate.client_context(), user=USER, password=WRONG_PASSWORD
        )
        report = dispatcher(runtime, wrong).run_once()

        assert report == PassReport(failed=[first], stopped_because=refused_login(port))
        failed = row(runtime, first)
        assert (failed.status, failed.attempts) == (Status.FAILED, 0)
        assert failed.last_error == refused_login(port)
        assert row(runtime, second).status == Status.QUEUED
        assert server.received == []
        # Logged, but without the password.
        assert refused_login(port) in caplog.text
        rows_text = " ".join(repr(message) for message in outbox.list_messages(runtime.engine))
        for text in (caplog.text, rows_text, report.stopped_because or ""):
            assert WRONG_PASSWORD not in text
            assert PASSWORD not in text

        # The password is corrected: the untried message goes now, the failed one after backoff.
        right = transport(
            port, TLSMode.STARTTLS, certificate.client_context(), user=USER, password=PASSWORD
        )
        assert dispatcher(runtime, right).run_once() == PassReport(sent=[second])
        with clock.frozen_at(T0 + FIRST_DELAY):
            assert dispatcher(runtime, right).run_once() == PassReport(sent=[first])
        assert len(server.received) == 2
    assert (row(runtime, first).status, row(runtime, first).attempts) == (Status.SENT, 1)


@pytest.mark.parametrize(
    ("server_options", "client_options"),
    [
        ({"mode": "starttls"}, {"tls": TLSMode.NONE}),
        (
            {"mode": "starttls", "login": (USER, PASSWORD), "auth_required": True},
            {"tls": TLSMode.STARTTLS},
        ),
    ],
    ids=["tls-none-but-server-requires-starttls", "no-user-but-server-requires-login"],
)
def test_a_server_that_requires_starttls_or_a_login_first_does_not_kill_the_queued_mail(
    runtime: Runtime,
    certificate: Certificate,
    server_options: dict[str, Any],
    client_options: dict[str, Any],
) -> None:
    # A settings mistake, refused with 530 at MAIL FROM (RFC 3207 section 4, RFC 4954 section 6),
    # is the same for every message: like a refused password it must stop the pass and keep
    # the mail for when the settings are fixed, not make every queued message dead at once.
    first, second = queue(runtime, assigned(1), assigned(2))

    with TlsMailServer(certificate, **server_options) as server:
        smtp = transport(server.port, context=certificate.client_context(), **client_options)
        report = dispatcher(runtime, smtp).run_once()
        assert server.received == []

    statuses = {message_id: row(runtime, message_id).status for message_id in (first, second)}
    assert report.dead == [], (
        f"a 530 at MAIL FROM made queued mail dead: {statuses}; last_error "
        f"{row(runtime, first).last_error!r}"
    )
    assert report.stopped_because is not None
    assert "530" in report.stopped_because
    assert statuses == {first: Status.FAILED, second: Status.QUEUED}


# 4. The CLI, configured only through the environment.


def test_ssl_cert_file_makes_the_default_context_trust_the_certificate(
    certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the CLI tests below rely on: ssl.create_default_context() reads SSL_CERT_FILE
    # through OpenSSL's default verify paths, each time a context is made.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
    assert ssl.get_default_verify_paths().cafile == str(certificate.cert)

    with TlsMailServer(certificate, mode="starttls") as server:
        assert send_one(transport(server.port, TLSMode.STARTTLS)) == QUEUED_OK
        assert server.seen[0].upgraded

    monkeypatch.delenv("SSL_CERT_FILE")
    with TlsMailServer(certificate, mode="starttls") as server, pytest.raises(TransportUnavailable):
        send_one(transport(server.port, TLSMode.STARTTLS))


def test_mail_test_over_starttls_with_a_login_trusting_ssl_cert_file_exits_0(
    cli: Cli, certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TlsMailServer(certificate, mode="starttls", login=(USER, PASSWORD)) as server:
        use_smtp(
            monkeypatch,
            server.port,
            CHANNELFLOW_SMTP_USER=USER,
            CHANNELFLOW_SMTP_PASSWORD=PASSWORD,
        )
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))

        outcome = cli("mail", "test", "someone@example.org")

        assert outcome.code == 0, outcome.err
        assert one_line(outcome.out).startswith("delivered through smtp (outbox ")
        assert outcome.out.rstrip().endswith(QUEUED_OK)
        (received,) = server.received
        assert received.rcpt_tos == ["someone@example.org"]
        assert received.parsed()["From"] == SENDER
        (seen,) = server.seen
        assert (seen.upgraded, seen.login) == (True, USER)
    (listed,) = cli("outbox", "list", "--json").json()
    assert (listed["kind"], listed["status"], listed["attempts"]) == ("test_message", "sent", 1)


def test_mail_test_with_a_wrong_password_exits_7_with_one_line_and_no_password(
    cli: Cli, certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TlsMailServer(certificate, mode="starttls", login=(USER, PASSWORD)) as server:
        port = server.port
        use_smtp(
            monkeypatch,
            port,
            CHANNELFLOW_SMTP_USER=USER,
            CHANNELFLOW_SMTP_PASSWORD=WRONG_PASSWORD,
        )
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))

        outcome = cli("mail", "test", "someone@example.org")

        assert server.logins_offered, "the CLI never reached the login"
        assert server.received == []
    assert outcome.code == 7
    assert outcome.out == ""
    error = one_line(outcome.err)
    assert error.startswith("channelflow: error: the test message (outbox ")
    assert error.endswith(f"was not delivered: {refused_login(port)}.")
    assert "Traceback" not in outcome.err
    listed = cli("outbox", "list", "--json")
    (message,) = listed.json()
    assert (message["status"], message["attempts"]) == ("dead", 0)
    assert message["last_error"] == refused_login(port)
    for text in (outcome.out, outcome.err, listed.out):
        assert WRONG_PASSWORD not in text
        assert PASSWORD not in text


def test_outbox_send_with_a_wrong_password_exits_7_and_keeps_the_mail_queued(
    runtime: Runtime, cli: Cli, certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = queue(runtime, assigned(1), assigned(2))
    with TlsMailServer(certificate, mode="starttls", login=(USER, PASSWORD)) as server:
        port = server.port
        use_smtp(
            monkeypatch,
            port,
            CHANNELFLOW_SMTP_USER=USER,
            CHANNELFLOW_SMTP_PASSWORD=WRONG_PASSWORD,
        )
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))

        outcome = cli("outbox", "send")

        assert server.received == []
    assert outcome.code == 7
    assert outcome.out == ""
    assert one_line(outcome.err) == (
        f"channelflow: error: {refused_login(port)}; "
        "unsent email stays queued and is retried later."
    )
    assert WRONG_PASSWORD not in outcome.err
    assert (row(runtime, first).status, row(runtime, first).attempts) == (Status.FAILED, 0)
    assert (row(runtime, second).status, row(runtime, second).attempts) == (Status.QUEUED, 0)


def test_mail_test_to_a_self_signed_server_without_ssl_cert_file_exits_7(
    cli: Cli, certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TlsMailServer(certificate, mode="starttls") as server:
        port = server.port
        use_smtp(monkeypatch, port)

        outcome = cli("mail", "test", "someone@example.org")

        assert server.received == []
    assert outcome.code == 7
    assert outcome.out == ""
    error = one_line(outcome.err)
    assert error.startswith("channelflow: error: the test message (outbox ")
    assert error.endswith(f"was not delivered: {untrusted(port)}.")
    assert "someone@example.org" not in error
