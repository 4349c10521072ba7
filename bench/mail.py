"""Mail throughput: draining the outbox over SMTP, and rendering + queueing agenda emails.

Two benchmarks, each against a baseline measured in the same run:

* **dispatch**: N agenda-sized messages (``Kind.PANEL_AGENDA`` with 20-40 case references and
  the .ics invitation, distinct idempotency keys) queued in the outbox of a fresh database (a
  copied SQLite file; a ``CREATE DATABASE ... TEMPLATE`` copy on PostgreSQL), then
  ``Dispatcher(...).run_once()`` with ``SmtpTransport`` to a loopback aiosmtpd server, until
  all are sent. Baseline: plain ``smtplib.SMTP.sendmail`` of the same messages, already built
  before timing (the bytes the transport sends: ``Email.as_bytes()``, or
  ``Email.to_mime().as_bytes()`` in older code), over one connection. The server runs
  in its own process (it only counts what it receives), so its Python work does not share
  the measured process's GIL. Rounds alternate baseline, dispatcher, baseline, dispatcher ...;
  the figure is the median over rounds of dispatcher/plain.
* **enqueue** (SQLite): ``runtime.notifier.queue(connection, notices, now=...)`` inside
  ``write_connection(engine)``, 100 notices per transaction (as a planning pass would) and one
  per transaction, against the floor: the same already-rendered rows inserted with a plain
  ``executemany`` on ``sqlite3`` (and one ``execute`` per transaction), with the engine's
  pragmas. Within a round the sides alternate in chunks of 100 notices, rotating which goes
  first; each side writes to its own fresh copy of the same migrated database.

A breakdown pass (timers wrapped around the dispatcher's calls, after the rounds) says where
a dispatched message's time goes; ``--profile`` also saves cProfile statistics of one
dispatch pass and one enqueue pass to ``bench/results/``.

    .venv/bin/python bench/mail.py [--quick] [--messages 2000] [--rounds 5] [--profile]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import smtplib
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg

from benchlib import (
    PG_ADMIN_URL,
    checkpoint,
    filesystem,
    fresh_dir,
    machine,
    make_runtime,
    median,
    open_runtime,
    print_table,
    profile,
    sqlite_connect,
    write_json,
)
from channelflow import clock
from channelflow.notifications import outbox
from channelflow.notifications.dispatcher import Dispatcher
from channelflow.notifications.kinds import Kind, PanelAgenda, ReviewDue, sample
from channelflow.notifications.message import Email, attachments_to_json
from channelflow.notifications.notifier import Notice, Notifier
from channelflow.notifications.outbox import NewMessage
from channelflow.notifications.transports.smtp import SmtpSettings, SmtpTransport, TLSMode
from channelflow.store.db import open_engine, write_connection

SENDER = "channelflow@council.example.gov.uk"
DISPATCH_GOAL = 0.7  # dispatcher messages/s over plain smtplib's
ENQUEUE_GOAL = 1000.0  # agenda messages rendered and queued per second on SQLite
MEMBERS = 12  # panel members each agenda goes to
WARMUP = 50
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores channelflow's UTCDateTime

# The floor's statement: the columns and ON CONFLICT of outbox.enqueue's own INSERT.
COLUMNS = (
    "idempotency_key, kind, recipient, subject, body_text, body_html, attachments, status, "
    "attempts, next_attempt_at, outcome_unknown, created_at"
)
FLOOR_INSERT = (
    f"INSERT INTO outbox ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (idempotency_key) DO NOTHING"
)


# -- the messages -------------------------------------------------------------------------


def agenda(panel: int, rng: random.Random) -> PanelAgenda:
    """A panel's agenda naming 20-40 cases, split over the agenda's four lists."""
    base = sample(Kind.PANEL_AGENDA)
    assert isinstance(base, PanelAgenda)
    count = rng.randint(20, 40)
    refs = [f"CF-2026-{n:04d}" for n in rng.sample(range(1, 10000), count)]
    a, b, c = count * 4 // 10, count * 6 // 10, count * 8 // 10
    return replace(
        base,
        meeting=replace(
            base.meeting,
            uid=f"panel-{panel}@channelflow",
            starts_at=base.meeting.starts_at + timedelta(days=28 * panel),
        ),
        new_cases=tuple(refs[:a]),
        adjourned=tuple(refs[a:b]),
        reviews_due=tuple(
            ReviewDue(r, "support_plan", date(2026, 12, 3) + timedelta(days=i))
            for i, r in enumerate(refs[b:c])
        ),
        post_exit_reviews=tuple(
            ReviewDue(r, rng.choice(("post_exit_6", "post_exit_12")), date(2026, 11, 20))
            for r in refs[c:]
        ),
        counts_by_state=(("panel_review", count), ("intervention", rng.randint(1, 60))),
    )


def notices(count: int, seed: int) -> list[Notice]:
    """``count`` agenda notices: one agenda per panel, to each of its members."""
    rng = random.Random(seed)
    contexts = [agenda(panel, rng) for panel in range(count // MEMBERS + 1)]
    return [
        Notice(
            key=f"panel_agenda:panel-{i // MEMBERS}:v0:user:{i % MEMBERS + 1}",
            recipient=f"member{i % MEMBERS + 1}@council.example.gov.uk",
            context=contexts[i // MEMBERS],
        )
        for i in range(count)
    ]


def email_of(number: int, message: NewMessage, created_at: datetime) -> Email:
    """The Email ``outbox.claim`` builds from the row ``enqueue`` stores for ``message``."""
    return message.as_email(message_id=number, sender=SENDER, created_at=created_at)


def wire_bytes(email: Email) -> bytes:
    """What ``SmtpTransport`` hands to ``DATA`` for ``email``, built the way it builds it.

    ``Email.as_bytes()`` where the message is built directly, else (older code) the standard
    library's ``Email.to_mime().as_bytes()``.
    """
    if BUILT_DIRECTLY:
        return bytes(email.as_bytes())  # type: ignore[attr-defined]
    return email.to_mime().as_bytes()


BUILT_DIRECTLY = "as_bytes" in vars(Email)
BUILD_PATH = "Email.as_bytes()" if BUILT_DIRECTLY else "Email.to_mime().as_bytes()"


# -- the SMTP server, in its own process ---------------------------------------------------


def serve_sink() -> int:
    """``--sink``: an aiosmtpd server that counts what it takes; prints its port, then answers
    ``count`` on stdin with ``<messages> <octets>``, and stops at end of input."""
    from aiosmtpd.controller import Controller

    class Sink:
        messages = 0
        octets = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.messages += 1
            self.octets += len(envelope.original_content or b"")
            return "250 2.0.0 OK: queued"

    handler = Sink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    print(port, flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "count":
                print(handler.messages, handler.octets, flush=True)
    finally:
        controller.stop()
    return 0


class SinkProcess:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--sink"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def count(self) -> tuple[int, int]:
        assert self.process.stdout is not None
        assert self.process.stdin is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        messages, octets = self.process.stdout.readline().split()
        return int(messages), int(octets)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- dispatch ------------------------------------------------------------------------------


@dataclass
class Backend:
    """A database holding the queued messages, copied afresh for each pass."""

    name: str
    fresh: Callable[[str, int | None], str]  # (label, keep) -> URL of a new copy
    drop: Callable[[str], None]


@contextmanager
def sqlite_outbox(workdir: Path, messages: list[NewMessage], now: datetime) -> Iterator[Backend]:
    template = workdir / "outbox-template.db"
    runtime = make_runtime(f"sqlite:///{template}", workdir / "audit.key")
    queue_messages(runtime.engine, messages, now)
    runtime.close()
    checkpoint(template)

    def fresh(label: str, keep: int | None) -> str:
        path = workdir / f"outbox-{label}.db"
        shutil.copyfile(template, path)
        if keep is not None:
            connection = sqlite_connect(path)
            connection.execute("DELETE FROM outbox WHERE id > ?", (keep,))
            connection.close()
        return f"sqlite:///{path}"

    def drop(url: str) -> None:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    yield Backend("sqlite", fresh, drop)


@contextmanager
def postgres_outbox(workdir: Path, messages: list[NewMessage], now: datetime) -> Iterator[Backend]:
    prefix = f"cf_bench_mail_{os.getpid()}"
    template = f"{prefix}_template"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    engine_base = base.replace("postgresql://", "postgresql+psycopg://")
    made = [template]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{template}"')
    try:
        runtime = make_runtime(f"{engine_base}/{template}", workdir / "audit-pg.key")
        queue_messages(runtime.engine, messages, now)
        runtime.close()

        def fresh(label: str, keep: int | None) -> str:
            name = f"{prefix}_{label}"
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            made.append(name)
            if keep is not None:
                with psycopg.connect(f"{base}/{name}") as connection:
                    connection.execute("DELETE FROM outbox WHERE id > %s", (keep,))
            return f"{engine_base}/{name}"

        def drop(url: str) -> None:
            name = url.rsplit("/", 1)[1]
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        yield Backend("postgresql", fresh, drop)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            for name in made:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def queue_messages(engine: Any, messages: list[NewMessage], now: datetime) -> None:
    for start in range(0, len(messages), 500):
        with write_connection(engine) as connection:
            outbox.enqueue(connection, messages[start : start + 500], now=now)


def postgres_reachable() -> str | None:
    """``None`` when the PostgreSQL admin URL answers, else why not."""
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return type(error).__name__
    return None


def plain_pass(port: int, built: list[tuple[str, bytes]]) -> float:
    """Seconds for plain smtplib to send ``built`` (recipient, bytes) over one connection."""
    start = time.perf_counter()
    connection = smtplib.SMTP("127.0.0.1", port, timeout=30)
    for recipient, content in built:
        refused = connection.sendmail(SENDER, [recipient], content)
        assert not refused
    connection.quit()
    return time.perf_counter() - start


def dispatch_pass(url: str, sink: SinkProcess, expected: int) -> float:
    """Seconds for one ``Dispatcher.run_once`` to send everything queued at ``url``.

    Checked after the clock stops: the dispatcher reports every message sent and the server
    took every one (a transport can record a refusal as sent if it does not check replies).
    """
    engine = open_engine(url)
    with engine.connect():
        pass  # the pool's first connection (and its pragmas) is not what is measured
    before = sink.count()[0]
    try:
        start = time.perf_counter()
        dispatcher = Dispatcher(
            engine=engine,
            transport=SmtpTransport(SmtpSettings("127.0.0.1", sink.port, TLSMode.NONE)),
            sender=SENDER,
        )
        report = dispatcher.run_once()
        elapsed = time.perf_counter() - start
    finally:
        engine.dispose()
    received = sink.count()[0] - before
    if len(report.sent) != expected or report.failed or report.dead or report.stopped_because:
        raise RuntimeError(
            f"dispatcher sent {len(report.sent)} of {expected} (failed {len(report.failed)}, "
            f"dead {len(report.dead)}, stopped: {report.stopped_because})"
        )
    if received != expected:
        raise RuntimeError(
            f"the dispatcher recorded {expected} messages sent but the server accepted "
            f"{received}: the transport took a refusal for success"
        )
    return elapsed


def measure_dispatch(
    backend: Backend, sink: SinkProcess, built: list[tuple[str, bytes]], rounds: int
) -> dict[str, Any]:
    count = len(built)
    octets = sum(len(content) for _, content in built)
    # Warm-up, untimed: SQLAlchemy compiles its statements, both sides open their sockets.
    url = backend.fresh("warmup", WARMUP)
    dispatch_pass(url, sink, WARMUP)
    backend.drop(url)
    plain_pass(sink.port, built[:WARMUP])
    plain, dispatched, ratios = [], [], []
    for round_no in range(rounds):
        url = backend.fresh(f"r{round_no}", None)
        before = sink.count()
        plain_s = plain_pass(sink.port, built)
        middle = sink.count()
        dispatch_s = dispatch_pass(url, sink, count)
        after = sink.count()
        backend.drop(url)
        # The server took every message from both, and the same number of octets.
        assert (middle[0] - before[0], after[0] - middle[0]) == (count, count)
        assert (middle[1] - before[1], after[1] - middle[1]) == (octets, octets)
        p, d = count / plain_s, count / dispatch_s
        plain.append(p)
        dispatched.append(d)
        ratios.append(d / p)
        print(
            f"  dispatch {backend.name} round {round_no + 1}: plain {p:,.0f}/s, "
            f"dispatcher {d:,.0f}/s, ratio {d / p:.3f}",
            flush=True,
        )
    return {
        "plain_per_s": plain,
        "dispatcher_per_s": dispatched,
        "ratios": ratios,
        "median_plain_per_s": median(plain),
        "median_dispatcher_per_s": median(dispatched),
        "median_ratio": median(ratios),
        "goal_ratio": DISPATCH_GOAL,
        "met": median(ratios) >= DISPATCH_GOAL,
    }


# The calls that build a message's bytes, in the code being measured.
BUILD_CALLS: list[tuple[str, Any, str]] = (
    [("Email.as_bytes()", Email, "as_bytes")]
    if BUILT_DIRECTLY
    else [
        ("Email.to_mime()", Email, "to_mime"),
        ("EmailMessage.as_bytes()", EmailMessage, "as_bytes"),
    ]
)


@contextmanager
def timed_calls() -> Iterator[tuple[dict[str, float], Counter[str]]]:
    """Wrap the dispatcher's main calls with timers (in this process only; nothing is edited).

    Times are exclusive: a timed call made inside another (a record made while the SMTP
    server answers, the socket I/O inside ``SmtpTransport.send``) counts only once.
    """
    targets: list[tuple[str, Any, str]] = [
        ("outbox.claim", outbox, "claim"),
        ("outbox.record_sent", outbox, "record_sent"),
        ("SmtpTransport.send", SmtpTransport, "send"),
        *BUILD_CALLS,
        ("SMTP socket I/O", smtplib.SMTP, "send"),
        ("SMTP socket I/O", smtplib.SMTP, "getreply"),
    ]
    spent: dict[str, float] = defaultdict(float)
    calls: Counter[str] = Counter()
    nested: list[float] = []  # per open timed call: time spent in timed calls inside it
    saved = []
    for label, owner, name in targets:
        own = name in vars(owner)
        original = getattr(owner, name)

        def timer(*args: Any, _f: Any = original, _label: str = label, **kwargs: Any) -> Any:
            nested.append(0.0)
            start = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                spent[_label] += elapsed - nested.pop()
                calls[_label] += 1
                if nested:
                    nested[-1] += elapsed

        saved.append((owner, name, vars(owner).get(name), own))
        setattr(owner, name, timer)
    try:
        yield spent, calls
    finally:
        for owner, name, original, own in reversed(saved):
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)


def dispatch_breakdown(backend: Backend, sink: SinkProcess, count: int) -> dict[str, Any]:
    """One more pass with timers: microseconds per message in each of the dispatcher's calls."""
    url = backend.fresh("breakdown", None)
    with timed_calls() as (spent, calls):
        total = dispatch_pass(url, sink, count)
    backend.drop(url)
    per = {label: spent[label] / count * 1e6 for label in spent}
    parts = {
        "outbox.claim (per message)": per.get("outbox.claim", 0.0),
        **{label: per.get(label, 0.0) for label, _, _ in BUILD_CALLS},
        "SMTP socket I/O (send + wait for replies)": per.get("SMTP socket I/O", 0.0),
        "rest of SmtpTransport.send": per.get("SmtpTransport.send", 0.0),
        "outbox.record_sent": per.get("outbox.record_sent", 0.0),
    }
    parts["rest of the dispatcher"] = total / count * 1e6 - sum(parts.values())
    return {
        "messages": count,
        "total_us_per_message": total / count * 1e6,
        "us_per_message": parts,
        "calls": dict(calls),
    }


