"""Regression tests for the edges of sending mail that the last round of review fixed.

Each test pins one behaviour: unexpected transport errors, a crashed send's unknown outcome,
lease length, uncounted outages, address and settings checks at the CLI, committed changes
that survive mail failing, template errors, long subjects, invitations' attendees and a 421
at MAIL. The clock is pinned, so backoff times are the same on every run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import icalendar
import pytest
from sqlalchemy import create_engine

from channelflow import clock
from channelflow.cli import run
from channelflow.notifications import outbox
from channelflow.notifications.dispatcher import Dispatcher, PassReport, RetryPolicy
from channelflow.notifications.kinds import Kind, sample
from channelflow.notifications.message import Email
from channelflow.notifications.notifier import Notice, Notifier
from channelflow.notifications.outbox import Status
from channelflow.notifications.transports.base import Transport
from channelflow.notifications.transports.file import FileTransport
from channelflow.notifications.transports.smtp import SmtpSettings, SmtpTransport, TLSMode
from channelflow.runtime import Runtime
from channelflow.store.db import autocommit_connection
from tests.cli_helpers import Cli
from tests.factories import NOW, referral_in
from tests.mailserver import MailServer, free_port
from tests.outbox_factories import LEAD_ADDRESS, SENDER, assigned, queue, row

T0 = NOW + timedelta(hours=1)
LEASE = timedelta(minutes=10)
ACCEPT = ("accept", "--set", "consent=given", "--set", "lead=lee", "--by", "chris")
NOTIFY_KEY = (
    "channelflow_test-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0"
)


@pytest.fixture(autouse=True)
def _pinned_clock() -> Iterator[None]:
    clock.set_now(T0)
    yield
    clock.set_now(None)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], runtime: Runtime) -> Cli:
    return Cli(capsys, runtime.settings.database_url, runtime.settings.key_file)


class Failing(Transport):
    """Sends every message except those whose id is in ``failing``: those raise RuntimeError."""

    name = "failing"

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.delivered: list[int] = []

    def send(
        self,
        email: Email,
        *,
        outcome_unknown: bool,
        while_waiting: Callable[[], None] = lambda: None,
    ) -> str:
        while_waiting()
        if email.id in self.failing:
            raise RuntimeError("secret detail from deep inside a library")
        self.delivered.append(email.id)
        return f"ok-{email.id}"


def smtp_dispatcher(runtime: Runtime, port: int) -> Dispatcher:
    return Dispatcher(
        engine=runtime.engine,
        transport=SmtpTransport(SmtpSettings("127.0.0.1", port, TLSMode.NONE, timeout=5)),
        sender=SENDER,
        rng=random.Random(0),
    )


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


def parsed(content: bytes) -> EmailMessage:
    message = message_from_bytes(content, policy=default)
    assert isinstance(message, EmailMessage)
    return message


# 1. An unexpected exception from a transport.


def test_an_unexpected_transport_exception_is_a_counted_failure_and_then_dead(
    runtime: Runtime,
) -> None:
    first, second, third = queue(runtime, assigned(1), assigned(2), assigned(3))
    transport = Failing({first})
    policy = RetryPolicy(max_attempts=2)

    def dispatch() -> PassReport:
        return Dispatcher(
            engine=runtime.engine,
            transport=transport,
            sender=SENDER,
            retry=policy,
            rng=random.Random(0),
        ).run_once()

    report = dispatch()

    # Not left "sending", and the rest of the batch still went.
    assert report == PassReport(sent=[second, third], failed=[first])
    assert transport.delivered == [second, third]
    failed = row(runtime, first)
    assert (failed.status, failed.attempts) == (Status.FAILED, 1)
    assert failed.last_error == "unexpected RuntimeError"
    assert failed.claim_token is None
    assert failed.next_attempt_at is not None
    assert failed.next_attempt_at > T0
    for other in (second, third):
        assert (row(runtime, other).status, row(runtime, other).attempts) == (Status.SENT, 1)

    with clock.frozen_at(failed.next_attempt_at):
        again = dispatch()

    assert again == PassReport(dead=[first])
    dead = row(runtime, first)
    assert (dead.status, dead.attempts, dead.next_attempt_at) == (Status.DEAD, 2, None)
    assert dead.last_error is not None
    assert dead.last_error.startswith("unexpected RuntimeError")
    assert "secret detail" not in dead.last_error
    with clock.frozen_at(T0 + timedelta(days=1)):
        assert dispatch() == PassReport()


# 2. Retrying a message whose dispatcher died mid-send.


def test_retrying_a_message_left_sending_keeps_its_outcome_unknown(runtime: Runtime) -> None:
    (message_id,) = queue(runtime, assigned(1))
    with autocommit_connection(runtime.engine) as connection:
        (claimed,) = outbox.claim(connection, now=T0, lease=LEASE, limit=10, sender=SENDER)
    assert (claimed.email.id, claimed.outcome_unknown) == (message_id, False)
    # ... and the dispatcher dies here, the message still "sending".
    assert row(runtime, message_id).status == Status.SENDING

    with clock.frozen_at(T0 + LEASE + timedelta(seconds=1)):
        retried = outbox.retry(runtime.engine, message_id, now=clock.now())
        assert retried.outcome_unknown is True
        assert retried.status != Status.SENDING
        assert retried.claim_token is None
        with autocommit_connection(runtime.engine) as connection:
            (again,) = outbox.claim(
                connection, now=clock.now(), lease=LEASE, limit=10, sender=SENDER
            )

    assert again.email.id == message_id
    assert again.outcome_unknown is True
    assert again.attempts == 2


# 3. The lease outlasts the longest send.


@pytest.mark.parametrize(
    "transport",
    [
        SmtpTransport(SmtpSettings("mail.example.org", 587, TLSMode.STARTTLS, timeout=30)),
        FileTransport(directory=Path("unused-mail-folder")),
    ],
    ids=["smtp-timeout-30", "file"],
)
def test_the_dispatchers_lease_lasts_at_least_two_of_the_longest_sends(
    transport: Transport,
) -> None:
    if isinstance(transport, SmtpTransport):
        assert transport.longest_send == 25 * 30
    engine = create_engine("sqlite://")
    try:
        dispatcher = Dispatcher(engine=engine, transport=transport, sender=SENDER)
        assert dispatcher.lease >= timedelta(seconds=2 * transport.longest_send)
        # A claim that long leaves a whole send's time before the first message goes.
        assert dispatcher.lease - timedelta(seconds=transport.longest_send) > timedelta(0)
    finally:
        engine.dispose()


# 4. A transport-wide failure counts no attempt, however long it lasts.


def test_a_long_outage_counts_no_attempt_and_never_kills_the_message(
    runtime: Runtime, mail_server: MailServer
) -> None:
    (message_id,) = queue(runtime, assigned(1))
    refused = free_port()

    due = T0
    for _ in range(10):
        with clock.frozen_at(due):
            report = smtp_dispatcher(runtime, refused).run_once()
        assert report.stopped_because is not None
        assert "cannot connect to the SMTP server" in report.stopped_because
        assert (report.sent, report.failed, report.dead) == ([], [message_id], [])
        waiting = row(runtime, message_id)
        assert (waiting.status, waiting.attempts) == (Status.FAILED, 0)
        assert waiting.next_attempt_at is not None
        assert waiting.next_attempt_at > due
        due = waiting.next_attempt_at

    with clock.frozen_at(due):
        report = smtp_dispatcher(runtime, mail_server.port).run_once()

    assert report == PassReport(sent=[message_id])
    sent = row(runtime, message_id)
    assert (sent.status, sent.attempts) == (Status.SENT, 1)
    assert len(mail_server.received) == 1


# 5. Users' addresses follow the same rule as outgoing mail.


def test_adding_a_user_with_an_address_mail_cannot_use_exits_2(cli: Cli) -> None:
    before = cli("user", "list", "--json")
    assert before.code == 0

    outcome = cli(
        "user", "add", "lee2", "--role", "lead", "--email", "lee@council_x.example", "--by", "admin"
    )

    assert outcome.code == 2
    assert outcome.out == ""
    assert outcome.err.startswith("channelflow: error: ")
    assert "not a valid email address" in outcome.err
    after = cli("user", "list", "--json")
    assert after.json() == before.json()
    assert "lee2" not in {user["name"] for user in after.json()}


# 6. A committed change survives a host name that cannot even be encoded.


def test_a_change_stands_when_the_smtp_host_name_cannot_be_encoded(
    runtime: Runtime, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = referral_in(runtime.workflow, "panel_review")
    monkeypatch.setenv("CHANNELFLOW_MAIL_TRANSPORT", "smtp")
    monkeypatch.setenv("CHANNELFLOW_SMTP_HOST", "mail..example")

    outcome = cli("referral", "fire", reference, *ACCEPT)

    assert outcome.code == 0, outcome.err
    assert outcome.out.startswith(f"{reference}: accept (panel_review -> accepted)")
    assert outcome.err.startswith("channelflow: warning: email queued but not sent yet (")
    assert "mail..example" in outcome.err
    assert "`channelflow outbox send` retries it" in outcome.err
    shown = cli("referral", "show", reference, "--by", "cora", "--json")
    assert shown.code == 0
    assert (shown.json()["state"], shown.json()["lead"]) == ("accepted", "lee")
    (waiting,) = outbox.list_messages(runtime.engine)
    assert waiting.recipient == LEAD_ADDRESS
    assert waiting.status in (Status.QUEUED, Status.FAILED)
    assert waiting.attempts == 0
    assert waiting.next_attempt_at is not None
    assert waiting.sent_at is None


# 7. The demo loads whatever happens to its emails.


def test_the_demo_loads_with_smtp_but_no_host_and_its_emails_stay_queued(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHANNELFLOW_MAIL_TRANSPORT", "smtp")
    cli = Cli(capsys, f"sqlite:///{tmp_path / 'demo.db'}", tmp_path / "demo.key")

    outcome = cli("init", "--demo", "--referrals", "100")

    assert outcome.code == 0, outcome.err
    assert "channelflow: warning: the demo's emails are queued but not sent" in outcome.err
    assert "CHANNELFLOW_SMTP_HOST" in outcome.err
    listed = cli("outbox", "list", "--json")
    assert listed.code == 0
    messages = listed.json()
    assert messages, "the demo queued no email"
    assert {(m["status"], m["attempts"]) for m in messages} == {("queued", 0)}
    assert not (tmp_path / "mail").exists()


# 8. A template that fails in plain Python.


def test_a_template_dividing_by_zero_fails_check_in_one_sentence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "case_assigned.txt.j2").write_text("{{ 1/0 }}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHANNELFLOW_TEMPLATES_DIR", str(overrides))

    code = run(["templates", "check"])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "Traceback" not in captured.err
    assert captured.err.startswith("channelflow: error: template ")
    assert captured.err.endswith(".\n")
    assert captured.err.count("\n") == 1
    assert "case_assigned.txt.j2" in captured.err


# 9. Settings and arguments that are out of range exit 2.


@pytest.mark.parametrize(
    ("environment", "args", "named"),
    [
        (
            {
                "CHANNELFLOW_MAIL_TRANSPORT": "notify",
                "CHANNELFLOW_NOTIFY_API_KEY": NOTIFY_KEY,
                "CHANNELFLOW_NOTIFY_BASE_URL": "api.notifications.service.gov.uk",
            },
            ("mail", "test", "a@b.example"),
            "CHANNELFLOW_NOTIFY_BASE_URL",
        ),
        (
            {"CHANNELFLOW_SMTP_PORT": "25.7"},
            ("mail", "test", "a@b.example"),
            "CHANNELFLOW_SMTP_PORT",
        ),
        (
            {"CHANNELFLOW_SMTP_TIMEOUT": "1e300"},
            ("mail", "test", "a@b.example"),
            "CHANNELFLOW_SMTP_TIMEOUT",
        ),
        (
            {"CHANNELFLOW_SMTP_PASSWORD": "secret"},
            ("mail", "test", "a@b.example"),
            "CHANNELFLOW_SMTP_USER",
        ),
        ({}, ("outbox", "retry", "99999999999999999999"), "99999999999999999999"),
    ],
    ids=["notify-url-without-scheme", "port-25.7", "timeout-1e300", "password-no-user", "huge-id"],
)
def test_out_of_range_settings_and_ids_exit_2(
    runtime: Runtime,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    args: tuple[str, ...],
    named: str,
) -> None:
    if args[0] == "mail" and "CHANNELFLOW_MAIL_TRANSPORT" not in environment:
        monkeypatch.setenv("CHANNELFLOW_MAIL_TRANSPORT", "smtp")
        monkeypatch.setenv("CHANNELFLOW_SMTP_HOST", "127.0.0.1")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    outcome = cli(*args)

    assert outcome.code == 2
    assert outcome.out == ""
    assert named in outcome.err
    # Nothing was queued by a command that could not start.
    assert outbox.list_messages(runtime.engine) == []


# 10. A subject too long for one header line.


@pytest.mark.parametrize(
    "subject",
    [
        " ".join(f"word{n:03d}" for n in range(171))[:1200],
        "x" * 1200,
    ],
    ids=["words", "no-spaces"],
)
def test_a_1200_character_subject_is_folded_and_reads_back_the_same(subject: str) -> None:
    assert len(subject) == 1200
    assert subject.isascii()
    email = an_email(subject=subject)

    content = email.as_bytes()

    lines = content.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert [line for line in lines if b"\n" in line or b"\r" in line] == []
    assert parsed(content)["Subject"] == subject
    assert email.to_mime()["Subject"] == subject


# 11. An invitation names whom it invites.


def test_a_meeting_emails_invitation_names_the_recipient_as_attendee() -> None:
    recipient = "mel@example.org"
    notice = Notice("panel_agenda:panel-2026-11-26:user:4", recipient, sample(Kind.PANEL_AGENDA))
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

    message = parsed(email.as_bytes())

    (invitation,) = [part for part in message.iter_attachments()]
    assert invitation.get_content_type() == "text/calendar"
    data = invitation.get_payload(decode=True)
    assert isinstance(data, bytes)
    calendar = icalendar.Calendar.from_ical(data)
    (event,) = calendar.walk("VEVENT")
    attendee = event["ATTENDEE"]
    assert not isinstance(attendee, list), "one attendee, the recipient"
    assert str(attendee) == f"mailto:{recipient}"
    assert str(event["ORGANIZER"]) == f"mailto:{SENDER}"


# 12. A 421 at MAIL: the server is closing, not the message's fault.


def test_a_421_at_mail_stops_the_pass_counting_nothing_and_leaves_the_rest_queued(
    runtime: Runtime, mail_server: MailServer
) -> None:
    first, second, third = queue(runtime, assigned(1), assigned(2), assigned(3))
    mail_server.fail_next(("MAIL", "421 4.3.2 Service shutting down"))

    report = smtp_dispatcher(runtime, mail_server.port).run_once()

    assert report.stopped_because is not None
    assert "421 4.3.2" in report.stopped_because
    assert (report.sent, report.failed, report.dead) == ([], [first], [])
    failed = row(runtime, first)
    assert (failed.status, failed.attempts) == (Status.FAILED, 0)
    for other in (second, third):
        waiting = row(runtime, other)
        assert (waiting.status, waiting.attempts, waiting.last_error) == (Status.QUEUED, 0, None)
    assert mail_server.received == []
