"""Sending through GOV.UK Notify: a real Notify client against a local fake of Notify's API v2.

The fake (tests/fake_notify.py) checks what the real service checks (the JWT, the body, the
template's placeholders, the type of an uploaded file) and can fail as Notify does: 400, 403,
429 and 500 with Notify's error bodies, or accept a notification and never answer.
"""

from __future__ import annotations

import random
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channelflow import clock
from channelflow.exceptions import (
    DeliveryOutcomeUnknown,
    MailConfigurationError,
    PermanentDeliveryFailure,
    TransportUnavailable,
)
from channelflow.notifications import Dispatcher, Notice, PassReport, Status, outbox
from channelflow.notifications import kinds as kinds_module
from channelflow.notifications.kinds import Kind
from channelflow.notifications.message import Email, attachments_from_json
from channelflow.notifications.notifier import Notifier
from channelflow.notifications.transports.notify import NotifyTransport, reference_for
from channelflow.runtime import Runtime
from channelflow.store.db import write_connection
from tests.cli_helpers import Cli
from tests.fake_notify import FakeNotify, Recorded
from tests.outbox_factories import SENDER, row

DEFAULT_TEMPLATE = "f33517ff-2a88-4f6e-b855-c550268ce08a"
CASE_TEMPLATE = "0b7d6a1c-4f3e-4a55-9d0e-2c1f8e6b7a90"
UNKNOWN_TEMPLATE = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
MEETING_KINDS = (Kind.PANEL_AGENDA, Kind.AGENDA_ADDENDUM, Kind.BOARD_REMINDER)


@pytest.fixture
def notify() -> Iterator[FakeNotify]:
    with FakeNotify(templates=(DEFAULT_TEMPLATE, CASE_TEMPLATE)) as fake:
        yield fake


@pytest.fixture
def at_t0() -> None:
    """channelflow's clock stands at T0 (conftest releases it after the test)."""
    clock.set_now(T0)


def queue(runtime: Runtime, *items: tuple[Kind, str]) -> list[int]:
    """Queue one message per (kind, user name); returns the outbox ids in order."""
    notices = [
        Notice(
            key=f"{kind.value}:CF-2026-0012:v1:user:{name}:{index}",
            recipient=f"{name}@example.org",
            context=kinds_module.sample(kind),
        )
        for index, (kind, name) in enumerate(items)
    ]
    with write_connection(runtime.engine) as connection:
        assert runtime.notifier.queue(connection, notices, now=clock.now()) == len(notices)
    return [
        row.id
        for notice in notices
        for row in outbox.list_messages(runtime.engine, idempotency_key=notice.key)
        if row.id is not None
    ]


def transport(
    notify: FakeNotify,
    *,
    templates: dict[str, str] | None = None,
    api_key: str | None = None,
    timeout: float = 2.0,
) -> NotifyTransport:
    return NotifyTransport(
        api_key=notify.api_key if api_key is None else api_key,
        template_ids={"default": DEFAULT_TEMPLATE} if templates is None else templates,
        base_url=notify.url,
        timeout=timeout,
    )


def dispatch(
    runtime: Runtime,
    notify: FakeNotify,
    *,
    templates: dict[str, str] | None = None,
    api_key: str | None = None,
    timeout: float = 2.0,
) -> PassReport:
    return Dispatcher(
        engine=runtime.engine,
        transport=transport(notify, templates=templates, api_key=api_key, timeout=timeout),
        sender=SENDER,
        rng=random.Random(0),
    ).run_once()


def due_at(runtime: Runtime, message_id: int) -> datetime:
    """When the message's next attempt is due (aware, whatever the backend hands back)."""
    due = row(runtime, message_id).next_attempt_at
    assert due is not None
    return due if due.tzinfo is not None else due.replace(tzinfo=UTC)


def make_due(runtime: Runtime, message_id: int) -> None:
    """Move channelflow's clock to the message's next attempt."""
    clock.set_now(due_at(runtime, message_id))