# -- enqueue -------------------------------------------------------------------------------

SIDES = ("render only", "queue, 100/txn", "queue, 1/txn", "floor executemany", "floor 1/txn")


def side_copy(workdir: Path, template: Path, round_no: int, side: str) -> Path:
    """A fresh copy of the empty migrated database for one side of one round."""
    path = workdir / f"enqueue-r{round_no}-{SIDES.index(side)}.db"
    shutil.copyfile(template, path)
    return path


def floor_rows(messages: list[NewMessage], now: datetime) -> list[tuple[Any, ...]]:
    """The values ``outbox.enqueue`` binds for each message, ready for sqlite3."""
    stamp = now.astimezone(UTC).strftime(SQLITE_TIME)
    return [
        (
            m.idempotency_key,
            m.kind,
            m.recipient,
            m.subject,
            m.text,
            m.html,
            attachments_to_json(m.attachments),
            "queued",
            0,
            stamp,
            0,
            stamp,
        )
        for m in messages
    ]


class EnqueueSides:
    """One round's five sides, each (but "render only") on its own fresh database copy."""

    def __init__(
        self,
        workdir: Path,
        template: Path,
        key_file: Path,
        round_no: int,
        items: list[Notice],
        rows: list[tuple[Any, ...]],
        now: datetime,
    ) -> None:
        self.items, self.rows, self.now = items, rows, now
        self.paths = {side: side_copy(workdir, template, round_no, side) for side in SIDES[1:]}
        self.batched = open_runtime(f"sqlite:///{self.paths[SIDES[1]]}", key_file)
        self.single = open_runtime(f"sqlite:///{self.paths[SIDES[2]]}", key_file)
        for runtime in (self.batched, self.single):
            with runtime.engine.connect():
                pass  # schema check and the pool's first connection, untimed
        self.raw_many = sqlite_connect(self.paths[SIDES[3]])
        self.raw_one = sqlite_connect(self.paths[SIDES[4]])
        self.notifier = self.batched.notifier
        self.work = dict(
            zip(
                SIDES,
                (
                    self.render_only,
                    self.queue_batched,
                    self.queue_single,
                    self.floor_many,
                    self.floor_single,
                ),
                strict=True,
            )
        )

    def render_only(self, part: slice) -> None:
        for notice in self.items[part]:
            self.notifier.message(notice, now=self.now)

    def queue_batched(self, part: slice) -> None:
        runtime = self.batched
        with write_connection(runtime.engine) as connection:
            queued = runtime.notifier.queue(connection, self.items[part], now=self.now)
        assert queued == len(self.items[part])

    def queue_single(self, part: slice) -> None:
        runtime = self.single
        for notice in self.items[part]:
            with write_connection(runtime.engine) as connection:
                assert runtime.notifier.queue(connection, [notice], now=self.now) == 1

    def floor_many(self, part: slice) -> None:
        cursor = self.raw_many.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        cursor.executemany(FLOOR_INSERT, self.rows[part])
        cursor.execute("COMMIT")

    def floor_single(self, part: slice) -> None:
        cursor = self.raw_one.cursor()
        for row in self.rows[part]:
            cursor.execute("BEGIN IMMEDIATE")
            cursor.execute(FLOOR_INSERT, row)
            cursor.execute("COMMIT")

    def check_and_close(self, expected: int) -> None:
        """Every side stored the same rows (ids too), so the floor wrote the same data."""
        self.batched.close()
        self.single.close()
        self.raw_many.close()
        self.raw_one.close()
        query = f"SELECT id, {COLUMNS} FROM outbox ORDER BY id"
        found = []
        for path in self.paths.values():
            connection = sqlite_connect(path)
            found.append(connection.execute(query).fetchall())
            connection.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        assert len(found[0]) == expected, (len(found[0]), expected)
        assert all(rows == found[0] for rows in found[1:]), "the sides stored different rows"


