"""Dispatchers killed mid-send lose nothing, and several dispatchers send each message once.

The dispatcher runs in a separate Python process whose transport (real SMTP to the loopback
server) kills its own process with SIGKILL at the chosen moment: after the claim but before
the message goes out, or after the server took it but before the outbox records it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from channelflow import clock
from channelflow.notifications import Dispatcher, Notice, Status, outbox
from channelflow.notifications.kinds import CaseAssigned
from channelflow.notifications.message import message_id_for
from channelflow.notifications.transports import SmtpSettings, SmtpTransport, TLSMode
from channelflow.runtime import Runtime
from channelflow.store.db import write_connection
from tests.mailserver import MailServer
from tests.outbox_factories import SENDER

pytestmark = pytest.mark.slow


DISPATCHER = """
import os, signal, sys, time
from pathlib import Path

from channelflow.notifications import Dispatcher
from channelflow.notifications.transports import SmtpSettings, SmtpTransport, TLSMode
from channelflow.store.db import open_engine

url, port, mode, kill_at, batch, go = sys.argv[1:7]
kill_at = int(kill_at)


class Killing(SmtpTransport):
    sends = 0

    def send(self, email, *, outcome_unknown, while_waiting=lambda: None):
        self.sends += 1
        if mode == "before_send" and self.sends == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        provider_id = super().send(
            email, outcome_unknown=outcome_unknown, while_waiting=while_waiting
        )
        if mode == "after_send" and self.sends == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return provider_id


while go != "-" and not Path(go).exists():
    time.sleep(0.01)
engine = open_engine(url)
transport = Killing(SmtpSettings("127.0.0.1", int(port), TLSMode.NONE, timeout=10))
report = Dispatcher(
    engine=engine, transport=transport, sender=sys.argv[7], batch=int(batch)
).run_once()
print(len(report.sent), len(report.failed), len(report.dead), flush=True)
"""


def _queue(runtime: Runtime, count: int) -> list[str]:
    keys = [f"case_assigned:CF-2026-{number:04d}:v4:user:1" for number in range(1, count + 1)]
    notices = [
        Notice(key=key, recipient="lee@example.org", context=CaseAssigned(key.split(":")[1]))
        for key in keys
    ]
    with write_connection(runtime.engine) as connection:
        runtime.notifier.queue(connection, notices, now=clock.now())
    return keys


def _start(
    url: str, port: int, *, mode: str = "none", kill_at: int = 0, batch: int = 5, go: str = "-"
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-c", DISPATCHER, url, str(port), mode),
            *(str(kill_at), str(batch), go, SENDER),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _statuses(engine: Engine) -> Counter[str]:
    return Counter(row.status for row in outbox.list_messages(engine))


def _restart_after_leases_ran_out(engine: Engine, port: int) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with clock.frozen_at(later):
        transport = SmtpTransport(SmtpSettings("127.0.0.1", port, TLSMode.NONE, timeout=10))
        report = Dispatcher(engine=engine, transport=transport, sender=SENDER).run_once()
    assert report.stopped_because is None


def _received_keys(server: MailServer, keys: list[str]) -> Counter[str]:
    by_message_id = {message_id_for(key, SENDER): key for key in keys}
    return Counter(
        by_message_id[str(received.parsed()["Message-ID"])] for received in server.received
    )


@pytest.mark.parametrize("mode", ["before_send", "after_send"])
def test_a_dispatcher_killed_mid_send_loses_nothing_and_doubles_only_the_unrecorded_one(
    runtime: Runtime, mail_server: MailServer, mode: str
) -> None:
    keys = _queue(runtime, 12)
    url = runtime.settings.database_url
    killed = _start(url, mail_server.port, mode=mode, kill_at=7, batch=5)
    _, err = killed.communicate(timeout=60)
    assert killed.returncode == -9, err

    # A success is recorded while the next message starts (and always before it can be
    # delivered): killed before message 7 went, message 6 was delivered but not recorded;
    # killed after message 7 went, message 6 was recorded but 7 was not.
    recorded = 5 if mode == "before_send" else 6
    statuses = _statuses(runtime.engine)
    assert statuses == Counter(
        {Status.SENT: recorded, Status.SENDING: 10 - recorded, Status.QUEUED: 2}
    )
    # The rest of the killed batch stays claimed: nobody may send it until the lease runs
    # out, so a restart at once sends only what was never claimed.
    restarted = _start(url, mail_server.port)
    out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    assert out.split() == ["2", "0", "0"]
    assert _statuses(runtime.engine) == Counter(
        {Status.SENT: recorded + 2, Status.SENDING: 10 - recorded}
    )
    _restart_after_leases_ran_out(runtime.engine, mail_server.port)

    messages = outbox.list_messages(runtime.engine)
    assert {message.status for message in messages} == {Status.SENT}
    received = _received_keys(mail_server, keys)
    assert set(received) == set(keys)
    doubled = [key for key, count in received.items() if count > 1]
    # Only the one delivered message whose record the process did not live to commit, and
    # both copies carry one Message-ID (the Counter above is keyed by it), so mail systems
    # see one message.
    assert doubled == [keys[recorded]]
    unknown = [message.idempotency_key for message in messages if message.attempts > 1]
    assert unknown == keys[recorded:10]


def test_two_dispatchers_on_postgresql_send_each_of_1000_messages_once(
    postgres_url: str, tmp_path: Path, mail_server: MailServer
) -> None:
    from tests.conftest import make_runtime

    runtime = make_runtime(postgres_url, tmp_path / "audit.key")
    try:
        keys = _queue(runtime, 1000)
        go = tmp_path / "go"
        workers = [_start(postgres_url, mail_server.port, batch=10, go=str(go)) for _ in range(2)]
        time.sleep(0.5)
        go.touch()
        outputs = [worker.communicate(timeout=120) for worker in workers]
        for worker, (_, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, err
        sent_by_each = [int(out.split()[0]) for out, _ in outputs]
        assert sum(sent_by_each) == 1000
        assert all(count > 0 for count in sent_by_each), sent_by_each
        assert _statuses(runtime.engine) == Counter({Status.SENT: 1000})
        received = _received_keys(mail_server, keys)
        assert set(received) == set(keys)
        assert max(received.values()) == 1
    finally:
        runtime.close()
