"""Scheduler planning at 100,000 referrals: a planning pass with nothing new due, and one agenda.

Issue #4's goals, each measured against its floor in the same run: one plain SQL query on the
bare driver (``sqlite3``, or psycopg in autocommit) reading the rows the work needs.

* **planning pass** (goal < 1 s): ``Planner.plan(now=...)`` from ``Runtime.planner`` (the
  default configuration), after one untimed pass at the same instant planned everything
  already due, so the measured passes queue nothing (checked after each). Each measured pass
  is 10 ms after the one before, as successive scheduler passes would be. Two instants, each
  on its own copy of the data set: the current time, and the morning of the next panel (one
  hour before it starts: its agenda has gone out, so a pass looks for addenda, and every
  reminder and escalation due by then is known to the outbox and must be looked up).
  Floor: the referrals in ``intervention`` whose ``next_review_on`` is in the pass's review
  range ``UNION ALL`` the unrecorded ``post_exit_review`` rows due in that range (with each
  case's reference, lead and ``updated_at``): the rows a pass must read at the least.
* **panel agenda** (goal < 100 ms): ``build_agenda(connection, calendar, meeting, now=...)``
  for the next panel at the current time, on a pooled connection in its own read transaction
  (the calendar is loaded once, untimed, as a pass does). Floor: one ``UNION ALL`` query
  reading the ``panel_review`` cases for that panel with whether each was adjourned, the
  ``intervention`` reviews due by it, the unrecorded post-exit reviews due by it and the
  counts by state; its row counts are checked against the agenda's. The same four SELECTs
  run one after another on the bare driver are timed too (reported, not the floor): on
  PostgreSQL one statement can get a worse plan than its parts.

Each round runs every side ``--calls`` times, alternating which goes first; a round's figure is
the median of its calls, and the script reports the median over rounds (and the slowest call).
The data set is built with ``channelflow init --demo --referrals N`` (timed, in a separate
process) into ``bench/results/planning-cache/`` (SQLite) and into the PostgreSQL database
``cf_bench_planning_cache``; ``--reuse`` keeps a cached build of the same size and schema.
Working copies (a copied file; ``CREATE DATABASE ... TEMPLATE`` as ``cf_bench_planning_<pid>_*``)
are dropped at the end. One extra instrumented call per measurement counts the SQL statements
and their execute time; ``--profile`` also saves cProfile statistics to ``bench/results/``.

    .venv/bin/python bench/planning.py [--referrals 100000] [--backend sqlite|postgresql]
                                       [--reuse] [--rounds 15] [--calls 5] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, event

from benchlib import (
    CHANNELFLOW,
    PG_ADMIN_URL,
    RESULTS,
    checkpoint,
    filesystem,
    fresh_dir,
    machine,
    median,
    print_table,
    profile,
    sqlite_connect,
    write_json,
)
from channelflow import clock
from channelflow.config import Config
from channelflow.meetings.calendar import MeetingCalendar, ScheduledMeeting
from channelflow.planning.agenda import AgendaWindow, build_agenda
from channelflow.planning.planner import PlanReport
from channelflow.runtime import Runtime
from channelflow.settings import Settings
from channelflow.states import referral as lc
from channelflow.store import schema

CACHE = RESULTS / "planning-cache"
PG_CACHE_DB = "cf_bench_planning_cache"
PASS_GOAL_MS = 1000.0
AGENDA_GOAL_MS = 100.0
STEP = timedelta(milliseconds=10)  # between successive measured passes
MORNING = timedelta(hours=1)  # the panel-morning pass runs this long before the meeting
# Untimed calls before the rounds (recorded apart): psycopg prepares a statement on its 6th run
# and PostgreSQL may switch a prepared statement to its generic plan after 5 more.
WARMUP = 12


# -- the data set ----------------------------------------------------------------------------


def demo_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
    env["CHANNELFLOW_KEY_FILE"] = str(folder / "channelflow.key")
    env["CHANNELFLOW_MAIL_TRANSPORT"] = "file"  # the demo sends its pending emails
    env["CHANNELFLOW_MAIL_DIR"] = str(folder / "mail")
    return env


def load_demo(folder: Path, db: str, referrals: int) -> dict[str, Any]:
    """`channelflow init --demo` into ``db`` (a file or URL), timed; the data set's summary."""
    print(f"loading the demo with {referrals:,} referrals into {db} ...", flush=True)
    command = [str(CHANNELFLOW), "init", "--demo", "--referrals", str(referrals), "--json"]
    start = time.perf_counter()
    completed = subprocess.run(
        [*command, "--db", db],
        env=demo_env(folder),
        cwd=folder,  # no channelflow.toml here: the defaults apply
        capture_output=True,
        text=True,
        check=False,
    )
    load_s = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"channelflow init exited {completed.returncode}: {completed.stderr}")
    summary = json.loads(completed.stdout)["demo"]
    print(f"  loaded in {load_s:.1f} s", flush=True)
    return {
        "referrals": referrals,
        "events": summary["events"],
        "by_state": summary["by_state"],
        "load_s": load_s,
        "schema": schema.head_revision(),
        "built": machine()["date"],
    }