def email_of(kind: Kind, *, message_id: int = 41, recipient: str = "mel@example.org") -> Email:
    """The email the outbox would hand a transport, without a database."""
    key = f"{kind.value}:CF-2026-0012:v1:user:mel"
    new = Notifier(sender=SENDER).message(
        Notice(key=key, recipient=recipient, context=kinds_module.sample(kind)), now=T0
    )
    return new.as_email(message_id=message_id, sender=SENDER, created_at=T0)


def post_for(notify: FakeNotify, message_id: int) -> list[Recorded]:
    return [
        post
        for post in notify.posts
        if str(post.body.get("reference", "")).startswith(f"channelflow-{message_id}-")
    ]


def other_key(notify: FakeNotify) -> str:
    """A well-formed key for the same service whose secret Notify does not know."""
    return f"{notify.key_name}-{notify.service_id}-00000000-1111-4222-8333-444444444444"


# -- 201: sent ---------------------------------------------------------------------------------


def test_a_message_goes_with_its_kinds_template_rendered_text_and_a_reference(
    runtime: Runtime, notify: FakeNotify, at_t0: None
) -> None:
    ids = queue(runtime, (Kind.CASE_ASSIGNED, "lee"), (Kind.REVIEW_REMINDER, "chris"))
    report = dispatch(
        runtime, notify, templates={"default": DEFAULT_TEMPLATE, "case_assigned": CASE_TEMPLATE}
    )

    assert report.sent == ids
    assert (report.failed, report.dead, report.stopped_because) == ([], [], None)
    assert len(notify.posts) == 2
    assert notify.lookups == []
    stored = {n.reference: n for n in notify.stored}
    for message_id, template in zip(ids, (CASE_TEMPLATE, DEFAULT_TEMPLATE), strict=True):
        message = row(runtime, message_id)
        (post,) = post_for(notify, message_id)
        assert post.path == "/v2/notifications/email"
        assert post.status == 201
        assert post.claims is not None
        assert post.claims["iss"] == notify.service_id
        assert post.body["email_address"] == message.recipient
        assert post.body["template_id"] == template  # the kind's own id beats the default
        assert post.body["personalisation"] == {
            "subject": message.subject,
            "body": message.body_text,
        }
        reference = post.body["reference"]
        assert re.fullmatch(rf"channelflow-{message_id}-[0-9a-f]{{16}}", reference)
        assert "CF-2026" not in reference
        assert "lee" not in reference
        assert message.status == Status.SENT
        assert message.provider_id == stored[reference].id  # the id Notify returned
        assert message.attempts == 1
        assert message.outcome_unknown is False
        assert message.last_error is None
        assert message.sent_at is not None
    assert (
        stored[post_for(notify, ids[0])[0].body["reference"]].subject
        == row(runtime, ids[0]).subject
    )


def test_every_kind_without_its_own_template_uses_the_default(notify: FakeNotify) -> None:
    sender = transport(
        notify, templates={"default": DEFAULT_TEMPLATE, "case_assigned": CASE_TEMPLATE}
    )
    assert sender.template_for(Kind.CASE_ASSIGNED.value) == CASE_TEMPLATE
    for kind in Kind:
        if kind is not Kind.CASE_ASSIGNED:
            assert sender.template_for(kind.value) == DEFAULT_TEMPLATE


def test_a_calendar_invitation_is_not_sent_through_notify_but_the_body_has_the_meeting(
    runtime: Runtime, notify: FakeNotify, at_t0: None
) -> None:
    (message_id,) = queue(runtime, (Kind.PANEL_AGENDA, "mel"))
    dispatch(runtime, notify)

    (post,) = post_for(notify, message_id)
    (attachment,) = attachments_from_json(row(runtime, message_id).attachments)
    assert attachment.filename == "panel.ics"
    personalisation = post.body["personalisation"]
    assert set(personalisation) == {"subject", "body"}
    assert "Thursday 26 November 2026 at 10:00" in personalisation["body"]
    assert "Committee Room 2, Town Hall" in personalisation["body"]
    assert row(runtime, message_id).status == Status.SENT


