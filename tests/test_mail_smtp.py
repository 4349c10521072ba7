"""Email over SMTP end to end: the outbox, the dispatcher and the CLI against a real server.

Every message goes through the loopback aiosmtpd server in ``tests.mailserver`` and is read
back with the standard library (and the calendar invitation with ``icalendar``). The clock is
pinned, so dates, backoff times and the order of sends are the same on every run.
"""

from __future__ import annotations

import random
import smtplib
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import icalendar
import pytest

from channelflow import clock
from channelflow.exceptions import (
    MailConfigurationError,
    TransientDeliveryFailure,
    TransportUnavailable,
)
from channelflow.notifications import kinds, outbox
from channelflow.notifications.dispatcher import Dispatcher, PassReport, RetryPolicy
from channelflow.notifications.kinds import CaseAssigned, Kind, PanelAgenda
from channelflow.notifications.message import Email, attachments_from_json, message_id_for
from channelflow.notifications.notifier import Notice, Notifier
from channelflow.notifications.outbox import Status
from channelflow.notifications.transports.smtp import SmtpSettings, SmtpTransport, TLSMode
from channelflow.runtime import Runtime
from channelflow.settings import MailSettings
from channelflow.store.db import write_connection
from tests.cli_helpers import Cli, Outcome
from tests.factories import NOW, referral_in
from tests.mailserver import MailServer, free_port, smtp_environment
from tests.outbox_factories import LEAD_ADDRESS, SENDER, assigned, queue, row

# The pinned "now" of every test: an hour after the factories' referrals were last changed.
T0 = NOW + timedelta(hours=1)
# The first backoff of a dispatcher seeded with random.Random(0).
FIRST_DELAY = RetryPolicy().delay(1, random.Random(0))
TRY_LATER = ("RCPT", "451 4.3.0 Try again later")
NOTHING_SENT = "sent 0, failed 0 (to retry), dead 0"
PANEL_SAMPLE = kinds.sample(Kind.PANEL_AGENDA)


@pytest.fixture(autouse=True)
def _pinned_clock() -> Iterator[None]:
    clock.set_now(T0)
    yield
    clock.set_now(None)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], runtime: Runtime) -> Cli:
    return Cli(capsys, runtime.settings.database_url, runtime.settings.key_file)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[smtplib.SMTP]]:
    """Every plain SMTP connection the transport opens; all closed at the end, whatever leaked."""
    opened: list[smtplib.SMTP] = []
    connect = smtplib.SMTP.connect

    def tracked(self: smtplib.SMTP, *args: Any, **kwargs: Any) -> Any:
        opened.append(self)
        return connect(self, *args, **kwargs)

    monkeypatch.setattr(smtplib.SMTP, "connect", tracked)
    yield opened
    for connection in opened:
        connection.close()


