"""`channelflow run` as real processes: what it writes, re-runs, crashes, signals, races, bad files.

Two kinds of data set are used:

* a fixed one, initialised on Monday 2 November 2026, driven with `run --once --now`: one
  case (lead lee) in intervention with its support-plan review due Friday 20 November 2026;
* one relative to the real clock, for `channelflow run` (which follows the real clock):
  initialised 40 days ago, with cases whose reviews fell due 14 days ago, so their two
  reminders and their escalation are all due now. Its configuration puts the panel and the
  board in a month more than half a year away, so no meeting notice is due: the expected
  emails are exactly the cases' reminders, escalations and case-assigned emails.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from channelflow import clock
from channelflow.notifications.message import message_id_for
from channelflow.notifications.transports.file import file_name
from channelflow.runtime import Runtime
from channelflow.scheduler import RunReport, Scheduler
from channelflow.settings import Settings
from channelflow.store.db import open_engine
from tests.cli_helpers import Outcome, run_subprocess
from tests.conftest import make_runtime
from tests.factories import new_referral
from tests.mailserver import MailServer, smtp_environment

SENDER = "channelflow@council.example.gov.uk"
# Monday 2 November 2026, 09:00 GMT: when the fixed data set was initialised.
INITIALISED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
REVIEW_DUE = "2026-11-20"


# Data sets --------------------------------------------------------------------------


def _to_intervention(runtime: Any, reference: str, *, first_review: str, start: datetime) -> None:
    steps = [
        ("screen", "pat", {"outcome": "proceed"}),
        ("refer_to_panel", "cora", {}),
        ("accept", "chris", {"consent": "given", "lead": "lee"}),
        ("start_intervention", "cora", {"support_plan": "SP-1", "first_review": first_review}),
    ]
    for step, (event, actor, values) in enumerate(steps):
        runtime.workflow.fire(
            reference, event, by=actor, values=values, reason=None, at=start + timedelta(days=step)
        )


def fixed_data_set(url: str, key_file: Path) -> str:
    """Initialised 2 November 2026; one case in intervention, review due 20 November."""
    with clock.frozen_at(INITIALISED):
        runtime = make_runtime(url, key_file)
        try:
            reference = runtime.workflow.open_referral(
                new_referral(received_on=date(2026, 10, 26)), by="cora"
            )
            _to_intervention(
                runtime,
                reference,
                first_review=REVIEW_DUE,
                start=datetime(2026, 10, 27, 10, 0, tzinfo=UTC),
            )
        finally:
            runtime.close()
    return reference


def live_data_set(url: str, key_file: Path, cases: int) -> list[str]:
    """Initialised 40 days ago; ``cases`` cases whose support-plan review fell due 14 days ago.

    Returns the idempotency key of every email due now: per case the case-assigned email
    to its lead (queued when it was accepted), two review reminders (7 days before and on
    the day) to the lead and one escalation to the chair.
    """
    real_now = datetime.now(UTC)
    started = real_now - timedelta(days=40)
    due = clock.local_date(real_now - timedelta(days=14)).isoformat()
    references = []
    with clock.frozen_at(started):
        runtime = make_runtime(url, key_file)
        try:
            for _ in range(cases):
                reference = runtime.workflow.open_referral(
                    new_referral(received_on=clock.today() - timedelta(days=6)), by="cora"
                )
                _to_intervention(
                    runtime, reference, first_review=due, start=started - timedelta(days=4)
                )
                references.append(reference)
        finally:
            runtime.close()
    lee, chris = user_ids(url, "lee", "chris")
    keys = []
    for reference in references:
        occasion = f"{reference}:support_plan:{due}"
        keys += [
            f"case_assigned:{reference}:v4:user:{lee}",
            f"review_reminder:{occasion}:d7:user:{lee}",
            f"review_reminder:{occasion}:d0:user:{lee}",
            f"review_escalation:{occasion}:user:{chris}",
        ]
    return keys


def far_month() -> int:
    """A month at least six months from now, so no meeting notice falls due in these tests."""
    return (datetime.now(UTC).month + 5) % 12 + 1


def write_config(path: Path, extra: str = "") -> Path:
    month = far_month()
    path.write_text(
        f"[panel]\nmonths = [{month}]\n[board]\nmonths = [{month}]\n"
        "[schedule]\ndispatch_every_seconds = 1\nplan_every_minutes = 1\n" + extra
    )
    return path


# Reading the database and the mail ---------------------------------------------------


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql)).all()]
    finally:
        engine.dispose()


def user_ids(url: str, *names: str) -> list[int]:
    ids = dict(query(url, "SELECT name, id FROM users"))
    return [int(ids[name]) for name in names]


def outbox_statuses(url: str) -> dict[str, str]:
    return dict(query(url, "SELECT idempotency_key, status FROM outbox"))


def watermark(url: str) -> list[tuple[Any, ...]]:
    return query(url, "SELECT value FROM channelflow_meta WHERE key = 'planned_through'")


def mail_files(*folders: Path) -> Counter[str]:
    return Counter(path.name for folder in folders if folder.exists() for path in folder.iterdir())


def read_mail(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def received_keys(server: MailServer, keys: list[str]) -> Counter[str]:
    by_message_id = {message_id_for(key, SENDER): key for key in keys}
    return Counter(
        by_message_id[str(received.parsed()["Message-ID"])] for received in server.received
    )


def environment(url: str, key_file: Path, **extra: str) -> dict[str, str]:
    return {"CHANNELFLOW_DATABASE_URL": url, "CHANNELFLOW_KEY_FILE": str(key_file), **extra}


# A long-running `channelflow run` ---------------------------------------------------


class Running:
    """A `channelflow` process whose stderr is collected line by line as it runs."""

    def __init__(self, args: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
        environment.update(env)
        self.process = subprocess.Popen(
            args,
            cwd=cwd,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.out = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def channelflow(cls, *args: str, cwd: Path, env: dict[str, str]) -> Running:
        return cls([sys.executable, "-m", "channelflow", *args], cwd=cwd, env=env)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def count(self, phrase: str) -> int:
        return sum(phrase in line for line in list(self.lines))

    def wait_for(self, condition: Callable[[], bool], *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                self.finish()
                pytest.fail(f"channelflow exited with {self.process.returncode}:\n{self.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting; stderr so far:\n{self.stderr}")
            time.sleep(0.005)

    def finish(self, timeout: float = 30) -> int:
        """Wait for the exit (its stdout, a few lines, is kept in ``out``); the exit code."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        if self.process.stdout is not None and not self.process.stdout.closed:
            self.out = self.process.stdout.read()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