def measure_enqueue(
    workdir: Path, items: list[Notice], rounds: int, chunk: int, now: datetime
) -> dict[str, Any]:
    key_file = workdir / "audit-enqueue.key"
    template = workdir / "enqueue-template.db"
    make_runtime(f"sqlite:///{template}", key_file).close()
    checkpoint(template)
    notifier = open_runtime(f"sqlite:///{template}", key_file).notifier  # as the sides render
    rendered = [notifier.message(notice, now=now) for notice in items]
    rows = floor_rows(rendered, now)
    count = len(items)
    per_side: dict[str, list[float]] = {side: [] for side in SIDES}
    for round_no in range(-1, rounds):  # round -1 is a warm-up, not recorded
        size = WARMUP if round_no < 0 else count
        sides = EnqueueSides(workdir, template, key_file, round_no, items, rows, now)
        spent = dict.fromkeys(SIDES, 0.0)
        for index, start in enumerate(range(0, size, chunk)):
            part = slice(start, min(start + chunk, size))
            for offset in range(len(SIDES)):
                side = SIDES[(index + offset) % len(SIDES)]
                began = time.perf_counter()
                sides.work[side](part)
                spent[side] += time.perf_counter() - began
        sides.check_and_close(size)
        if round_no < 0:
            continue
        rates = {side: size / spent[side] for side in SIDES}
        for side in SIDES:
            per_side[side].append(rates[side])
        print(
            f"  enqueue round {round_no + 1}: "
            + ", ".join(f"{side} {rate:,.0f}/s" for side, rate in rates.items()),
            flush=True,
        )
    medians = {side: median(values) for side, values in per_side.items()}
    return {
        "per_s": per_side,
        "median_per_s": medians,
        "batched_over_floor": [
            q / f for q, f in zip(per_side[SIDES[1]], per_side[SIDES[3]], strict=True)
        ],
        "single_over_floor": [
            q / f for q, f in zip(per_side[SIDES[2]], per_side[SIDES[4]], strict=True)
        ],
        "goal_per_s": ENQUEUE_GOAL,
        "met_batched": medians[SIDES[1]] >= ENQUEUE_GOAL,
        "met_single": medians[SIDES[2]] >= ENQUEUE_GOAL,
        "rendered_octets": {
            "text": median([len(m.text) for m in rendered]),
            "html": median([len(m.html) for m in rendered]),
            "attachments_json": median([len(r[6]) for r in rows]),
        },
    }