def use_smtp(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    for name, value in smtp_environment(port).items():
        monkeypatch.setenv(name, value)


def dispatcher(
    runtime: Runtime, port: int, *, retry: RetryPolicy | None = None, batch: int = 20
) -> Dispatcher:
    return Dispatcher(
        engine=runtime.engine,
        transport=SmtpTransport(SmtpSettings("127.0.0.1", port, TLSMode.NONE, timeout=5)),
        sender=SENDER,
        retry=retry,
        batch=batch,
        rng=random.Random(0),
    )


def send_due(runtime: Runtime, port: int, **options: Any) -> PassReport:
    return dispatcher(runtime, port, **options).run_once()


def text_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def one_line(stream: str) -> str:
    lines = stream.splitlines()
    assert len(lines) == 1, stream
    return lines[0]


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


# 1. Delivery through the real loopback server.


def test_a_queued_message_arrives_with_its_headers_and_both_parts(
    runtime: Runtime, mail_server: MailServer
) -> None:
    notice = assigned(12)
    (message_id,) = queue(runtime, notice)
    rendered = runtime.templates.render(notice.context)

    report = send_due(runtime, mail_server.port)

    assert report == PassReport(sent=[message_id])
    (received,) = mail_server.received
    assert received.mail_from == SENDER
    assert received.rcpt_tos == [LEAD_ADDRESS]
    parsed = received.parsed()
    assert parsed["From"] == SENDER
    assert parsed["To"] == LEAD_ADDRESS
    assert parsed["Subject"] == rendered.subject
    assert "CF-2026-0012" in parsed["Subject"]
    assert parsedate_to_datetime(parsed["Date"]) == T0
    assert parsed["Message-ID"] == message_id_for(notice.key, SENDER)
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert text_of(parsed, "plain") == rendered.text
    assert text_of(parsed, "html") == rendered.html
    assert "<strong>CF-2026-0012</strong>" in rendered.html

    sent = row(runtime, message_id)
    assert sent.status == Status.SENT
    assert sent.attempts == 1
    assert sent.provider_id == "250 2.0.0 OK: queued"
    assert sent.sent_at == T0
    assert sent.last_error is None
    assert sent.outcome_unknown is False
    assert (sent.body_text, sent.body_html) == (rendered.text, rendered.html)


def test_accepting_a_referral_emails_the_new_lead_through_smtp(
    runtime: Runtime, mail_server: MailServer
) -> None:
    reference = referral_in(runtime.workflow, "accepted")
    (queued,) = outbox.list_messages(runtime.engine)
    assert queued.id is not None
    assert (queued.kind, queued.status, queued.recipient) == (
        "case_assigned",
        "queued",
        LEAD_ADDRESS,
    )
    assert queued.idempotency_key.startswith(f"case_assigned:{reference}:v4:user:")

    report = send_due(runtime, mail_server.port)

    assert report.sent == [queued.id]
    (received,) = mail_server.received
    assert received.rcpt_tos == [LEAD_ADDRESS]
    parsed = received.parsed()
    rendered = runtime.templates.render(CaseAssigned(reference=reference))
    assert parsed["From"] == SENDER
    assert parsed["To"] == LEAD_ADDRESS
    assert parsed["Subject"] == rendered.subject
    assert reference in parsed["Subject"]
    # Queued in the change's own transaction, at the moment of the change.
    assert parsedate_to_datetime(parsed["Date"]) == NOW
    assert parsed["Message-ID"] == message_id_for(queued.idempotency_key, SENDER)
    assert text_of(parsed, "plain") == rendered.text
    assert text_of(parsed, "html") == rendered.html
    # Data minimisation: the subject's name never leaves in an email.
    assert b"Zebedee" not in received.content
    assert b"Quillfeather" not in received.content

    sent = row(runtime, queued.id)
    assert (sent.status, sent.attempts, sent.sent_at) == (Status.SENT, 1, T0)
    assert sent.provider_id == "250 2.0.0 OK: queued"


def test_a_panel_agenda_carries_a_calendar_invitation_for_the_meeting(
    runtime: Runtime, mail_server: MailServer
) -> None:
    agenda = PANEL_SAMPLE
    assert isinstance(agenda, PanelAgenda)
    # The same meeting moved to a summer date: same UID, higher SEQUENCE, BST wall-clock time.
    moved = PanelAgenda(
        meeting=replace(
            agenda.meeting, starts_at=datetime(2027, 6, 10, 13, 30, tzinfo=UTC), sequence=2
        ),
        new_cases=("CF-2027-0003",),
    )
    notices = [
        Notice("panel_agenda:panel-2026-11-26:user:4", "mel@example.org", agenda),
        Notice("panel_agenda:panel-2026-11-26:s2:user:4", "mel@example.org", moved),
    ]
    ids = queue(runtime, *notices)

    report = send_due(runtime, mail_server.port)

    assert report.sent == ids
    # "Sent" must mean the server accepted the data.
    assert [row(runtime, message_id).provider_id for message_id in ids] == [
        "250 2.0.0 OK: queued"
    ] * 2
    received = mail_server.received
    assert len(received) == 2
    # One connection carried the whole pass.
    assert mail_server.handler.connections == 1
    wall_clock = []
    for notice, message_id, delivered in zip(notices, ids, received, strict=True):
        context = notice.context
        assert isinstance(context, PanelAgenda)
        meeting = context.meeting
        rendered = runtime.templates.render(context)
        parsed = delivered.parsed()
        assert parsed["Message-ID"] == message_id_for(notice.key, SENDER)
        assert parsed["Subject"] == rendered.subject
        assert parsed.get_content_type() == "multipart/mixed"
        alternative, invitation = parsed.iter_parts()
        assert alternative.get_content_type() == "multipart/alternative"
        assert [part.get_content_type() for part in alternative.iter_parts()] == [
            "text/plain",
            "text/html",
        ]
        assert text_of(parsed, "plain") == rendered.text
        assert text_of(parsed, "html") == rendered.html

        assert invitation.get_content_type() == "text/calendar"
        assert invitation.get_param("method") == "REQUEST"
        assert invitation.get_filename() == "panel.ics"
        assert invitation.get_content_disposition() == "attachment"
        (stored,) = attachments_from_json(row(runtime, message_id).attachments)
        assert invitation.get_payload(decode=True) == stored.content

        calendar = icalendar.Calendar.from_ical(invitation.get_payload(decode=True))
        assert str(calendar["METHOD"]) == "REQUEST"
        (event,) = calendar.walk("VEVENT")
        assert str(event["UID"]) == meeting.uid
        assert event.decoded("SEQUENCE") == meeting.sequence
        starts = event.decoded("DTSTART")
        assert str(starts.tzinfo) == "Europe/London"
        assert starts == meeting.starts_at
        assert event.decoded("DTEND") == meeting.starts_at + timedelta(minutes=meeting.minutes)
        assert str(event["LOCATION"]) == meeting.location
        assert str(event["ORGANIZER"]) == f"mailto:{runtime.notifier.sender}"
        wall_clock.append((starts.hour, starts.minute))
    assert wall_clock == [(10, 0), (14, 30)]


# 2. The fault matrix.


def test_a_refused_connection_fails_the_message_stops_the_pass_and_a_later_pass_sends_it(
    runtime: Runtime, mail_server: MailServer
) -> None:
    first, second = queue(runtime, assigned(1), assigned(2))
    port = free_port()

    report = send_due(runtime, port)

    assert report.stopped_because is not None
    assert f"cannot connect to the SMTP server 127.0.0.1:{port}" in report.stopped_because
    assert "ConnectionRefused" in report.stopped_because
    assert (report.sent, report.failed, report.dead) == ([], [first], [])
    failed = row(runtime, first)
    # Nothing could be sent at all: the attempt is not counted, so no outage kills mail.
    assert (failed.status, failed.attempts) == (Status.FAILED, 0)
    assert failed.last_error == report.stopped_because
    assert failed.next_attempt_at == T0 + FIRST_DELAY
    assert failed.outcome_unknown is False
    # The pass stopped before the second message: it was never attempted.
    waiting = row(runtime, second)
    assert (waiting.status, waiting.attempts, waiting.last_error) == (Status.QUEUED, 0, None)

    # The server is up: the untried message goes at once, the failed one waits for its backoff.
    assert send_due(runtime, mail_server.port).sent == [second]
    with clock.frozen_at(failed.next_attempt_at):
        report = send_due(runtime, mail_server.port)
    assert report == PassReport(sent=[first])
    sent = row(runtime, first)
    assert (sent.status, sent.attempts, sent.sent_at) == (Status.SENT, 1, failed.next_attempt_at)
    assert [item.rcpt_tos for item in mail_server.received] == [[LEAD_ADDRESS]] * 2


@pytest.mark.parametrize(
    "reply",
    ["421 4.3.2 Service shutting down", "553 5.7.1 Sender address rejected"],
    ids=["421-at-MAIL", "553-at-MAIL"],
)
def test_a_refused_sender_stops_the_pass_and_kills_nothing(
    runtime: Runtime, mail_server: MailServer, reply: str
) -> None:
    first, second = queue(runtime, assigned(1), assigned(2))
    mail_server.fail_next(("MAIL", reply))

    report = send_due(runtime, mail_server.port)

    # The sender is the settings' doing: every message would be refused the same way.
    assert report.stopped_because is not None
    assert report.stopped_because.startswith(f"the SMTP server refused the sender: {reply}")
    assert "CHANNELFLOW_MAIL_FROM" in report.stopped_because
    assert (report.sent, report.failed, report.dead) == ([], [first], [])
    failed = row(runtime, first)
    assert (failed.status, failed.attempts) == (Status.FAILED, 0)
    waiting = row(runtime, second)
    assert (waiting.status, waiting.attempts) == (Status.QUEUED, 0)


@pytest.mark.parametrize(
    ("fault", "step"),
    [
        (TRY_LATER, "the recipient"),
        (("DATA", "451 4.3.0 Queue full, try again later"), "the message"),
    ],
    ids=["451-at-RCPT", "451-at-DATA"],
)
def test_a_transient_refusal_backs_off_and_the_next_due_attempt_sends(
    runtime: Runtime, mail_server: MailServer, fault: tuple[str, str], step: str
) -> None:
    first, second = queue(runtime, assigned(1), assigned(2))
    mail_server.fail_next(fault)

    report = send_due(runtime, mail_server.port)

    # One refused message does not hold up the next one.
    assert report == PassReport(sent=[second], failed=[first])
    failed = row(runtime, first)
    assert (failed.status, failed.attempts) == (Status.FAILED, 1)
    assert failed.next_attempt_at == T0 + FIRST_DELAY
    assert failed.next_attempt_at > T0
    assert failed.last_error == f"the SMTP server refused {step}: {fault[1]}"
    assert failed.outcome_unknown is False

    with clock.frozen_at(failed.next_attempt_at - timedelta(seconds=1)):
        assert send_due(runtime, mail_server.port) == PassReport()
    with clock.frozen_at(failed.next_attempt_at):
        assert send_due(runtime, mail_server.port) == PassReport(sent=[first])
    sent = row(runtime, first)
    assert (sent.status, sent.attempts) == (Status.SENT, 2)
    assert sent.sent_at == failed.next_attempt_at
    assert len(mail_server.received) == 2


def test_retrying_a_backed_off_message_makes_it_due_now(
    runtime: Runtime, mail_server: MailServer
) -> None:
    (message_id,) = queue(runtime, assigned(1))
    mail_server.fail_next(TRY_LATER)
    assert send_due(runtime, mail_server.port).failed == [message_id]
    assert send_due(runtime, mail_server.port) == PassReport()

    retried = outbox.retry(runtime.engine, message_id, now=clock.now())

    assert (retried.status, retried.attempts, retried.next_attempt_at) == (Status.FAILED, 1, T0)
    assert send_due(runtime, mail_server.port) == PassReport(sent=[message_id])
    assert (row(runtime, message_id).status, row(runtime, message_id).attempts) == ("sent", 2)


@pytest.mark.parametrize(
    ("fault", "step"),
    [
        (("RCPT", "550 5.1.1 <lee@example.org>: Recipient address rejected"), "the recipient"),
        (
            ("DATA", "550 5.7.1 Message from channelflow@council.example.gov.uk refused as spam"),
            "the message",
        ),
    ],
    ids=["550-at-RCPT", "550-at-DATA"],
)
def test_a_permanent_refusal_is_dead_at_once_and_its_error_names_no_address(
    runtime: Runtime, mail_server: MailServer, fault: tuple[str, str], step: str
) -> None:
    first, second = queue(runtime, assigned(1), assigned(2))
    mail_server.fail_next(fault)

    report = send_due(runtime, mail_server.port)

    assert report == PassReport(sent=[second], dead=[first])
    dead = row(runtime, first)
    assert (dead.status, dead.attempts) == (Status.DEAD, 1)
    assert dead.last_error is not None
    assert dead.last_error.startswith(f"the SMTP server refused {step}: 550 5.")
    assert "<address>" in dead.last_error
    assert "@" not in dead.last_error
    assert "refused as spam" in dead.last_error or "Recipient address rejected" in dead.last_error
    # Never attempted again, however long we wait.
    with clock.frozen_at(T0 + timedelta(days=3)):
        assert send_due(runtime, mail_server.port) == PassReport()
    assert row(runtime, first).attempts == 1
    assert [item.parsed()["Message-ID"] for item in mail_server.received] == [
        message_id_for(assigned(2).key, SENDER)
    ]


def test_a_connection_dropped_after_data_is_an_unknown_outcome_resent_with_the_same_message_id(
    runtime: Runtime, mail_server: MailServer
) -> None:
    notice = assigned(1)
    (message_id,) = queue(runtime, notice)
    mail_server.fail_next(("DROP_AFTER_DATA", None))

    report = send_due(runtime, mail_server.port)

    assert report == PassReport(failed=[message_id])
    failed = row(runtime, message_id)
    assert (failed.status, failed.attempts, failed.outcome_unknown) == (Status.FAILED, 1, True)
    assert failed.last_error is not None
    assert "lost after the message was sent" in failed.last_error
    assert failed.next_attempt_at == T0 + FIRST_DELAY

    with clock.frozen_at(failed.next_attempt_at):
        assert send_due(runtime, mail_server.port) == PassReport(sent=[message_id])
    sent = row(runtime, message_id)
    assert (sent.status, sent.attempts) == (Status.SENT, 2)
    first, second = mail_server.received
    assert first.parsed()["Message-ID"] == message_id_for(notice.key, SENDER)
    assert second.parsed()["Message-ID"] == first.parsed()["Message-ID"]
    assert second.parsed()["Date"] == first.parsed()["Date"]
    assert text_of(second.parsed(), "plain") == text_of(first.parsed(), "plain")
    # Every byte comes from the outbox row and the key, boundaries included.
    assert second.content == first.content


def test_a_message_with_an_invitation_has_only_crlf_lines_that_fit_smtp() -> None:
    # RFC 5321 4.5.3.1.6: at most 998 octets before CRLF; a bare LF is not a line ending.
    notice = Notice("panel_agenda:panel-2026-11-26:user:4", "mel@example.org", PANEL_SAMPLE)
    queued = Notifier(sender=SENDER).message(notice, now=T0)
    email = an_email(
        idempotency_key=notice.key,
        kind=queued.kind,
        recipient=queued.recipient,
        subject=queued.subject,
        text=queued.text,
        html=queued.html,
        attachments=queued.attachments,
    )

    content = email.as_bytes()

    lines = content.split(b"\r\n")
    assert [line for line in lines if b"\n" in line or b"\r" in line] == []
    assert max(len(line) for line in lines) <= 998


def test_three_transient_refusals_with_max_attempts_3_make_the_message_dead(
    runtime: Runtime, mail_server: MailServer
) -> None:
    (message_id,) = queue(runtime, assigned(1))
    mail_server.fail_next(TRY_LATER, TRY_LATER, TRY_LATER)
    policy = RetryPolicy(max_attempts=3)

    due = T0
    for attempt in (1, 2):
        with clock.frozen_at(due):
            assert send_due(runtime, mail_server.port, retry=policy).failed == [message_id]
        failed = row(runtime, message_id)
        assert (failed.status, failed.attempts) == (Status.FAILED, attempt)
        # Backoff doubles: about 1 minute, then about 2.
        assert failed.next_attempt_at == due + policy.delay(attempt, random.Random(0))
        due = failed.next_attempt_at
    with clock.frozen_at(due):
        assert send_due(runtime, mail_server.port, retry=policy).dead == [message_id]

    dead = row(runtime, message_id)
    assert (dead.status, dead.attempts) == (Status.DEAD, 3)
    assert dead.last_error == (
        "the SMTP server refused the recipient: 451 4.3.0 Try again later "
        "(gave up after 3 attempts)"
    )
    with clock.frozen_at(due + timedelta(days=1)):
        assert send_due(runtime, mail_server.port, retry=policy) == PassReport()
    assert mail_server.received == []


# Transport logic that needs no database.


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (
            {"tls": TLSMode.STARTTLS},
            "does not support STARTTLS or login; check CHANNELFLOW_SMTP_TLS",
        ),
        (
            {"tls": TLSMode.NONE, "user": "mailer", "password": "secret"},
            "does not support STARTTLS or login",
        ),
        ({"tls": TLSMode.SSL}, "cannot connect to the SMTP server"),
    ],
    ids=["starttls-not-offered", "login-not-offered", "ssl-to-a-plain-server"],
)
def test_a_server_that_cannot_do_what_the_settings_ask_makes_the_transport_unavailable(
    mail_server: MailServer,
    connections: list[smtplib.SMTP],
    options: dict[str, Any],
    problem: str,
) -> None:
    transport = SmtpTransport(SmtpSettings("127.0.0.1", mail_server.port, timeout=5, **options))
    try:
        with pytest.raises(TransportUnavailable, match=problem) as raised:
            transport.send(an_email(), outcome_unknown=False)
    finally:
        transport.close()
    assert f"127.0.0.1:{mail_server.port}" in raised.value.message
    assert mail_server.received == []