@pytest.fixture
def processes() -> Iterator[list[Running]]:
    """Every process a test starts is gone when it ends, whatever happened."""
    started: list[Running] = []
    yield started
    for running in started:
        running.stop()


class SlowMailServer(MailServer):
    """The loopback SMTP server, taking ``delay`` seconds over each message's DATA."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        take = self.handler.handle_DATA

        async def handle_DATA(server: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(delay)
            return await take(server, session, envelope)

        self.handler.handle_DATA = handle_DATA  # type: ignore[method-assign]


@pytest.fixture
def slow_mail_server(request: pytest.FixtureRequest) -> Iterator[SlowMailServer]:
    delay = getattr(request, "param", 0.02)
    server = SlowMailServer(delay)
    with server:
        yield server


# run --once on the fixed data set ----------------------------------------------------


def fixed_keys(url: str, reference: str) -> dict[str, str]:
    """Every email due by Thursday 7 January 2027 noon, each by its idempotency key."""
    chris, mel, lee = user_ids(url, "chris", "mel", "lee")
    review = f"{reference}:support_plan:{REVIEW_DUE}"
    return {
        # Agendas of the panels on 26 November and 31 December 2026, to chair and member.
        f"panel_agenda:panel-2026-11-26@channelflow:s0:user:{chris}": "chris@example.org",
        f"panel_agenda:panel-2026-11-26@channelflow:s0:user:{mel}": "mel@example.org",
        f"panel_agenda:panel-2026-12-31@channelflow:s0:user:{chris}": "chris@example.org",
        f"panel_agenda:panel-2026-12-31@channelflow:s0:user:{mel}": "mel@example.org",
        # The board of 13 January 2027, due 6 January: the chair (the admin has no address).
        f"board_reminder:board-2027-01-13@channelflow:s0:user:{chris}": "chris@example.org",
        # The review due Friday 20 November: 7 days before (Friday 13th) and on the day, then
        # escalated two working days after (Tuesday 24th).
        f"review_reminder:{review}:d7:user:{lee}": "lee@example.org",
        f"review_reminder:{review}:d0:user:{lee}": "lee@example.org",
        f"review_escalation:{review}:user:{chris}": "chris@example.org",
        # Queued when the case was accepted.
        f"case_assigned:{reference}:v4:user:{lee}": "lee@example.org",
    }


@pytest.mark.slow
def test_run_once_writes_the_due_agendas_reminders_and_board_reminder_once(
    database_url: str, tmp_path: Path
) -> None:
    key_file, mail = tmp_path / "audit.key", tmp_path / "mail"
    reference = fixed_data_set(database_url, key_file)
    env = environment(database_url, key_file, CHANNELFLOW_MAIL_DIR=str(mail))
    expected = fixed_keys(database_url, reference)

    first = run_subprocess("run", "--once", "--now", "2027-01-07T12:00", cwd=tmp_path, env=env)
    assert first.code == 0, first.err
    assert first.out == (
        "planned 8 email(s): board_reminder 1, panel_agenda 4, review_escalation 1, "
        "review_reminder 2\n"
        "sent 9, failed 0 (to retry), dead 0\n"
    )
    assert first.err == "channelflow: warning: not emailed, no email address: admin\n"
    assert mail_files(mail) == Counter(file_name(key) for key in expected)
    for key, recipient in expected.items():
        assert read_mail(mail / file_name(key))["To"] == recipient
    assert set(outbox_statuses(database_url).items()) == {(key, "sent") for key in expected}
    assert watermark(database_url) == [("2027-01-07T12:00:00+00:00",)]

    agenda = read_mail(mail / file_name(next(k for k in expected if "2026-12-31" in k)))
    assert agenda["Subject"] == "Channel panel agenda: Thursday 31 December 2026"
    body = agenda.get_body(preferencelist=("plain",))
    assert body is not None
    assert f"{reference}: support plan review due Friday 20 November 2026" in body.get_content()
    (invitation,) = [part for part in agenda.iter_attachments() if part.get_filename()]
    calendar = invitation.get_content()
    calendar = calendar.decode() if isinstance(calendar, bytes) else calendar
    assert "METHOD:REQUEST" in calendar
    assert "UID:panel-2026-12-31@channelflow" in calendar
    assert "SEQUENCE:0" in calendar

    written = {path.name: path.stat().st_mtime_ns for path in mail.iterdir()}
    again = run_subprocess("run", "--once", "--now", "2027-01-07T12:00", cwd=tmp_path, env=env)
    assert again.code == 0, again.err
    assert again.out == "planned 0 email(s)\nsent 0, failed 0 (to retry), dead 0\n"
    assert {path.name: path.stat().st_mtime_ns for path in mail.iterdir()} == written
    assert len(outbox_statuses(database_url)) == 9


@pytest.mark.slow
def test_the_next_agenda_goes_at_the_sending_time_five_working_days_before(
    database_url: str, tmp_path: Path
) -> None:
    key_file, mail = tmp_path / "audit.key", tmp_path / "mail"
    fixed_data_set(database_url, key_file)
    env = environment(database_url, key_file, CHANNELFLOW_MAIL_DIR=str(mail))
    first = run_subprocess("run", "--once", "--now", "2027-01-07T12:00", cwd=tmp_path, env=env)
    assert first.code == 0, first.err
    # The panel of Thursday 28 January 2027: its agenda is due Thursday 21st at 08:00.
    early = run_subprocess("run", "--once", "--now", "2027-01-21T07:59", cwd=tmp_path, env=env)
    assert early.out.splitlines()[0] == "planned 0 email(s)"
    due = run_subprocess("run", "--once", "--now", "2027-01-21T08:00", cwd=tmp_path, env=env)
    assert due.code == 0, due.err
    assert due.out.splitlines() == [
        "planned 2 email(s): panel_agenda 2",
        "sent 2, failed 0 (to retry), dead 0",
    ]
    chris, mel = user_ids(database_url, "chris", "mel")
    new = {
        file_name(f"panel_agenda:panel-2027-01-28@channelflow:s0:user:{u}") for u in (chris, mel)
    }
    assert new <= set(mail_files(mail))
    assert len(mail_files(mail)) == 11


@pytest.mark.slow
def test_the_demo_database_gets_agendas_reminders_and_a_board_reminder(tmp_path: Path) -> None:
    assert run_subprocess("init", "--demo", cwd=tmp_path).code == 0
    before = set(mail_files(tmp_path / "mail"))
    # A hundred days on, at least one quarterly board meeting's reminder has fallen due.
    later = (datetime.now(UTC) + timedelta(days=100)).isoformat(timespec="minutes")
    first = run_subprocess("run", "--once", "--now", later, cwd=tmp_path)
    assert first.code == 0, first.err
    assert first.out.startswith("planned ")
    written = set(mail_files(tmp_path / "mail")) - before
    kinds = Counter(name.split("_", 2)[0] + "_" + name.split("_", 2)[1] for name in written)
    assert kinds["panel_agenda"] >= 3
    assert kinds["board_reminder"] >= 1
    assert kinds["review_reminder"] >= 1
    again = run_subprocess("run", "--once", "--now", later, cwd=tmp_path)
    assert again.out == "planned 0 email(s)\nsent 0, failed 0 (to retry), dead 0\n"
    assert set(mail_files(tmp_path / "mail")) - before == written


# Crashes ----------------------------------------------------------------------------

KILL_BEFORE_COMMIT = """
import os, signal, sys