def test_emails_with_a_calendar_invitation_are_delivered_through_notify(
    notify: FakeNotify,
) -> None:
    """GOV.UK Notify only takes .csv .doc .docx .jpeg .jpg .json .odt .pdf .png .rtf .txt and
    .xlsx files ("Unsupported file type '.ics'" otherwise), so uploading the invitation makes
    every panel agenda, addendum and board reminder a permanent failure."""
    sender = transport(notify)
    refused: dict[str, str] = {}
    for number, kind in enumerate(MEETING_KINDS, start=1):
        try:
            sender.send(email_of(kind, message_id=number), outcome_unknown=False)
        except PermanentDeliveryFailure as error:
            refused[kind.value] = error.message
    assert refused == {}, f"Notify refused these kinds of email for good: {refused}"


# -- 400: dead at once -------------------------------------------------------------------------


def test_a_400_is_dead_at_once_with_notifys_message_and_no_address(
    runtime: Runtime, notify: FakeNotify, at_t0: None
) -> None:
    (message_id,) = queue(runtime, (Kind.CASE_ASSIGNED, "lee"))
    notify.fail_next(
        400, "Can't send to this recipient (lee@example.org) using a team-only API key"
    )
    report = dispatch(runtime, notify)

    assert report.dead == [message_id]
    assert (report.sent, report.failed, report.stopped_because) == ([], [], None)
    message = row(runtime, message_id)
    assert message.status == Status.DEAD
    assert message.attempts == 1
    assert message.last_error is not None
    assert "400" in message.last_error
    assert "BadRequestError" in message.last_error
    assert "Can't send to this recipient (<address>) using a team-only API key" in (
        message.last_error
    )
    assert "example.org" not in message.last_error

    clock.set_now(T0 + timedelta(days=2))
    assert dispatch(runtime, notify).sent == []
    assert len(notify.posts) == 1


def test_a_400_does_not_stop_the_pass_nor_does_a_500(
    runtime: Runtime, notify: FakeNotify, at_t0: None
) -> None:
    ids = queue(
        runtime,
        (Kind.REVIEW_REMINDER, "lee"),  # its template is unknown to Notify: 400
        (Kind.CASE_ASSIGNED, "lee"),
        (Kind.REVIEW_ESCALATION, "chris"),
    )
    notify.fail_next(500, after=2)
    report = dispatch(
        runtime,
        notify,
        templates={"default": DEFAULT_TEMPLATE, "review_reminder": UNKNOWN_TEMPLATE},
    )

    assert report.dead == [ids[0]]
    assert report.sent == [ids[1]]
    assert report.failed == [ids[2]]
    assert report.stopped_because is None
    assert "Template not found" in (row(runtime, ids[0]).last_error or "")
    assert len(notify.posts) == 3


def test_a_template_notify_does_not_have_is_a_permanent_failure(notify: FakeNotify) -> None:
    sender = transport(notify, templates={"default": UNKNOWN_TEMPLATE})
    with pytest.raises(PermanentDeliveryFailure, match="Template not found"):
        sender.send(email_of(Kind.CASE_ASSIGNED), outcome_unknown=False)


# -- 403: the pass stops -----------------------------------------------------------------------


def test_a_refused_api_key_stops_the_pass_and_keeps_every_message_for_later(
    runtime: Runtime, notify: FakeNotify, at_t0: None
) -> None:
    first, second = queue(runtime, (Kind.CASE_ASSIGNED, "lee"), (Kind.REVIEW_REMINDER, "lee"))
    report = dispatch(runtime, notify, api_key=other_key(notify))

    assert report.stopped_because is not None
    assert "API key" in report.stopped_because
    assert "CHANNELFLOW_NOTIFY_API_KEY" in report.stopped_because
    assert "00000000-1111" not in report.stopped_because  # the key itself is never shown
    assert report.failed == [first]
    assert (report.sent, report.dead) == ([], [])
    assert len(notify.posts) == 1  # nothing else was tried once the key was refused
    assert notify.posts[0].status == 403
    refused = row(runtime, first)
    assert refused.status == Status.FAILED
    assert refused.attempts == 0  # nothing could be sent: not counted against the message
    assert refused.outcome_unknown is False
    assert refused.next_attempt_at is not None
    assert "403" in (refused.last_error or "")
    untried = row(runtime, second)
    assert untried.status == Status.QUEUED
    assert untried.attempts == 0

    clock.set_now(T0 + timedelta(minutes=5))
    report = dispatch(runtime, notify)  # the right key now
    assert sorted(report.sent) == [first, second]
    assert len(notify.stored) == 2