@pytest.mark.parametrize(
    "options",
    [{"tls": TLSMode.STARTTLS}, {"tls": TLSMode.NONE, "user": "mailer", "password": "secret"}],
    ids=["starttls-not-offered", "login-not-offered"],
)
def test_a_connection_given_up_while_setting_up_is_closed(
    mail_server: MailServer, connections: list[smtplib.SMTP], options: dict[str, Any]
) -> None:
    transport = SmtpTransport(SmtpSettings("127.0.0.1", mail_server.port, timeout=5, **options))

    with pytest.raises(TransportUnavailable):
        transport.send(an_email(), outcome_unknown=False)

    assert len(connections) == 1
    assert connections[0].sock is None, "the socket was left open"


def test_the_transport_keeps_one_connection_for_several_sends_and_resets_after_a_refusal(
    mail_server: MailServer,
) -> None:
    transport = SmtpTransport(SmtpSettings("127.0.0.1", mail_server.port, TLSMode.NONE, timeout=5))
    mail_server.fail_next(TRY_LATER)
    try:
        with pytest.raises(TransientDeliveryFailure, match=r"451 4\.3\.0"):
            transport.send(an_email(id=1), outcome_unknown=False)
        transport.send(an_email(id=2, idempotency_key="test_message:2"), outcome_unknown=False)
        transport.send(an_email(id=3, idempotency_key="test_message:3"), outcome_unknown=False)
    finally:
        transport.close()
    assert mail_server.handler.connections == 1
    assert [item.parsed()["Message-ID"] for item in mail_server.received] == [
        message_id_for("test_message:2", SENDER),
        message_id_for("test_message:3", SENDER),
    ]