# -- profiles ------------------------------------------------------------------------------


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N, for a smoke run")
    parser.add_argument("--messages", type=int, default=None, help="dispatched per round (2000)")
    parser.add_argument("--notices", type=int, default=None, help="queued per round (2000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (5; --quick 2)")
    parser.add_argument("--chunk", type=int, default=100, help="enqueue sides alternate every N")
    parser.add_argument(
        "--backend", action="append", choices=("sqlite", "postgresql"), default=None
    )
    parser.add_argument("--only", choices=("dispatch", "enqueue"), default=None)
    parser.add_argument("--profile", action="store_true", help="also save cProfile statistics")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        return serve_sink()
    messages = args.messages or (100 if args.quick else 2000)
    notice_count = args.notices or (200 if args.quick else 2000)
    rounds = args.rounds or (2 if args.quick else 5)
    backends = args.backend or ["sqlite", "postgresql"]
    now = clock.now()
    workdir = fresh_dir("mail")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "benchmark": "mail",
        "machine": machine(),
        "params": {
            "messages_per_round": messages,
            "notices_per_round": notice_count,
            "rounds": rounds,
            "chunk": args.chunk,
            "warmup": WARMUP,
            "seed": args.seed,
            "kind": "panel_agenda, 20-40 case references, .ics attached",
            "message_build": BUILD_PATH,
            "channelflow_source": str(Path(clock.__file__).parent),
        },
        "sqlite_dir": str(workdir),
        "sqlite_filesystem": filesystem(workdir),
        "dispatch": {},
    }
    try:
        if args.only != "enqueue":
            run_dispatch(results, workdir, backends, messages, rounds, args, now)
        if args.only != "dispatch":
            print(f"enqueue: {notice_count} agenda notices per round and side", flush=True)
            items = notices(notice_count, args.seed)
            results["enqueue"] = measure_enqueue(workdir, items, rounds, args.chunk, now)
            if args.profile:
                results["enqueue"]["profile"] = profile_enqueue(workdir, items, now)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = time.perf_counter() - started
    report(results)
    print(f"\nwrote {write_json('mail', results)} ({results['elapsed_s']:.0f} s)")
    return 0