def test_an_injected_403_says_to_check_the_api_key(notify: FakeNotify) -> None:
    notify.fail_next(403, "Error: Your system clock must be accurate to within 30 seconds")
    with pytest.raises(TransportUnavailable, match="CHANNELFLOW_NOTIFY_API_KEY") as raised:
        transport(notify).send(email_of(Kind.CASE_ASSIGNED), outcome_unknown=False)
    assert "system clock" in raised.value.message


# -- 429: retried later ------------------------------------------------------------------------


def test_a_rate_limited_message_is_retried_when_due_and_then_sent(
    runtime: Runtime, notify: FakeNotify, at_t0: None
) -> None:
    (message_id,) = queue(runtime, (Kind.CASE_ASSIGNED, "lee"))
    notify.fail_next(429)
    report = dispatch(runtime, notify)

    assert report.failed == [message_id]
    assert report.stopped_because is not None
    assert "rate limit" in report.stopped_because
    message = row(runtime, message_id)
    assert message.status == Status.FAILED
    assert message.outcome_unknown is False
    assert "429" in (message.last_error or "")
    due = due_at(runtime, message_id)
    assert T0 + timedelta(seconds=30) <= due <= T0 + timedelta(minutes=1)

    clock.set_now(due - timedelta(seconds=1))
    assert dispatch(runtime, notify).sent == []  # not due yet
    assert len(notify.posts) == 1

    clock.set_now(due)
    assert dispatch(runtime, notify).sent == [message_id]
    sent = row(runtime, message_id)
    assert sent.status == Status.SENT
    assert sent.attempts == 1  # the rate-limited try was not counted
    assert sent.provider_id == notify.stored[0].id
    assert len(notify.posts) == 2
    assert len(notify.stored) == 1


def test_outbox_retry_makes_a_rate_limited_message_due_at_once(
    runtime: Runtime, notify: FakeNotify, at_t0: None
) -> None:
    (message_id,) = queue(runtime, (Kind.CASE_ASSIGNED, "lee"))
    notify.fail_next(429, "Exceeded send limits (1000) for today", error="TooManyRequestsError")
    assert dispatch(runtime, notify).failed == [message_id]

    outbox.retry(runtime.engine, message_id, now=clock.now())
    assert dispatch(runtime, notify).sent == [message_id]
    assert row(runtime, message_id).provider_id == notify.stored[0].id


# -- 500 and no answer: outcome unknown, looked up before sending again --------------------------


def test_after_a_500_the_retry_finds_what_notify_kept_and_does_not_post_again(
    runtime: Runtime, notify: FakeNotify, at_t0: None
) -> None:
    (message_id,) = queue(runtime, (Kind.CASE_ASSIGNED, "lee"))
    notify.fail_next(500, store=True)  # Notify took it, but the answer was an error
    report = dispatch(runtime, notify)

    assert report.failed == [message_id]
    assert report.stopped_because is None
    failed = row(runtime, message_id)
    assert failed.status == Status.FAILED
    assert failed.outcome_unknown is True
    assert "500" in (failed.last_error or "")
    assert "Internal server error" in (failed.last_error or "")

    make_due(runtime, message_id)
    assert dispatch(runtime, notify).sent == [message_id]

    (post,) = notify.posts
    (lookup,) = notify.lookups
    assert lookup.path == "/v2/notifications"
    assert lookup.query == {"template_type": "email", "reference": post.body["reference"]}
    assert lookup.claims is not None
    assert lookup.claims["iss"] == notify.service_id
    sent = row(runtime, message_id)
    assert sent.status == Status.SENT
    assert sent.provider_id == notify.stored[0].id
    assert sent.outcome_unknown is False
    assert len(notify.stored) == 1