from channelflow.planning import planner


def die(self):
    # Everything is queued in the pass's transaction, which has not committed yet.
    os.kill(os.getpid(), signal.SIGKILL)


planner._Pass.advance_watermark = die

from channelflow.cli import main

main(sys.argv[1:])
"""


@pytest.mark.slow
def test_killed_in_the_middle_of_planning_nothing_is_half_planned_or_lost(
    database_url: str, tmp_path: Path, processes: list[Running]
) -> None:
    key_file, mail = tmp_path / "audit.key", tmp_path / "mail"
    keys = live_data_set(database_url, key_file, cases=20)
    config = write_config(tmp_path / "channelflow.toml")
    env = environment(
        database_url, key_file, CHANNELFLOW_MAIL_DIR=str(mail), CHANNELFLOW_CONFIG=str(config)
    )
    killed = Running([sys.executable, "-c", KILL_BEFORE_COMMIT, "run"], cwd=tmp_path, env=env)
    processes.append(killed)
    assert killed.finish(timeout=60) == -signal.SIGKILL, killed.stderr
    assert killed.count("queued review_reminder") == 40  # it got as far as queueing
    # The pass's transaction died with it: only what was queued before it started is there.
    assert outbox_statuses(database_url) == {k: "queued" for k in keys if "case_assigned" in k}
    assert watermark(database_url) == []
    assert not mail.exists()

    restarted = Running.channelflow("run", cwd=tmp_path, env=env)
    processes.append(restarted)
    restarted.wait_for(lambda: set(outbox_statuses(database_url).values()) == {"sent"})
    restarted.process.send_signal(signal.SIGTERM)
    assert restarted.finish() == 0, restarted.stderr
    assert "planned 60 email(s): review_escalation 20, review_reminder 40" in restarted.stderr
    assert sorted(outbox_statuses(database_url)) == sorted(keys)
    assert mail_files(mail) == Counter(file_name(key) for key in keys)
    assert len(watermark(database_url)) == 1


@pytest.mark.slow
def test_killed_in_the_middle_of_sending_nothing_is_lost_and_at_most_one_is_doubled(
    database_url: str,
    tmp_path: Path,
    slow_mail_server: SlowMailServer,
    processes: list[Running],
) -> None:
    key_file = tmp_path / "audit.key"
    keys = live_data_set(database_url, key_file, cases=60)
    config = write_config(tmp_path / "channelflow.toml")
    env = environment(
        database_url,
        key_file,
        CHANNELFLOW_CONFIG=str(config),
        **smtp_environment(slow_mail_server.port),
    )
    running = Running.channelflow("run", cwd=tmp_path, env=env)
    processes.append(running)
    running.wait_for(lambda: len(slow_mail_server.received) >= 30)
    running.process.kill()
    assert running.finish() == -signal.SIGKILL
    assert "planned 180 email(s): review_escalation 60, review_reminder 120" in running.stderr
    at_kill = outbox_statuses(database_url)
    assert sorted(at_kill) == sorted(keys)
    assert Counter(at_kill.values())["sent"] < len(keys)  # it was killed mid-pass

    # Restarted, it plans nothing new and sends what was never claimed; what the killed
    # process had claimed waits for its lease to run out.
    held = {key for key, status in at_kill.items() if status == "sending"}
    restarted = Running.channelflow("run", cwd=tmp_path, env=env)
    processes.append(restarted)

    def all_but_held_sent() -> bool:
        return {
            key for key, status in outbox_statuses(database_url).items() if status != "sent"
        } == held

    restarted.wait_for(all_but_held_sent)
    restarted.wait_for(lambda: restarted.count("planned 0 email(s)") == 1)
    time.sleep(1.5)  # a dispatch pass or two more, which must leave the claimed ones alone
    restarted.process.send_signal(signal.SIGTERM)
    assert restarted.finish() == 0, restarted.stderr
    assert "planned" not in restarted.stderr.replace("planned 0 email(s)", "")
    assert {k for k, s in outbox_statuses(database_url).items() if s == "sending"} == held

    # An hour on, the leases have run out: a pass (what `run --once` does, at that instant;
    # the command itself refuses a future --now with a real transport) sends the rest.
    final = run_once_later(env, hours=1)
    assert final.plan.total == 0
    assert len(final.dispatch.sent) == len(held)

    assert Counter(outbox_statuses(database_url).values()) == Counter({"sent": len(keys)})
    received = received_keys(slow_mail_server, keys)
    assert set(received) == set(keys)
    doubled = [key for key, count in received.items() if count > 1]
    # At most the one message the killed process had delivered but not yet recorded.
    assert len(doubled) <= 1, doubled
    assert all(at_kill[key] != "sent" for key in doubled)
    assert max(received.values()) <= 2


def run_once_later(env: dict[str, str], *, hours: int) -> RunReport:
    """One planning and sending pass as `channelflow run --once` makes it, ``hours`` from now."""
    with clock.frozen_at(datetime.now(UTC) + timedelta(hours=hours)):
        runtime = Runtime(Settings.from_environment(env))
        try:
            return Scheduler(
                runtime.planner, runtime.dispatcher, runtime.config.schedule
            ).run_once()
        finally:
            runtime.close()


# Signals ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("slow_mail_server", [0.3], indirect=True)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_it_promptly_after_the_email_in_flight(
    tmp_path: Path,
    slow_mail_server: SlowMailServer,
    processes: list[Running],
    signum: signal.Signals,
) -> None:
    url, key_file = f"sqlite:///{tmp_path / 'channelflow.db'}", tmp_path / "audit.key"
    keys = live_data_set(url, key_file, cases=10)
    config = write_config(tmp_path / "channelflow.toml")
    env = environment(
        url, key_file, CHANNELFLOW_CONFIG=str(config), **smtp_environment(slow_mail_server.port)
    )
    running = Running.channelflow("run", cwd=tmp_path, env=env)
    processes.append(running)
    # A success is logged while the next message is on its way, so once the second one is
    # logged the third is in flight (the server takes 0.3 s over each).
    running.wait_for(lambda: running.count("sent, attempt") >= 2)
    seen = running.count("sent, attempt")
    signalled = time.monotonic()
    running.process.send_signal(signum)
    code = running.finish(timeout=10)
    assert time.monotonic() - signalled < 10
    assert code == 0, running.stderr
    assert f"{signum.name} received: finishing the current email" in running.stderr
    assert running.lines[-1].rstrip().endswith("stopped")
    assert "Traceback" not in running.stderr

    statuses = outbox_statuses(url)
    sent = sorted(key for key, status in statuses.items() if status == "sent")
    # The one in flight was finished and recorded; nothing after it was started.
    assert len(sent) == seen + 1
    assert sorted(received_keys(slow_mail_server, keys).elements()) == sent
    assert Counter(statuses.values()) == Counter({"sent": seen + 1, "queued": len(keys) - seen - 1})


# Two processes at once ----------------------------------------------------------------


@pytest.mark.slow
def test_two_run_once_processes_at_the_same_instant_send_each_email_once(
    database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "audit.key"
    reference = fixed_data_set(database_url, key_file)
    expected = fixed_keys(database_url, reference)
    folders = [tmp_path / "mail-a", tmp_path / "mail-b"]
    runs = [
        Running.channelflow(
            "run",
            "--once",
            "--now",
            "2027-01-07T12:00",
            cwd=tmp_path,
            env=environment(database_url, key_file, CHANNELFLOW_MAIL_DIR=str(folder)),
        )
        for folder in folders
    ]
    for running in runs:
        assert running.finish(timeout=120) == 0, running.stderr
    outs = [running.out for running in runs]
    planned = [out.splitlines()[0] for out in outs]
    # One of them planned everything; the other planned nothing (it found the emails queued,
    # or another process planning).
    assert sorted(planned)[-1].startswith("planned 8 email(s)")
    assert sorted(planned)[0] in {
        "planned 0 email(s)",
        "another process is planning; this pass planned nothing",
    }
    sent = [int(out.splitlines()[1].split()[1].rstrip(",")) for out in outs]
    assert sum(sent) == 9
    assert sorted(outbox_statuses(database_url)) == sorted(expected)
    assert mail_files(*folders) == Counter(file_name(key) for key in expected)


# Bad configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[schedule]\nsend_time = 8\n", "unknown setting 'send_time' in [schedule]"),
        ('[schedule]\nsending_time = "25:00"\n', "[schedule] sending_time must be a local time"),
        ('[panel]\ntime = "9.30"\n', "[panel] time must be a local time"),
        ("[panel]\nmembers = 'mel'\n", "[panel] members must be a list of user names"),
        ("[schedule]\nplan_every_minutes = true\n", "[schedule] plan_every_minutes"),
        ("[panel\n", "is not valid TOML"),
    ],
)
def test_a_bad_configuration_file_stops_run_before_anything_is_planned(
    tmp_path: Path, config: str, message: str
) -> None:
    url, key_file = f"sqlite:///{tmp_path / 'channelflow.db'}", tmp_path / "audit.key"
    fixed_data_set(url, key_file)
    queued = outbox_statuses(url)
    path = tmp_path / "council.toml"
    path.write_text(config)
    env = environment(url, key_file, CHANNELFLOW_CONFIG=str(path))
    outcome = run_subprocess("run", "--once", "--now", "2027-01-07T12:00", cwd=tmp_path, env=env)
    assert_one_error(outcome, message)
    assert str(path) in outcome.err
    assert outbox_statuses(url) == queued
    assert watermark(url) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '[panel]\nmembers = ["mel", "nobody"]\n',
            "[panel] members in the configuration names no user 'nobody'",
        ),
        (
            '[board]\nmembers = ["ghost"]\n',
            "[board] members in the configuration names no user 'ghost'",
        ),
        (
            '[reminders]\nescalate_to = ["chris", "nemo"]\n',
            "[reminders] escalate_to in the configuration names no user 'nemo'",
        ),
    ],
)
def test_members_who_are_not_users_stop_run_before_anything_is_planned(
    tmp_path: Path, config: str, message: str
) -> None:
    url, key_file = f"sqlite:///{tmp_path / 'channelflow.db'}", tmp_path / "audit.key"
    fixed_data_set(url, key_file)
    queued = outbox_statuses(url)
    path = tmp_path / "channelflow.toml"
    path.write_text(config)
    # Found as ./channelflow.toml, without CHANNELFLOW_CONFIG.
    env = environment(url, key_file, CHANNELFLOW_MAIL_DIR=str(tmp_path / "mail"))
    outcome = run_subprocess("run", "--once", "--now", "2027-01-07T12:00", cwd=tmp_path, env=env)
    assert_one_error(outcome, message)
    assert outbox_statuses(url) == queued
    assert watermark(url) == []
    assert not (tmp_path / "mail").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--now", "2027-01-07T12:00"), "--now needs --once"),
        (("run", "--once", "--now", "tomorrow"), "--now must be a date"),
        (("run", "--once", "--now", "2027-13-01T12:00"), "--now must be a date"),
        (("run", "--once", "--now", "1899-12-31"), "before 1900"),
    ],
)
def test_a_bad_now_is_one_line_of_bad_input(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    url, key_file = f"sqlite:///{tmp_path / 'channelflow.db'}", tmp_path / "audit.key"
    fixed_data_set(url, key_file)
    outcome = run_subprocess(*args, cwd=tmp_path, env=environment(url, key_file))
    assert_one_error(outcome, message)
    assert watermark(url) == []


@pytest.mark.parametrize("now", ["9999-12-31T23:00-05:00", "9999-12-20T12:00"])
def test_a_now_at_the_end_of_the_calendar_is_bad_input_not_a_crash(
    tmp_path: Path, now: str
) -> None:
    url, key_file = f"sqlite:///{tmp_path / 'channelflow.db'}", tmp_path / "audit.key"
    fixed_data_set(url, key_file)
    outcome = run_subprocess(
        "run", "--once", "--now", now, cwd=tmp_path, env=environment(url, key_file)
    )
    assert outcome.code == 2, outcome.err
    assert outcome.err.count("\n") == 1
    assert watermark(url) == []


def assert_one_error(outcome: Outcome, message: str) -> None:
    assert outcome.code == 2, outcome.err
    assert outcome.out == ""
    assert outcome.err.startswith("channelflow: error: ")
    assert outcome.err.count("\n") == 1
    assert message in outcome.err