def run_dispatch(
    results: dict[str, Any],
    workdir: Path,
    backends: Sequence[str],
    count: int,
    rounds: int,
    args: argparse.Namespace,
    now: datetime,
) -> None:
    print(f"dispatch: rendering {count} agenda messages, building them ({BUILD_PATH})", flush=True)
    notifier = Notifier(sender=SENDER)
    rendered = [notifier.message(notice, now=now) for notice in notices(count, args.seed)]
    began = time.perf_counter()
    emails = [email_of(i + 1, m, now) for i, m in enumerate(rendered)]
    built = [(e.recipient, wire_bytes(e)) for e in emails]
    build_us = (time.perf_counter() - began) / count * 1e6
    results["message_octets"] = median([len(content) for _, content in built])
    results["build_us_per_message"] = build_us  # measured while setting up
    sink = SinkProcess()
    try:
        for name in backends:
            if name == "postgresql" and (why := postgres_reachable()) is not None:
                print(f"dispatch postgresql: skipped, {PG_ADMIN_URL} unreachable ({why})")
                results["dispatch"]["postgresql"] = {"skipped": why}
                continue
            factory = sqlite_outbox if name == "sqlite" else postgres_outbox
            print(f"dispatch {name}: queueing {count} messages in a template outbox", flush=True)
            with factory(workdir, rendered, now) as backend:
                result = measure_dispatch(backend, sink, built, rounds)
                result["breakdown"] = dispatch_breakdown(backend, sink, count)
                if args.profile:
                    url = backend.fresh("profile", None)
                    result["profile"] = profile(
                        f"mail-dispatch-{name}", lambda u=url: dispatch_pass(u, sink, count)
                    )
                    backend.drop(url)
                results["dispatch"][name] = result
    finally:
        with suppress(Exception):
            sink.close()