def test_after_a_500_notify_did_not_keep_the_retry_posts_once(
    runtime: Runtime, notify: FakeNotify, at_t0: None
) -> None:
    (message_id,) = queue(runtime, (Kind.CASE_ASSIGNED, "lee"))
    notify.fail_next(500)
    dispatch(runtime, notify)
    assert row(runtime, message_id).outcome_unknown is True
    assert notify.stored == []

    make_due(runtime, message_id)
    assert dispatch(runtime, notify).sent == [message_id]

    assert [r.method for r in notify.requests] == ["POST", "GET", "POST"]
    assert notify.lookups[0].query["reference"] == notify.posts[1].body["reference"]
    assert notify.posts[0].body == notify.posts[1].body  # the same message, same reference
    (kept,) = notify.stored
    assert row(runtime, message_id).provider_id == kept.id


@pytest.mark.parametrize("fault", ["hang", "drop"])
def test_no_answer_after_notify_kept_the_message_ends_with_exactly_one_notification(
    runtime: Runtime, notify: FakeNotify, at_t0: None, fault: str
) -> None:
    (message_id,) = queue(runtime, (Kind.CASE_ASSIGNED, "lee"))
    if fault == "hang":
        notify.hang_next()
    else:
        notify.drop_next()
    report = dispatch(runtime, notify, timeout=1.0)

    assert report.failed == [message_id]
    assert report.stopped_because is None
    unknown = row(runtime, message_id)
    assert unknown.status == Status.FAILED
    assert unknown.outcome_unknown is True
    assert "did not answer" in (unknown.last_error or "")
    assert notify.posts[0].status is None  # never answered
    assert len(notify.stored) == 1

    make_due(runtime, message_id)
    assert dispatch(runtime, notify, timeout=1.0).sent == [message_id]

    assert len(notify.posts) == 1
    assert len(notify.lookups) == 1
    (kept,) = notify.stored
    assert row(runtime, message_id).provider_id == kept.id


def test_when_the_lookup_gets_no_answer_nothing_is_posted_and_the_doubt_remains(
    runtime: Runtime, notify: FakeNotify, at_t0: None
) -> None:
    (message_id,) = queue(runtime, (Kind.CASE_ASSIGNED, "lee"))
    notify.drop_next()
    dispatch(runtime, notify)
    make_due(runtime, message_id)

    notify.drop_next(method="GET")
    report = dispatch(runtime, notify)
    assert report.failed == [message_id]
    assert report.stopped_because is not None
    assert "GOV.UK Notify" in report.stopped_because
    assert len(notify.posts) == 1
    doubtful = row(runtime, message_id)
    assert doubtful.status == Status.FAILED
    assert doubtful.outcome_unknown is True

    make_due(runtime, message_id)
    assert dispatch(runtime, notify).sent == [message_id]
    assert len(notify.posts) == 1
    assert len(notify.stored) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, DeliveryOutcomeUnknown),
        (429, TransportUnavailable),
        (403, TransportUnavailable),
    ],
)
def test_a_failed_lookup_never_posts(
    notify: FakeNotify, status: int, expected: type[Exception]
) -> None:
    notify.fail_next(status, method="GET")
    with pytest.raises(expected):
        transport(notify).send(email_of(Kind.CASE_ASSIGNED), outcome_unknown=True)
    assert notify.posts == []
    assert len(notify.lookups) == 1


def test_the_reference_is_the_same_on_every_attempt_and_unique_per_message() -> None:
    one = email_of(Kind.CASE_ASSIGNED, message_id=1)
    assert reference_for(one) == reference_for(email_of(Kind.CASE_ASSIGNED, message_id=1))
    assert reference_for(one) != reference_for(email_of(Kind.CASE_ASSIGNED, message_id=2))


# -- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "templates",
    [
        {},
        {"case_assigned": CASE_TEMPLATE},
        {kind.value: CASE_TEMPLATE for kind in Kind if kind != Kind.TEST_MESSAGE},
    ],
)
def test_a_kind_without_a_template_and_no_default_is_a_configuration_error(
    notify: FakeNotify, templates: dict[str, str]
) -> None:
    with pytest.raises(MailConfigurationError, match=r"\[notify\.templates\]") as raised:
        transport(notify, templates=templates)
    missing = next(kind.value for kind in Kind if kind.value not in templates)
    assert missing in raised.value.message


