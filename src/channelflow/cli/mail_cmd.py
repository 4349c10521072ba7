"""`channelflow outbox` and `channelflow mail`: operator commands, which act as no user."""

from __future__ import annotations

import uuid

import click

from channelflow import clock
from channelflow.cli.app import db_option, json_option, runtime
from channelflow.cli.output import print_json, print_table
from channelflow.exceptions import DeliveryFailed
from channelflow.notifications import Notice, PassReport, Status, outbox
from channelflow.notifications.kinds import TestMessage
from channelflow.runtime import Runtime
from channelflow.store.db import write_connection


def _when(value: object) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else None


def dispatch(rt: Runtime) -> PassReport:
    """One dispatch pass; raises DeliveryFailed if the transport could send nothing."""
    report = rt.dispatcher().run_once()
    if report.stopped_because is not None:
        raise DeliveryFailed(
            f"{report.stopped_because}; unsent email stays queued and is retried later"
        )
    return report


def describe(report: PassReport) -> str:
    return (
        f"sent {len(report.sent)}, failed {len(report.failed)} (to retry), dead {len(report.dead)}"
    )


@click.group("outbox")
def outbox_group() -> None:
    """Email waiting to be sent, sent, or given up on."""


@outbox_group.command("list")
@click.option(
    "--status",
    type=click.Choice([status.value for status in Status]),
    default=None,
    help="only messages with this status (default: all)",
)
@json_option
@db_option
def list_messages(status: str | None, as_json: bool, db: str | None) -> None:
    """List the outbox, oldest first."""
    rows = outbox.list_messages(runtime(db).engine, status=Status(status) if status else None)
    if as_json:
        print_json(
            [
                {
                    "id": row.id,
                    "kind": row.kind,
                    "status": row.status,
                    "recipient": row.recipient,
                    "attempts": row.attempts,
                    "idempotency_key": row.idempotency_key,
                    "subject": row.subject,
                    "created_at": _when(row.created_at),
                    "next_attempt_at": _when(row.next_attempt_at)
                    if row.status in (Status.QUEUED, Status.FAILED)
                    else None,
                    "sent_at": _when(row.sent_at),
                    "outcome_unknown": row.outcome_unknown,
                    "last_error": row.last_error,
                    "provider_id": row.provider_id,
                }
                for row in rows
            ]
        )
        return
    print_table(
        "Outbox",
        ("id", "kind", "status", "recipient", "attempts", "next attempt", "last error"),
        [
            (
                row.id,
                row.kind,
                row.status,
                row.recipient,
                row.attempts,
                _when(row.next_attempt_at) if row.status in (Status.QUEUED, Status.FAILED) else "",
                row.last_error or "",
            )
            for row in rows
        ],
    )


@outbox_group.command("send")
@db_option
def send(db: str | None) -> None:
    """Send everything due now (one dispatch pass); exit 7 if the transport is down."""
    click.echo(describe(dispatch(runtime(db))))


@outbox_group.command("retry")
@click.argument("message_id", metavar="ID", type=click.IntRange(1, 2**62))
@db_option
def retry(message_id: int, db: str | None) -> None:
    """Make message ID due now, whatever its backoff (a dead one gets one more attempt)."""
    message = outbox.retry(runtime(db).engine, message_id, now=clock.now())
    click.echo(f"outbox message {message.id} is due now; `channelflow outbox send` sends it")


@click.group("mail")
def mail() -> None:
    """Check that email can be delivered."""


@mail.command("test")
@click.argument("address")
@db_option
def test(address: str, db: str | None) -> None:
    """Queue a test message to ADDRESS and send it now; exit 0 only if it was delivered."""
    rt = runtime(db)
    # Built first: a transport that cannot even be set up must not leave a test queued.
    dispatcher = rt.dispatcher()
    key = f"test_message:{uuid.uuid4().hex}"
    notice = Notice(
        key=key,
        recipient=address,
        context=TestMessage(sent_at=clock.now(), transport=rt.mail.transport),
    )
    with write_connection(rt.engine, writers_lock=False) as connection:
        rt.notifier.queue(connection, [notice], now=clock.now())
    report = dispatcher.run_once()
    (message,) = outbox.list_messages(rt.engine, idempotency_key=key)
    assert message.id is not None
    if message.status != Status.SENT:
        # The pass may have stopped on older mail before reaching the test message.
        reason = message.last_error or report.stopped_because or "it was not sent"
        # A test that failed now should not surprise anyone by arriving hours later.
        outbox.give_up(rt.engine, message.id, reason=reason)
        raise DeliveryFailed(f"the test message (outbox {message.id}) was not delivered: {reason}")
    click.echo(
        f"delivered through {rt.mail.transport} (outbox {message.id}): {message.provider_id}"
    )


def register(group: click.Group) -> None:
    group.add_command(outbox_group)
    group.add_command(mail)