# 3. Idempotency.


def test_the_same_idempotency_key_queued_in_two_transactions_makes_one_row(
    runtime: Runtime,
) -> None:
    notice = assigned(1)
    with write_connection(runtime.engine) as connection:
        assert runtime.notifier.queue(connection, [notice], now=clock.now()) == 1
    later = T0 + timedelta(hours=1)
    with write_connection(runtime.engine) as connection:
        assert runtime.notifier.queue(connection, [notice], now=later) == 0

    (message,) = outbox.list_messages(runtime.engine)
    assert (message.idempotency_key, message.created_at) == (notice.key, T0)


def test_the_same_idempotency_key_twice_in_one_transaction_makes_one_row(
    runtime: Runtime,
) -> None:
    notice = assigned(1)
    with write_connection(runtime.engine) as connection:
        assert runtime.notifier.queue(connection, [notice, notice], now=clock.now()) == 1
        assert runtime.notifier.queue(connection, [notice], now=clock.now()) == 0

    assert [m.idempotency_key for m in outbox.list_messages(runtime.engine)] == [notice.key]


def test_a_message_queued_in_a_transaction_that_rolls_back_is_never_sent(
    runtime: Runtime, mail_server: MailServer
) -> None:
    def change_that_fails() -> None:
        with write_connection(runtime.engine) as connection:
            runtime.notifier.queue(connection, [assigned(1)], now=clock.now())
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        change_that_fails()

    assert outbox.list_messages(runtime.engine) == []
    assert send_due(runtime, mail_server.port) == PassReport()
    assert mail_server.received == []