def profile_enqueue(workdir: Path, items: list[Notice], now: datetime) -> str:
    path = workdir / "enqueue-profile.db"
    runtime = make_runtime(f"sqlite:///{path}", workdir / "audit-profile.key")

    def run() -> None:
        for start in range(0, len(items), 100):
            with write_connection(runtime.engine) as connection:
                runtime.notifier.queue(connection, items[start : start + 100], now=now)

    try:
        return profile("mail-enqueue-sqlite", run)
    finally:
        runtime.close()


def report(results: dict[str, Any]) -> None:
    params = results["params"]
    rows = []
    for name, res in results["dispatch"].items():
        if "skipped" in res:
            rows.append((name, "-", "-", "-", "-", f"skipped ({res['skipped']})"))
            continue
        spread = " / ".join(f"{r:.3f}" for r in res["ratios"])
        rows.append(
            (
                name,
                res["median_plain_per_s"],
                res["median_dispatcher_per_s"],
                f"{res['median_ratio']:.3f} ({spread})",
                f">= {DISPATCH_GOAL}",
                "yes" if res["met"] else "NO",
            )
        )
    if rows:
        print_table(
            f"dispatch to loopback SMTP, messages/s, median of {params['rounds']} rounds x "
            f"{params['messages_per_round']} ({results['message_octets']:,.0f} octets each)",
            (
                "backend",
                "plain smtplib/s",
                "dispatcher/s",
                "dispatcher/plain (rounds)",
                "goal",
                "met",
            ),
            rows,
        )
        for name, res in results["dispatch"].items():
            if "breakdown" not in res:
                continue
            breakdown = res["breakdown"]
            total = breakdown["total_us_per_message"]
            plain_us = 1e6 / res["median_plain_per_s"]
            print_table(
                f"where a dispatched message's time goes, {name} (one pass with timers, "
                f"{total:,.0f} us/message; plain smtplib {plain_us:,.0f} us/message)",
                ("call", "us/message", "share"),
                [(k, v, f"{v / total:.0%}") for k, v in breakdown["us_per_message"].items()],
            )
    enqueue = results.get("enqueue")
    if enqueue:
        med = enqueue["median_per_s"]
        spreads = {
            side: " / ".join(f"{v:,.0f}" for v in values)
            for side, values in enqueue["per_s"].items()
        }
        goal = f">= {ENQUEUE_GOAL:,.0f}/s"
        print_table(
            f"render + queue agenda messages on SQLite, messages/s, median of "
            f"{params['rounds']} rounds x {params['notices_per_round']}",
            ("side", "median/s", "rounds", "goal", "met"),
            [
                (SIDES[0], med[SIDES[0]], spreads[SIDES[0]], "", ""),
                (SIDES[1], med[SIDES[1]], spreads[SIDES[1]], goal, _yes(enqueue["met_batched"])),
                (SIDES[2], med[SIDES[2]], spreads[SIDES[2]], goal, _yes(enqueue["met_single"])),
                (SIDES[3], med[SIDES[3]], spreads[SIDES[3]], "(floor)", ""),
                (SIDES[4], med[SIDES[4]], spreads[SIDES[4]], "(floor)", ""),
            ],
        )
        ratio = median(enqueue["batched_over_floor"])
        print(
            f"  queue 100/txn over its floor: {ratio:.3f}; "
            f"1/txn over its floor: {median(enqueue['single_over_floor']):.3f}"
        )


def _yes(met: bool) -> str:
    return "yes" if met else "NO"


if __name__ == "__main__":
    sys.exit(main())