def test_a_template_for_every_kind_needs_no_default(notify: FakeNotify) -> None:
    sender = transport(notify, templates={kind.value: CASE_TEMPLATE for kind in Kind})
    assert sender.template_for(Kind.TEST_MESSAGE.value) == CASE_TEMPLATE


@pytest.mark.parametrize(
    "api_key",
    [
        pytest.param("", id="empty"),
        pytest.param("not-a-key", id="short"),
        pytest.param("x" * 50, id="too-short-for-two-uuids"),
        pytest.param("x" * 80, id="no-uuids"),
        pytest.param(
            "live-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b",
            id="secret-cut-short",
        ),
    ],
)
def test_an_api_key_that_is_not_a_notify_key_is_a_configuration_error(
    notify: FakeNotify, api_key: str
) -> None:
    with pytest.raises(MailConfigurationError, match="not a Notify API key") as raised:
        transport(notify, api_key=api_key)
    if api_key:
        assert api_key not in raised.value.message


def test_a_key_whose_name_has_hyphens_is_a_notify_key() -> None:
    with FakeNotify(templates=(DEFAULT_TEMPLATE,), key_name="council-prod-key") as fake:
        sender = transport(fake)
        assert sender.send(email_of(Kind.CASE_ASSIGNED), outcome_unknown=False) == (
            fake.stored[0].id
        )


def test_closing_the_transport_closes_its_connections_to_notify() -> None:
    """Transport.close() is to "release any connection kept open between sends", and the
    dispatcher calls it after every pass; Notify keeps connections alive, so its requests
    session must be closed there rather than whenever the garbage collector gets to it."""
    with FakeNotify(templates=(DEFAULT_TEMPLATE,), keep_alive=True) as fake:
        sender = transport(fake)
        sender.send(email_of(Kind.CASE_ASSIGNED), outcome_unknown=False)
        sender.close()
        assert fake.open_connections(settle=1.0) == 0


# -- the CLI -----------------------------------------------------------------------------------


def notify_environment(
    monkeypatch: pytest.MonkeyPatch, notify: FakeNotify, config: Path | None, *, key: bool = True
) -> None:
    monkeypatch.setenv("CHANNELFLOW_MAIL_TRANSPORT", "notify")
    monkeypatch.setenv("CHANNELFLOW_NOTIFY_BASE_URL", notify.url)
    monkeypatch.setenv("CHANNELFLOW_SMTP_TIMEOUT", "2")
    if key:
        monkeypatch.setenv("CHANNELFLOW_NOTIFY_API_KEY", notify.api_key)
    if config is not None:
        monkeypatch.setenv("CHANNELFLOW_CONFIG", str(config))


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "channelflow.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str],
    runtime: Runtime,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    """`channelflow` against the runtime fixture's database and key file, run from a folder
    with no channelflow.toml of its own."""
    monkeypatch.chdir(tmp_path)
    return Cli(capsys, database_url, tmp_path / "audit.key")