def test_a_dispatch_pass_run_twice_sends_each_message_once(
    runtime: Runtime, mail_server: MailServer
) -> None:
    notices = [assigned(n) for n in (1, 2, 3)]
    ids = queue(runtime, *notices)

    assert send_due(runtime, mail_server.port) == PassReport(sent=ids)
    assert send_due(runtime, mail_server.port) == PassReport()
    with clock.frozen_at(T0 + timedelta(days=1)):
        assert send_due(runtime, mail_server.port) == PassReport()

    assert [item.parsed()["Message-ID"] for item in mail_server.received] == [
        message_id_for(notice.key, SENDER) for notice in notices
    ]
    assert all(row(runtime, message_id).attempts == 1 for message_id in ids)


def test_two_dispatchers_at_once_send_each_message_once(
    runtime: Runtime, mail_server: MailServer
) -> None:
    notices = [assigned(n) for n in range(1, 13)]
    ids = queue(runtime, *notices)
    reports: list[PassReport] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            reports.append(send_due(runtime, mail_server.port, batch=3))
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(message_id for report in reports for message_id in report.sent) == ids
    assert sorted(item.parsed()["Message-ID"] for item in mail_server.received) == sorted(
        message_id_for(notice.key, SENDER) for notice in notices
    )
    assert {row(runtime, message_id).attempts for message_id in ids} == {1}