def cached_meta(folder: Path, referrals: int) -> dict[str, Any] | None:
    try:
        meta: dict[str, Any] = json.loads((folder / "meta.json").read_text())
    except FileNotFoundError:
        return None
    fits = meta.get("referrals") == referrals and meta.get("schema") == schema.head_revision()
    return meta if fits and (folder / "channelflow.key").exists() else None


def save_meta(folder: Path, meta: dict[str, Any]) -> None:
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def pg_admin(statement: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(statement)


def pg_exists(name: str) -> bool:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def postgres_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return type(error).__name__
    return None


def postgres_settings() -> dict[str, str]:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        names = ("server_version", "fsync", "synchronous_commit", "shared_buffers")
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}


@dataclass
class Backend:
    """A working copy of the cached data set, and bare-driver access to it for the floors."""

    name: str
    url: str  # SQLAlchemy URL of the working copy
    key_file: Path
    raw: Callable[[], Any]  # a bare driver connection (autocommit) to the working copy

    def param(self, day: date) -> Any:
        """How a date is bound on the bare driver (SQLite stores ISO text)."""
        return day if self.name == "postgresql" else day.isoformat()

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.name == "postgresql" else text


def sqlite_cache(referrals: int, reuse: bool) -> tuple[dict[str, Any], bool]:
    folder = CACHE / "sqlite"
    meta = cached_meta(folder, referrals) if reuse else None
    if meta is not None and (folder / "channelflow.db").exists():
        return meta, True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    meta = load_demo(folder, str(folder / "channelflow.db"), referrals)
    checkpoint(folder / "channelflow.db")
    meta["db_bytes"] = (folder / "channelflow.db").stat().st_size
    save_meta(folder, meta)
    return meta, False