def one_sentence(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith("channelflow: error: ")
    assert line.endswith(".")
    assert "Traceback" not in line
    return line


def test_mail_test_through_notify_delivers_and_exits_0(
    cli: Cli, notify: FakeNotify, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = write_config(tmp_path, f'[notify.templates]\ndefault = "{DEFAULT_TEMPLATE}"\n')
    notify_environment(monkeypatch, notify, config)

    outcome = cli("mail", "test", "someone@example.org")

    assert outcome.code == 0, outcome.err
    (kept,) = notify.stored
    assert kept.email_address == "someone@example.org"
    assert kept.template.id == DEFAULT_TEMPLATE
    assert "delivered through notify" in outcome.out
    assert kept.id in outcome.out
    (post,) = notify.posts
    assert set(post.body["personalisation"]) == {"subject", "body"}
    assert post.body["personalisation"]["subject"] == kept.subject


@pytest.mark.parametrize(
    ("config_text", "key", "says"),
    [
        pytest.param(None, True, "[notify.templates]", id="no-config-file"),
        pytest.param("[notify]\n", True, "[notify.templates]", id="no-templates"),
        pytest.param(
            f'[notify.templates]\ndefault = "{DEFAULT_TEMPLATE}"\n',
            False,
            "CHANNELFLOW_NOTIFY_API_KEY",
            id="no-api-key",
        ),
        pytest.param(
            f'[notify.templates]\ndefault = "{DEFAULT_TEMPLATE}"\ncase_asigned = "x"\n',
            True,
            "'case_asigned'",
            id="unknown-key",
        ),
        pytest.param(
            f'[notfy.templates]\ndefault = "{DEFAULT_TEMPLATE}"\n',
            True,
            "'notfy'",
            id="unknown-table",
        ),
    ],
)
def test_mail_test_with_notify_misconfigured_exits_2_with_one_sentence(
    cli: Cli,
    notify: FakeNotify,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    config_text: str | None,
    key: bool,
    says: str,
) -> None:
    config = None if config_text is None else write_config(tmp_path, config_text)
    notify_environment(monkeypatch, notify, config, key=key)

    outcome = cli("mail", "test", "someone@example.org")

    assert outcome.code == 2
    assert says in one_sentence(outcome.err)
    assert notify.requests == []


def test_a_mail_test_that_could_not_start_leaves_nothing_to_send_later(
    cli: Cli,
    runtime: Runtime,
    notify: FakeNotify,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`mail test` gives up a test message it could not send, so that it does not "surprise
    anyone by arriving hours later"; that must hold when the transport cannot even be built."""
    problems = {
        "no templates": "[notify]\n",
        "unknown key": f'[notify.templates]\ndefault = "{DEFAULT_TEMPLATE}"\ntypo = "x"\n',
    }
    left: dict[str, list[str]] = {}
    for problem, text in problems.items():
        notify_environment(monkeypatch, notify, write_config(tmp_path, text))
        assert cli("mail", "test", "someone@example.org").code == 2
        waiting = [
            f"outbox {m.id} {m.status}"
            for m in outbox.list_messages(runtime.engine)
            if m.status in (Status.QUEUED, Status.FAILED)
        ]
        if waiting:
            left[problem] = waiting
        for message in outbox.list_messages(runtime.engine):
            if message.id is not None:
                outbox.give_up(runtime.engine, message.id, reason="tidied by the test")
    assert left == {}, f"test messages left to be sent later: {left}"


def test_mail_test_with_a_key_notify_refuses_exits_7_and_gives_the_message_up(
    cli: Cli,
    runtime: Runtime,
    notify: FakeNotify,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, f'[notify.templates]\ndefault = "{DEFAULT_TEMPLATE}"\n')
    notify_environment(monkeypatch, notify, config)
    monkeypatch.setenv("CHANNELFLOW_NOTIFY_API_KEY", other_key(notify))

    outcome = cli("mail", "test", "someone@example.org")

    assert outcome.code == 7
    line = one_sentence(outcome.err)
    assert "API key" in line
    assert "00000000-1111" not in line
    (message,) = outbox.list_messages(runtime.engine)
    assert message.status == Status.DEAD
    assert notify.stored == []


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_outbox_send_when_notify_cannot_be_reached_exits_7_and_tries_one_message(
    cli: Cli,
    runtime: Runtime,
    notify: FakeNotify,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """README: exit 7 for `outbox send` "when the mail server or Notify cannot be reached".
    A refused connection never reached Notify, so the pass should stop (as the SMTP transport
    does) instead of trying every message and marking each one's outcome unknown."""
    first, second = queue(runtime, (Kind.CASE_ASSIGNED, "lee"), (Kind.REVIEW_REMINDER, "lee"))
    config = write_config(tmp_path, f'[notify.templates]\ndefault = "{DEFAULT_TEMPLATE}"\n')
    notify_environment(monkeypatch, notify, config)
    monkeypatch.setenv("CHANNELFLOW_NOTIFY_BASE_URL", f"http://127.0.0.1:{unused_port()}")

    outcome = cli("outbox", "send")

    assert outcome.code == 7, outcome.out
    assert "Notify" in one_sentence(outcome.err)
    assert row(runtime, first).status == Status.FAILED
    assert row(runtime, first).outcome_unknown is False
    assert row(runtime, second).status == Status.QUEUED
    assert row(runtime, second).attempts == 0
