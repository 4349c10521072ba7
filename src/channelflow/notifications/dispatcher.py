"""Draining the outbox: claim due messages, send each once, record what happened.

A message is marked ``sending`` (under a lease) before the network call and ``sent`` with
the provider's id straight after it. If the process dies in between, the lease runs out and
another pass sends it again, marked as of unknown outcome: over SMTP with the same
Message-ID, over Notify only after asking Notify whether it already has it. That window,
one message wide, is the only way a recipient can see a message twice.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from channelflow import clock
from channelflow.exceptions import (
    DeliveryOutcomeUnknown,
    PermanentDeliveryFailure,
    TransientDeliveryFailure,
    TransportUnavailable,
)
from channelflow.notifications import outbox
from channelflow.notifications.outbox import Claimed
from channelflow.notifications.transports.base import Transport
from channelflow.store.db import DriverConnection, autocommit_connection

log = logging.getLogger("channelflow.outbox")

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_LEASE = timedelta(minutes=10)
DEFAULT_BATCH = 100


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: about 1, 2, 4 ... minutes, at most six hours."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base: timedelta = timedelta(minutes=1)
    cap: timedelta = timedelta(hours=6)

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        ceiling = min(self.cap, self.base * (1 << max(attempts - 1, 0)))
        # "Equal jitter": never less than half the ceiling, so retries still spread out
        # while a struggling server is not hit again at once.
        return ceiling / 2 + ceiling / 2 * rng.random()


@dataclass
class PassReport:
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    # The transport could not send at all (server down, credentials refused): why.
    stopped_because: str | None = None


class Dispatcher:
    def __init__(
        self,
        *,
        engine: Engine,
        transport: Transport,
        sender: str,
        retry: RetryPolicy | None = None,
        lease: timedelta = DEFAULT_LEASE,
        batch: int = DEFAULT_BATCH,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.sender = sender
        self.retry = retry or RetryPolicy()
        self.batch = batch
        # Before each send the claim must still have a whole send's longest time to run (else
        # the rest of the batch is handed back), so it must last a few of those at least.
        self.lease = max(lease, timedelta(seconds=transport.longest_send * 2))
        self.rng = rng or random.Random()

    def run_once(self, *, stop: threading.Event | None = None) -> PassReport:
        """Send everything due now, batch by batch, until nothing is due or ``stop`` is set."""
        report = PassReport()
        try:
            with autocommit_connection(self.engine) as connection:
                while not (stop is not None and stop.is_set()):
                    claimed = outbox.claim(
                        connection,
                        now=clock.now(),
                        lease=self.lease,
                        limit=self.batch,
                        sender=self.sender,
                    )
                    if not claimed:
                        break
                    self._send_batch(connection, claimed, report, stop)
                    if report.stopped_because is not None:
                        break
        finally:
            self.transport.close()
        return report

    def _send_batch(
        self,
        connection: DriverConnection,
        claimed: list[Claimed],
        report: PassReport,
        stop: threading.Event | None,
    ) -> None:
        """Send a claimed batch, each message's result recorded before the next can go.

        A success is recorded while the next message's first request is on its way (the
        transport's ``while_waiting``), and always before that message can be delivered, so
        at most one delivered message is ever unrecorded.
        """
        safety = timedelta(seconds=self.transport.longest_send)
        unrecorded: list[Callable[[], None]] = []

        def record_previous() -> None:
            while unrecorded:
                unrecorded.pop()()

        try:
            for position, item in enumerate(claimed):
                halted = stop is not None and stop.is_set()
                # A claim about to run out could pass the message to another dispatcher.
                expiring = clock.now() + safety >= item.lease_expires_at
                if halted or expiring or report.stopped_because is not None:
                    record_previous()
                    self._release(connection, claimed[position:])
                    return
                self._send_one(connection, item, report, record_previous, unrecorded)
        finally:
            record_previous()

    def _send_one(
        self,
        connection: DriverConnection,
        item: Claimed,
        report: PassReport,
        record_previous: Callable[[], None],
        unrecorded: list[Callable[[], None]],
    ) -> None:
        email = item.email
        try:
            provider_id = self.transport.send(
                email, outcome_unknown=item.outcome_unknown, while_waiting=record_previous
            )
        except PermanentDeliveryFailure as error:
            record_previous()
            self._failed(connection, item, error.message, report, permanent=True)
        except TransportUnavailable as error:
            # Nothing could go (server down, settings wrong): not this message's fault, so
            # the attempt is not counted and no outage, however long, makes mail dead.
            record_previous()
            report.stopped_because = error.message
            self._failed(connection, item, error.message, report, counted=False)
        except DeliveryOutcomeUnknown as error:
            record_previous()
            self._failed(connection, item, error.message, report, unknown=True)
        except TransientDeliveryFailure as error:
            record_previous()
            self._failed(connection, item, error.message, report)
        except Exception as error:
            # A fault of ours or of a library, not of delivery: kept as a counted transient
            # failure, so the batch is not left claimed and a message that always fails
            # like this ends up dead instead of blocking every pass.
            record_previous()
            log.exception("outbox %d (%s): unexpected error", email.id, email.kind)
            self._failed(connection, item, f"unexpected {type(error).__name__}", report)
        else:
            record_previous()
            sent_at = clock.now()
            unrecorded.append(lambda: self._sent(connection, item, provider_id, sent_at, report))

    def _sent(
        self,
        connection: DriverConnection,
        item: Claimed,
        provider_id: str,
        sent_at: datetime,
        report: PassReport,
    ) -> None:
        email = item.email
        if outbox.record_sent(connection, item, provider_id=provider_id, now=sent_at):
            report.sent.append(email.id)
            log.info("outbox %d (%s) sent, attempt %d", email.id, email.kind, item.attempts)
        else:
            log.warning("outbox %d was sent after this dispatcher's claim ran out", email.id)

    def _failed(
        self,
        connection: DriverConnection,
        item: Claimed,
        reason: str,
        report: PassReport,
        *,
        permanent: bool = False,
        unknown: bool = False,
        counted: bool = True,
    ) -> None:
        email = item.email
        attempts = item.attempts if counted else item.attempts - 1
        dead = permanent or (counted and attempts >= self.retry.max_attempts)
        if not permanent and dead:
            reason = f"{reason} (gave up after {attempts} attempts)"
        delay = self.retry.delay(max(attempts, 1), self.rng)
        next_attempt = None if dead else clock.now() + delay
        if not outbox.record_failure(
            connection,
            item,
            error=reason,
            next_attempt_at=next_attempt,
            outcome_unknown=unknown,
            attempts=attempts,
        ):
            log.warning("outbox %d failed after this dispatcher's claim ran out", email.id)
            return
        (report.dead if dead else report.failed).append(email.id)
        if dead:
            log.error("outbox %d (%s) is dead: %s", email.id, email.kind, reason)
        else:
            log.warning(
                "outbox %d (%s) %s: %s; next attempt %s",
                email.id,
                email.kind,
                f"failed, attempt {attempts}" if counted else "not sent (attempt not counted)",
                reason,
                next_attempt.isoformat() if next_attempt else "none",
            )

    def _release(self, connection: DriverConnection, items: list[Claimed]) -> None:
        for item in items:
            outbox.release(connection, item, now=clock.now())