# 4. The CLI.


def test_mail_test_delivers_one_message_through_smtp(
    cli: Cli, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_smtp(monkeypatch, mail_server.port)

    outcome = cli("mail", "test", "someone@example.org")

    assert outcome.code == 0, outcome.err
    assert one_line(outcome.out).startswith("delivered through smtp (outbox ")
    (received,) = mail_server.received
    assert received.rcpt_tos == ["someone@example.org"]
    parsed = received.parsed()
    assert parsed["From"] == SENDER
    assert parsed["To"] == "someone@example.org"
    assert parsed["Message-ID"].endswith("@council.example.gov.uk>")
    (listed,) = cli("outbox", "list", "--json").json()
    assert (listed["kind"], listed["status"], listed["attempts"]) == ("test_message", "sent", 1)
    assert listed["provider_id"] == "250 2.0.0 OK: queued"
    assert parsed["Message-ID"] == message_id_for(listed["idempotency_key"], SENDER)


def test_mail_test_refused_by_the_server_exits_7_and_is_never_sent_later(
    cli: Cli, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_smtp(monkeypatch, mail_server.port)
    mail_server.fail_next(("RCPT", "550 5.1.1 <someone@example.org>: Recipient address rejected"))

    outcome = cli("mail", "test", "someone@example.org")

    assert outcome.code == 7
    assert outcome.out == ""
    error = one_line(outcome.err)
    assert error.startswith("channelflow: error: the test message (outbox ")
    assert "the SMTP server refused the recipient: 550 5.1.1" in error
    assert "someone@example.org" not in error
    (listed,) = cli("outbox", "list", "--json").json()
    assert (listed["status"], listed["attempts"]) == ("dead", 1)

    with clock.frozen_at(T0 + timedelta(days=1)):
        later = cli("outbox", "send")
    assert (later.code, later.out.strip()) == (0, NOTHING_SENT)
    assert mail_server.received == []


def test_mail_test_with_nothing_listening_exits_7_and_gives_the_message_up(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    use_smtp(monkeypatch, port)

    outcome = cli("mail", "test", "someone@example.org")

    assert outcome.code == 7
    error = one_line(outcome.err)
    assert error.startswith("channelflow: error: the test message (outbox ")
    assert f"cannot connect to the SMTP server 127.0.0.1:{port}" in error
    (listed,) = cli("outbox", "list", "--json").json()
    assert (listed["kind"], listed["status"], listed["attempts"]) == ("test_message", "dead", 0)


def test_mail_test_behind_older_queued_mail_with_nothing_listening_says_why(
    runtime: Runtime, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (older,) = queue(runtime, assigned(1))
    port = free_port()
    use_smtp(monkeypatch, port)

    outcome = cli("mail", "test", "someone@example.org")

    assert outcome.code == 7
    error = one_line(outcome.err)
    assert "None" not in error
    assert f"cannot connect to the SMTP server 127.0.0.1:{port}" in error
    statuses = {m["kind"]: m["status"] for m in cli("outbox", "list", "--json").json()}
    assert statuses == {"case_assigned": "failed", "test_message": "dead"}
    assert row(runtime, older).attempts == 0


def test_outbox_list_json_has_the_documented_fields_and_filters_by_status(
    runtime: Runtime, cli: Cli, mail_server: MailServer
) -> None:
    first, second = queue(runtime, assigned(1), assigned(2))
    mail_server.fail_next(TRY_LATER)
    send_due(runtime, mail_server.port)

    listed = cli("outbox", "list", "--json")

    assert listed.code == 0
    summary = [
        (m["id"], m["kind"], m["status"], m["recipient"], m["attempts"]) for m in listed.json()
    ]
    assert summary == [
        (first, "case_assigned", "failed", LEAD_ADDRESS, 1),
        (second, "case_assigned", "sent", LEAD_ADDRESS, 1),
    ]
    failed, sent = listed.json()
    assert failed["next_attempt_at"] == (T0 + FIRST_DELAY).isoformat()
    assert (
        failed["last_error"] == "the SMTP server refused the recipient: 451 4.3.0 Try again later"
    )
    assert failed["sent_at"] is None
    assert sent["next_attempt_at"] is None
    assert sent["sent_at"] == T0.isoformat()

    def ids_with(status: str) -> list[int]:
        outcome = cli("outbox", "list", "--status", status, "--json")
        assert outcome.code == 0
        return [m["id"] for m in outcome.json()]

    assert ids_with("sent") == [second]
    assert ids_with("failed") == [first]
    assert ids_with("dead") == []
    table = cli("outbox", "list")
    assert table.code == 0
    assert "Outbox" in table.out


def test_outbox_retry_makes_a_failed_message_due_now_and_outbox_send_sends_it(
    runtime: Runtime, cli: Cli, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (message_id,) = queue(runtime, assigned(1))
    mail_server.fail_next(TRY_LATER)
    send_due(runtime, mail_server.port)
    assert row(runtime, message_id).next_attempt_at > T0

    retried = cli("outbox", "retry", str(message_id))

    assert retried.code == 0, retried.err
    assert f"outbox message {message_id} is due now" in retried.out
    due = row(runtime, message_id)
    assert (due.status, due.attempts, due.next_attempt_at) == (Status.FAILED, 1, T0)
    use_smtp(monkeypatch, mail_server.port)
    sent = cli("outbox", "send")
    assert (sent.code, sent.out.strip()) == (0, "sent 1, failed 0 (to retry), dead 0")
    assert (row(runtime, message_id).status, row(runtime, message_id).attempts) == ("sent", 2)
    assert len(mail_server.received) == 1


def test_outbox_retry_of_a_sent_message_is_refused(
    runtime: Runtime, cli: Cli, mail_server: MailServer
) -> None:
    (message_id,) = queue(runtime, assigned(1))
    assert send_due(runtime, mail_server.port).sent == [message_id]

    refused = cli("outbox", "retry", str(message_id))

    assert refused.code == 4
    assert one_line(refused.err) == (
        f"channelflow: error: outbox message {message_id} was already sent."
    )
    assert send_due(runtime, mail_server.port) == PassReport()
    assert len(mail_server.received) == 1


def test_outbox_retry_of_an_unknown_id_is_not_found(cli: Cli) -> None:
    unknown = cli("outbox", "retry", "999999")

    assert unknown.code == 3
    assert one_line(unknown.err) == "channelflow: error: no outbox message has id 999999."


def test_outbox_retry_gives_a_dead_message_one_more_attempt(
    runtime: Runtime, cli: Cli, mail_server: MailServer
) -> None:
    (message_id,) = queue(runtime, assigned(1))
    mail_server.fail_next(("RCPT", "550 5.1.1 Recipient address rejected"))
    assert send_due(runtime, mail_server.port).dead == [message_id]

    assert cli("outbox", "retry", str(message_id)).code == 0

    assert send_due(runtime, mail_server.port) == PassReport(sent=[message_id])
    assert (row(runtime, message_id).status, row(runtime, message_id).attempts) == ("sent", 2)


def test_outbox_send_with_the_server_down_exits_7_and_leaves_mail_queued(
    runtime: Runtime, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = queue(runtime, assigned(1), assigned(2))
    port = free_port()
    use_smtp(monkeypatch, port)

    outcome = cli("outbox", "send")

    assert outcome.code == 7
    assert outcome.out == ""
    error = one_line(outcome.err)
    assert error.startswith(
        f"channelflow: error: cannot connect to the SMTP server 127.0.0.1:{port}"
    )
    assert error.endswith("unsent email stays queued and is retried later.")
    assert (row(runtime, first).status, row(runtime, first).attempts) == ("failed", 0)
    assert (row(runtime, second).status, row(runtime, second).attempts) == ("queued", 0)


SMTP_BASE = {"CHANNELFLOW_MAIL_TRANSPORT": "smtp", "CHANNELFLOW_SMTP_HOST": "127.0.0.1"}


@pytest.mark.parametrize(
    ("environment", "sentence"),
    [
        (
            {"CHANNELFLOW_MAIL_TRANSPORT": "pigeon"},
            "CHANNELFLOW_MAIL_TRANSPORT must be one of file, smtp, notify",
        ),
        ({"CHANNELFLOW_MAIL_TRANSPORT": "smtp"}, "the smtp transport needs CHANNELFLOW_SMTP_HOST"),
        (
            {**SMTP_BASE, "CHANNELFLOW_SMTP_TLS": "maybe"},
            "CHANNELFLOW_SMTP_TLS must be one of none, starttls or ssl",
        ),
        (
            {**SMTP_BASE, "CHANNELFLOW_SMTP_PORT": "abc"},
            "CHANNELFLOW_SMTP_PORT must be a port number",
        ),
        (
            {**SMTP_BASE, "CHANNELFLOW_SMTP_PORT": "70000"},
            "CHANNELFLOW_SMTP_PORT must be a port number",
        ),
        (
            {**SMTP_BASE, "CHANNELFLOW_SMTP_TIMEOUT": "0"},
            "CHANNELFLOW_SMTP_TIMEOUT must be more than 0 and at most 600",
        ),
        (
            {**SMTP_BASE, "CHANNELFLOW_SMTP_USER": "mailer"},
            "CHANNELFLOW_SMTP_USER is set but CHANNELFLOW_SMTP_PASSWORD is not",
        ),
    ],
    ids=["pigeon", "no-host", "tls-maybe", "port-abc", "port-70000", "timeout-0", "no-password"],
)
def test_bad_mail_settings_exit_2_with_one_clear_sentence_and_queue_nothing(
    runtime: Runtime,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    sentence: str,
) -> None:
    queue(runtime, assigned(1))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    outcomes: list[Outcome] = [
        cli("mail", "test", "someone@example.org"),
        cli("outbox", "send"),
    ]

    for outcome in outcomes:
        assert outcome.code == 2
        assert outcome.out == ""
        assert outcome.err == f"channelflow: error: {sentence}.\n"
    (untouched,) = outbox.list_messages(runtime.engine)
    assert (untouched.kind, untouched.status, untouched.attempts) == ("case_assigned", "queued", 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHANNELFLOW_SMTP_PORT", "inf"),
        ("CHANNELFLOW_SMTP_PORT", "nan"),
        ("CHANNELFLOW_SMTP_TIMEOUT", "inf"),
        ("CHANNELFLOW_SMTP_TIMEOUT", "nan"),
    ],
)
def test_a_smtp_number_that_is_not_finite_is_a_configuration_error(name: str, value: str) -> None:
    environment = {**SMTP_BASE, name: value}

    with pytest.raises(MailConfigurationError, match=name):
        MailSettings.from_environment(environment)


def test_a_bad_sender_address_does_not_block_commands_that_send_no_mail(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # settings.MailSettings: mail settings are "checked only when mail is used, so a mail
    # typo never blocks other commands".
    monkeypatch.setenv("CHANNELFLOW_MAIL_FROM", "not an address")

    outcome = cli("referral", "list", "--by", "cora", "--json")

    assert outcome.code == 0, outcome.err
    assert outcome.json() == []


# 5. A referral change that notifies, through the CLI.

ACCEPT = ("accept", "--set", "consent=given", "--set", "lead=lee", "--by", "chris")


def test_accepting_through_the_cli_emails_the_lead_at_once(
    runtime: Runtime, cli: Cli, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = referral_in(runtime.workflow, "panel_review")
    use_smtp(monkeypatch, mail_server.port)

    outcome = cli("referral", "fire", reference, *ACCEPT)

    assert outcome.code == 0, outcome.err
    assert outcome.out.startswith(f"{reference}: accept (panel_review -> accepted), version 4")
    assert one_line(outcome.err) == "  email: sent 1, failed 0 (to retry), dead 0"
    (message,) = outbox.list_messages(runtime.engine)
    assert (message.status, message.attempts, message.kind) == ("sent", 1, "case_assigned")
    assert message.idempotency_key.startswith(f"case_assigned:{reference}:v4:user:")
    (received,) = mail_server.received
    assert received.rcpt_tos == [LEAD_ADDRESS]
    parsed = received.parsed()
    assert parsed["To"] == LEAD_ADDRESS
    assert parsed["From"] == SENDER
    assert reference in parsed["Subject"]
    assert parsed["Message-ID"] == message_id_for(message.idempotency_key, SENDER)
    assert parsedate_to_datetime(parsed["Date"]) == T0


def test_accepting_with_the_smtp_server_down_succeeds_and_a_later_send_delivers(
    runtime: Runtime, cli: Cli, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = referral_in(runtime.workflow, "panel_review")
    port = free_port()
    use_smtp(monkeypatch, port)

    outcome = cli("referral", "fire", reference, *ACCEPT, "--json")

    assert outcome.code == 0, outcome.err
    fired = outcome.json()
    assert (fired["to"], fired["version"], fired["emails_queued"]) == ("accepted", 4, 1)
    warning = one_line(outcome.err)
    assert warning.startswith("channelflow: warning: email queued but not sent yet (")
    assert f"cannot connect to the SMTP server 127.0.0.1:{port}" in warning
    assert warning.endswith("`channelflow outbox send` retries it")
    shown = cli("referral", "show", reference, "--by", "cora", "--json")
    assert (shown.json()["state"], shown.json()["lead"]) == ("accepted", "lee")
    (waiting,) = outbox.list_messages(runtime.engine)
    assert (waiting.status, waiting.attempts, waiting.recipient) == ("failed", 0, LEAD_ADDRESS)
    assert mail_server.received == []

    use_smtp(monkeypatch, mail_server.port)
    clock.set_now(waiting.next_attempt_at)
    later = cli("outbox", "send")

    assert (later.code, later.out.strip()) == (0, "sent 1, failed 0 (to retry), dead 0")
    (received,) = mail_server.received
    assert received.rcpt_tos == [LEAD_ADDRESS]
    assert reference in received.parsed()["Subject"]
    assert waiting.id is not None
    assert (row(runtime, waiting.id).status, row(runtime, waiting.id).attempts) == ("sent", 1)


def test_a_mail_settings_typo_never_blocks_a_change_that_notifies(
    runtime: Runtime, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = referral_in(runtime.workflow, "panel_review")
    monkeypatch.setenv("CHANNELFLOW_MAIL_TRANSPORT", "pigeon")

    outcome = cli("referral", "fire", reference, *ACCEPT)

    assert outcome.code == 0, outcome.err
    warning = one_line(outcome.err)
    assert warning.startswith("channelflow: warning: email queued but not sent yet (")
    assert "CHANNELFLOW_MAIL_TRANSPORT must be one of" in warning
    (waiting,) = outbox.list_messages(runtime.engine)
    assert (waiting.status, waiting.attempts, waiting.recipient) == ("queued", 0, LEAD_ADDRESS)