def postgres_cache(referrals: int, reuse: bool) -> tuple[dict[str, Any], bool]:
    folder = CACHE / "postgresql"
    meta = cached_meta(folder, referrals) if reuse else None
    if meta is not None and pg_exists(PG_CACHE_DB):
        return meta, True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pg_admin(f'DROP DATABASE IF EXISTS "{PG_CACHE_DB}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{PG_CACHE_DB}"')
    meta = load_demo(folder, f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{PG_CACHE_DB}", referrals)
    # Statistics as autovacuum would soon have them on a live database (copies inherit them).
    with psycopg.connect(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{PG_CACHE_DB}") as connection:
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE")
        size = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    meta["db_bytes"] = int(size[0]) if size else None
    save_meta(folder, meta)
    return meta, False


@contextmanager
def working_copy(name: str, workdir: Path, label: str) -> Iterator[Backend]:
    """A fresh copy of the cached data set, removed afterwards."""
    if name == "sqlite":
        folder = CACHE / "sqlite"
        path = workdir / f"{label}.db"
        shutil.copyfile(folder / "channelflow.db", path)
        try:
            yield Backend(
                name, f"sqlite:///{path}", folder / "channelflow.key", lambda: sqlite_connect(path)
            )
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    copy = f"cf_bench_planning_{os.getpid()}_{label}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    pg_admin(f'CREATE DATABASE "{copy}" TEMPLATE "{PG_CACHE_DB}"')
    try:
        yield Backend(
            name,
            f"{base}/{copy}".replace("postgresql://", "postgresql+psycopg://"),
            CACHE / "postgresql" / "channelflow.key",
            lambda: psycopg.connect(f"{base}/{copy}", autocommit=True),
        )
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')


def open_runtime(backend: Backend, config_file: Path) -> Runtime:
    return Runtime(
        Settings(
            database_url=backend.url,
            key_file=backend.key_file,
            user=None,
            reference_prefix="CF",
            config_file=config_file,
        )
    )


# -- the floors ------------------------------------------------------------------------------

PASS_FLOOR = (
    "SELECT r.reference, r.lead, r.next_review_on AS due_on, NULL AS months, r.updated_at "
    "FROM referral r WHERE r.state = ? AND r.next_review_on BETWEEN ? AND ? "
    "UNION ALL "
    "SELECT r.reference, r.lead, p.due_on, p.months, r.updated_at "
    "FROM post_exit_review p JOIN referral r ON r.id = p.referral_id "
    "WHERE p.recorded_on IS NULL AND p.due_on BETWEEN ? AND ?"
)


def review_range(config: Config, since: datetime, now: datetime) -> tuple[date, date]:
    """The dates a pass reads reviews for (``_Pass.review_range`` in planning/planner.py)."""
    reminders = config.reminders
    span = 2 * reminders.escalate_after_working_days + 21
    today = clock.local_date(now)
    first = min(clock.local_date(since), today) - timedelta(days=span)
    return first, today + timedelta(days=max(reminders.days_before) + 7)


def agenda_floor(backend: Backend, window: AgendaWindow) -> list[tuple[str, tuple[Any, ...]]]:
    """The agenda's rows: four SELECTs (``part`` says which list a row is for), which the floor
    runs as one ``UNION ALL`` query; run apart, they are the floor's own split for comparison."""

    def covers(column: str) -> tuple[str, tuple[Any, ...]]:
        if window.after is None:
            return f"{column} <= ?", (backend.param(window.day),)
        return f"{column} <= ? AND {column} > ?", (
            backend.param(window.day),
            backend.param(window.after),
        )

    panel, panel_args = covers("r.panel_on")
    plans, plans_args = covers("r.next_review_on")
    post, post_args = covers("p.due_on")
    arms = [
        (
            "SELECT 'case' AS part, r.reference AS name, CAST(NULL AS DATE) AS due_on, "
            "CAST(NULL AS INTEGER) AS number, "
            "EXISTS (SELECT 1 FROM audit_event a WHERE a.entity_type = 'referral' "
            "AND a.entity_id = r.reference AND a.event = ?) AS adjourned "
            f"FROM referral r WHERE r.state = ? AND {panel}",
            (lc.ADJOURN, lc.PANEL_REVIEW, *panel_args),
        ),
        (
            "SELECT 'plan', r.reference, r.next_review_on, NULL, NULL "
            f"FROM referral r WHERE r.state = ? AND {plans}",
            (lc.INTERVENTION, *plans_args),
        ),
        (
            "SELECT 'post', r.reference, p.due_on, p.months, NULL "
            "FROM post_exit_review p JOIN referral r ON r.id = p.referral_id "
            f"WHERE p.recorded_on IS NULL AND {post}",
            post_args,
        ),
        ("SELECT 'count', r.state, NULL, count(*), NULL FROM referral r GROUP BY r.state", ()),
    ]
    return [(backend.sql(sql), args) for sql, args in arms]


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Side:
    run: Callable[[], Any]
    check: Callable[[Any], None] = lambda _result: None


def alternate(sides: dict[str, Side], rounds: int, calls: int) -> dict[str, list[list[float]]]:
    """Seconds per call, per round and side; sides alternate call by call, and which goes
    first alternates too. Round -1 is the warm-up (``WARMUP`` calls), not counted."""
    names = list(sides)
    times: dict[str, list[list[float]]] = {name: [] for name in names}
    for round_no in range(-1, rounds):
        spent: dict[str, list[float]] = {name: [] for name in names}
        for call in range(WARMUP if round_no < 0 else calls):
            for name in names if (round_no + call) % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                result = sides[name].run()
                spent[name].append(time.perf_counter() - start)
                sides[name].check(result)
        for name in names:
            times[name].append(spent[name])
    return times


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def summarise(
    every: dict[str, list[list[float]]], measured: str, floor: str, first: tuple[float, float]
) -> dict[str, Any]:
    """Medians over rounds; ``first`` is each side's first call (before the warm-up)."""
    warmup = {name: [s * 1e3 for s in per[0]] for name, per in every.items()}
    times = {name: per[1:] for name, per in every.items()}
    rounds = {name: [median(calls) * 1e3 for calls in per] for name, per in times.items()}
    ratios = [m / f for m, f in zip(rounds[measured], rounds[floor], strict=True)]
    return {
        "first_call_ms": first[0] * 1e3,
        "floor_first_call_ms": first[1] * 1e3,
        "warmup_ms": warmup,
        "round_median_ms": rounds,
        "calls_ms": {name: [[s * 1e3 for s in c] for c in per] for name, per in times.items()},
        "median_ms": median(rounds[measured]),
        "floor_median_ms": median(rounds[floor]),
        "max_ms": max(max(c) for c in times[measured]) * 1e3,
        "floor_max_ms": max(max(c) for c in times[floor]) * 1e3,
        "ratios": ratios,
        "median_ratio": median(ratios),
    }


def statements(engine: Engine, run: Callable[[], Any]) -> dict[str, Any]:
    """One call with SQLAlchemy's cursor events on: statements run and time in execute.

    Statements run on the driver directly (BEGIN, the PostgreSQL writers' lock) are not seen;
    SQLite steps most rows after ``execute`` returns, so fetching is not all counted here.
    """
    started: list[float] = []
    found: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def before(*_args: Any) -> None:
        started.append(time.perf_counter())

    def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        entry = found[" ".join(statement.split())[:110]]
        entry[0] += 1
        entry[1] += time.perf_counter() - started.pop()

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        start = time.perf_counter()
        run()
        total = time.perf_counter() - start
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    ordered = sorted(found.items(), key=lambda item: -item[1][1])
    return {
        "total_ms": total * 1e3,
        "statements": sum(int(v[0]) for v in found.values()),
        "execute_ms": sum(v[1] for v in found.values()) * 1e3,
        "by_statement": [{"sql": sql, "count": int(v[0]), "ms": v[1] * 1e3} for sql, v in ordered],
    }


def next_panel(calendar: MeetingCalendar, now: datetime) -> ScheduledMeeting:
    """The next panel meeting, today's included if it has not started (as `panel agenda`)."""
    meeting = calendar.next_after(clock.local_date(now) - timedelta(days=1))
    while meeting is not None and meeting.starts_at <= now:
        meeting = calendar.next_after(meeting.day)
    if meeting is None:
        raise RuntimeError("the panel calendar has no meeting in the coming year")
    return meeting


def measure_pass(
    backend: Backend, config_file: Path, at: datetime, args: argparse.Namespace, label: str
) -> dict[str, Any]:
    """Planning passes with nothing new due at ``at`` (and just after) against their floor."""
    runtime = open_runtime(backend, config_file)
    planner = runtime.planner
    start = time.perf_counter()
    first = planner.plan(now=at)
    first_s = time.perf_counter() - start
    print(
        f"  {label}: first pass at {at.astimezone(clock.LOCAL_ZONE):%a %d %b %Y %H:%M} "
        f"({first_s * 1e3:,.0f} ms, untimed): {first.describe()}",
        flush=True,
    )
    if first.skipped:
        raise RuntimeError("the first planning pass was skipped")
    instant = [at]

    def plan() -> PlanReport:
        instant[0] += STEP
        return planner.plan(now=instant[0])

    def nothing_new(report: PlanReport) -> None:
        if report.skipped or report.total:
            raise RuntimeError(f"a measured pass was not idle: {report.describe()}")

    # The measured passes start where the last one ended, so the range is the same for all.
    low, high = review_range(runtime.config, at, at + STEP)
    raw = backend.raw()
    floor_sql = backend.sql(PASS_FLOOR)
    floor_args = (lc.INTERVENTION, backend.param(low), backend.param(high))
    floor_args += (backend.param(low), backend.param(high))

    def floor() -> int:
        return len(raw.execute(floor_sql, floor_args).fetchall())

    floor_first, rows = timed(floor)
    pass_first, report = timed(plan)
    nothing_new(report)

    times = alternate(
        {"pass": Side(plan, nothing_new), "floor": Side(floor)}, args.rounds, args.calls
    )
    result = summarise(times, "pass", "floor", (pass_first, floor_first))
    result.update(
        {
            "at": at.isoformat(),
            "first_pass": {"ms": first_s * 1e3, "queued": dict(first.queued)},
            "review_range": [low.isoformat(), high.isoformat()],
            "floor_rows": rows,
            "statements": statements(runtime.engine, lambda: nothing_new(plan())),
        }
    )
    if args.profile:
        name = f"planning-pass-{backend.name}-{label.replace(' ', '-')}"
        result["profile"] = profile(name, lambda: nothing_new(plan()), calls=20, limit=20)
    raw.close()
    runtime.close()
    print(
        f"  {label}: pass {result['median_ms']:.2f} ms (slowest {result['max_ms']:.1f}, "
        f"first idle pass {result['first_call_ms']:.1f}), "
        f"floor {result['floor_median_ms']:.3f} ms ({rows} rows), "
        f"{result['median_ratio']:.1f}x the floor; "
        f"{result['statements']['statements']} statements per pass",
        flush=True,
    )
    return result


def measure_agenda(
    backend: Backend, config_file: Path, now: datetime, args: argparse.Namespace
) -> dict[str, Any]:
    runtime = open_runtime(backend, config_file)
    engine = runtime.engine
    with engine.connect() as connection:
        calendar = MeetingCalendar.load(connection, runtime.config.panel)
    meeting = next_panel(calendar, now)
    window = AgendaWindow.of(calendar, meeting, now=now)

    def agenda() -> Any:
        with engine.connect() as connection, connection.begin():
            return build_agenda(connection, calendar, meeting, now=now)

    raw = backend.raw()
    arms = agenda_floor(backend, window)
    floor_sql = " UNION ALL ".join(sql for sql, _ in arms)
    floor_args = tuple(arg for _, args in arms for arg in args)

    def floor() -> list[Any]:
        return list(raw.execute(floor_sql, floor_args).fetchall())

    def floor_apart() -> list[Any]:
        return [row for sql, args in arms for row in raw.execute(sql, args).fetchall()]

    agenda_first, built = timed(agenda)
    floor_first, read = timed(floor)
    sizes = {
        "case": len(built.new_cases) + len(built.adjourned),
        "plan": len(built.reviews_due),
        "post": len(built.post_exit_reviews),
        "count": len(built.counts_by_state),
    }
    read_sizes = {part: sum(1 for row in read if row[0] == part) for part in sizes}
    if sizes != read_sizes:
        raise RuntimeError(f"the floor read {read_sizes}, the agenda holds {sizes}")
    adjourned = sum(1 for row in read if row[0] == "case" and row[4])
    if adjourned != len(built.adjourned):
        raise RuntimeError(f"the floor found {adjourned} adjourned, the agenda {built.adjourned}")
    if Counter(map(tuple, floor_apart())) != Counter(map(tuple, read)):
        raise RuntimeError("the floor's four SELECTs read other rows than their UNION ALL")
    sides = {"agenda": Side(agenda), "floor": Side(floor), "apart": Side(floor_apart)}
    times = alternate(sides, args.rounds, args.calls)
    result = summarise(times, "agenda", "floor", (agenda_first, floor_first))
    result["floor_apart_median_ms"] = median(result["round_median_ms"]["apart"])
    result.update(
        {
            "meeting": meeting.as_dict(),
            "window": [window.after.isoformat() if window.after else None, window.day.isoformat()],
            "new_cases": len(built.new_cases),
            "adjourned": len(built.adjourned),
            "reviews_due": len(built.reviews_due),
            "post_exit_reviews": len(built.post_exit_reviews),
            "floor_rows": len(read),
            "statements": statements(engine, agenda),
        }
    )
    if args.profile:
        result["profile"] = profile(f"planning-agenda-{backend.name}", agenda, calls=20, limit=20)
    raw.close()
    runtime.close()
    print(
        f"  agenda for the panel on {meeting.day}: {result['median_ms']:.2f} ms "
        f"(slowest {result['max_ms']:.1f}, first call {result['first_call_ms']:.1f}), floor "
        f"{result['floor_median_ms']:.3f} ms ({len(read)} rows; first call "
        f"{result['floor_first_call_ms']:.1f}), {result['median_ratio']:.1f}x the floor; "
        f"its four SELECTs run apart {result['floor_apart_median_ms']:.3f} ms",
        flush=True,
    )
    return result


def measure_backend(
    name: str, workdir: Path, config_file: Path, args: argparse.Namespace
) -> dict[str, Any]:
    cache = sqlite_cache if name == "sqlite" else postgres_cache
    meta, reused = cache(args.referrals, args.reuse)
    if reused:
        print(f"{name}: reusing the data set built {meta['built']}", flush=True)
    result: dict[str, Any] = {"data_set": {**meta, "reused_cache": reused}}
    now = clock.now()
    with working_copy(name, workdir, "now") as backend:
        print(f"{name}: planning pass, nothing new due, at the current time", flush=True)
        result["pass_now"] = measure_pass(backend, config_file, now, args, "now")
        print(f"{name}: building the next panel's agenda", flush=True)
        result["agenda"] = measure_agenda(backend, config_file, now, args)
    meeting_day = date.fromisoformat(result["agenda"]["meeting"]["date"])
    starts_at = datetime.fromisoformat(result["agenda"]["meeting"]["starts_at"])
    with working_copy(name, workdir, "morning") as backend:
        print(
            f"{name}: planning pass, nothing new due, on the morning of {meeting_day}", flush=True
        )
        result["pass_morning"] = measure_pass(
            backend, config_file, starts_at - MORNING, args, "panel morning"
        )
    return result


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument(
        "--backend", action="append", choices=("sqlite", "postgresql"), default=None
    )
    parser.add_argument(
        "--reuse", action="store_true", help=f"reuse a data set cached in {CACHE} if it fits"
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5, help="calls per round and side")
    parser.add_argument("--profile", action="store_true", help="also save cProfile statistics")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]
    started = time.perf_counter()
    workdir = fresh_dir("planning")
    config_file = workdir / "channelflow.toml"
    config_file.write_text("# empty: the default configuration\n")
    results: dict[str, Any] = {
        "benchmark": "planning",
        "machine": machine(),
        "params": {**vars(args), "backends": backends, "warmup": WARMUP, "step_ms": 10},
        "sqlite_dir": str(workdir),
        "sqlite_filesystem": filesystem(workdir),
        "backends": {},
    }
    try:
        for name in backends:
            if name == "postgresql" and (why := postgres_reachable()) is not None:
                print(f"postgresql: skipped, {PG_ADMIN_URL} unreachable ({why})")
                results["backends"][name] = {"skipped": why}
                continue
            results["backends"][name] = measure_backend(name, workdir, config_file, args)
        if "postgresql" in results["backends"] and "skipped" not in results["backends"].get(
            "postgresql", {}
        ):
            results["postgres_settings"] = postgres_settings()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = time.perf_counter() - started
    failed = report(results)
    print(f"\nwrote {write_json('planning', results)} ({results['elapsed_s']:.0f} s)")
    return 1 if failed else 0


def report(results: dict[str, Any]) -> bool:
    """Print the table and the PASS/FAIL lines; whether any goal was missed."""
    params = results["params"]
    rows, verdicts = [], []
    for name, res in results["backends"].items():
        if "skipped" in res:
            rows.append((name, "-", "-", "-", "-", "-", "-", f"skipped ({res['skipped']})"))
            continue
        agenda = res["agenda"]
        measured = (
            ("pass, nothing new: now", res["pass_now"], PASS_GOAL_MS),
            ("pass, nothing new: panel morning", res["pass_morning"], PASS_GOAL_MS),
            (f"agenda, panel {agenda['meeting']['date']}", agenda, AGENDA_GOAL_MS),
        )
        for what, m, goal in measured:
            met = m["median_ms"] < goal
            rows.append(
                (
                    name,
                    what,
                    f"{m['median_ms']:.2f}",
                    f"{m['max_ms']:.1f}",
                    f"{m['floor_median_ms']:.3f} ({m['floor_rows']} rows)",
                    f"{m['median_ratio']:.1f}x",
                    f"< {goal:g}",
                    "yes" if met else "NO",
                )
            )
            verdicts.append(
                f"{'PASS' if met else 'FAIL'} {name}: {what} median {m['median_ms']:.2f} ms "
                f"(slowest {m['max_ms']:.1f} ms) < {goal:g} ms"
            )
    data = next((r["data_set"] for r in results["backends"].values() if "data_set" in r), None)
    size = f"{data['referrals']:,} referrals" if data else "no data"
    print_table(
        f"{size}; ms, median over {params['rounds']} rounds of the median of "
        f"{params['calls']} calls",
        ("backend", "measurement", "median", "slowest", "floor (1 query)", "ratio", "goal", "met"),
        rows,
    )
    print()
    for line in verdicts:
        print(line)
    return any(line.startswith("FAIL") for line in verdicts)


if __name__ == "__main__":
    sys.exit(main())
