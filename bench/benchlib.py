"""Shared helpers for the benchmark scripts in this folder (not a test module).

Every figure a script reports is measured against a baseline in the same run, because the
machine is noisy: rounds interleave the engine and its baseline, and the median is reported.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

# `python bench/transitions.py` puts this folder first on sys.path, where transitions.py would
# shadow the `transitions` library channelflow's state machine imports; move it to the end.
_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    sys.path.append(sys.path.pop(0))

import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy

from channelflow.audit.canonical import GENESIS_HASH, canonical_json, event_hash, format_time
from channelflow.audit.keys import AuditKey
from channelflow.runtime import Runtime
from channelflow.settings import Settings
from channelflow.states import Role

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TMP = RESULTS / "tmp"
PYTHON = ROOT / ".venv" / "bin" / "python"
CHANNELFLOW = ROOT / ".venv" / "bin" / "channelflow"
PG_ADMIN_URL = os.environ.get(
    "CHANNELFLOW_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=60000")

# Users the benchmarks act as (the demo data set's names, so both scripts share them).
POLICE, COORDINATOR, CHAIR, LEAD = "pat.police", "cora.coordinator", "chris.chair", "lee.lead"
BENCH_USERS = ((POLICE, Role.POLICE), (COORDINATOR, Role.COORDINATOR), (CHAIR, Role.CHAIR))
BENCH_USERS += ((LEAD, Role.LEAD),)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 1,000 samples is the 990th smallest)."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
        "git": _git_state(),
    }


def _git_state() -> str:
    """The commit measured, marked dirty when src/ has uncommitted changes."""
    run = {"capture_output": True, "text": True, "cwd": ROOT, "check": False}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], **run).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], **run).stdout.strip()
    return f"{commit}{' (src dirty)' if dirty else ''}"


def filesystem(path: Path) -> str:
    """The device and mount point holding ``path`` (as `df` reports them)."""
    out = subprocess.run(
        ["df", "--output=source,target", str(path)], capture_output=True, text=True, check=True
    ).stdout.split("\n")[1]
    return " ".join(out.split())


def fresh_dir(name: str) -> Path:
    path = TMP / f"{name}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print(
            "  "
            + "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def make_runtime(database_url: str, key_file: Path) -> Runtime:
    """An initialised channelflow with the benchmark users (as tests/conftest.py does)."""
    runtime = Runtime(
        Settings(database_url=database_url, key_file=key_file, user=None, reference_prefix="CF")
    )
    runtime.initialise()
    runtime.workflow.add_first_admin("admin")
    for name, role in BENCH_USERS:
        runtime.workflow.add_user(name, role, email=None, by="admin")
    return runtime


def open_runtime(database_url: str, key_file: Path) -> Runtime:
    return Runtime(
        Settings(database_url=database_url, key_file=key_file, user=None, reference_prefix="CF")
    )


def sqlite_connect(path: Path) -> sqlite3.Connection:
    """A raw connection with the pragmas channelflow's engine sets (store/db.py)."""
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        connection.execute(f"PRAGMA {pragma}")
    return connection


def checkpoint(path: Path) -> None:
    """Fold the WAL back into the main file, so the file can be copied on its own."""
    connection = sqlite_connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


@dataclass
class RawWriter:
    """The baseline: the same logical write as one ``Workflow.fire``, with the bare driver.

    One transaction each: ``UPDATE referral SET state, version = version + 1 ... WHERE id = ?
    AND version = ?`` (optimistic concurrency, checked by rowcount) and ``INSERT`` of one
    audit row whose SHA-256 hash (the chain's own canonical document, so the chain stays
    valid) and MAC are computed in Python, then ``COMMIT``. The chain head and each row's
    version are kept in memory between transactions (a single writer), and read once,
    untimed, by :meth:`refresh`.
    """

    connection: Any
    key: AuditKey
    postgres: bool
    actor: str = CHAIR
    role: str = Role.CHAIR.value
    head: tuple[int, str, str] = (0, GENESIS_HASH, "")
    versions: dict[str, tuple[int, int]] = field(default_factory=dict)

    UPDATE = (
        "UPDATE referral SET state = {p}, version = version + 1, updated_at = {p} "
        "WHERE id = {p} AND version = {p}"
    )
    INSERT = (
        "INSERT INTO audit_event (seq, entity_type, entity_id, event, from_state, to_state, "
        "actor, role, occurred_at, recorded_at, reason, data, prev_hash, hash, mac) VALUES "
        "({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
    )

    def __post_init__(self) -> None:
        mark = "%s" if self.postgres else "?"
        self.update_sql = self.UPDATE.format(p=mark)
        self.insert_sql = self.INSERT.format(p=mark)

    def refresh(self, references: Sequence[str]) -> None:
        cursor = self.connection.cursor()
        found = cursor.execute(
            "SELECT seq, hash, recorded_at FROM audit_event ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        self.head = (found[0], found[1], found[2]) if found else (0, GENESIS_HASH, "")
        self.versions = {}
        mark = "%s" if self.postgres else "?"
        for reference in references:
            row = cursor.execute(
                f"SELECT id, version FROM referral WHERE reference = {mark}", (reference,)
            ).fetchone()
            self.versions[reference] = (row[0], row[1])
        if self.postgres:
            self.connection.commit()

    def write(self, reference: str, state: str = "intervention") -> None:
        now = datetime.now(UTC)
        row_id, version = self.versions[reference]
        seq, previous = self.head[0] + 1, self.head[1]
        stamp = format_time(now)
        # As the chain does: the recording time never runs backwards along the chain.
        recorded = max(stamp, self.head[2])
        data = canonical_json({"outcome": "progressing"})
        digest = event_hash(
            seq=seq,
            entity_type="referral",
            entity_id=reference,
            event="review",
            from_state=state,
            to_state=state,
            actor=self.actor,
            role=self.role,
            occurred_at=stamp,
            recorded_at=recorded,
            reason=None,
            data=data,
            prev_hash=previous,
        )
        mac = self.key.mac(digest)
        cursor = self.connection.cursor()
        if not self.postgres:
            cursor.execute("BEGIN IMMEDIATE")
        # What SQLAlchemy binds for channelflow's UTCDateTime: naive UTC text on SQLite.
        updated_at: Any = now if self.postgres else now.strftime("%Y-%m-%d %H:%M:%S.%f")
        updated = cursor.execute(self.update_sql, (state, updated_at, row_id, version))
        if updated.rowcount != 1:
            raise RuntimeError(f"{reference} changed under the raw writer")
        cursor.execute(
            self.insert_sql,
            (
                seq,
                "referral",
                reference,
                "review",
                state,
                state,
                self.actor,
                self.role,
                stamp,
                recorded,
                None,
                data,
                previous,
                digest,
                mac,
            ),
        )
        if self.postgres:
            self.connection.commit()
        else:
            cursor.execute("COMMIT")
        self.versions[reference] = (row_id, version + 1)
        self.head = (seq, digest, recorded)


def profile(name: str, run: Callable[[], Any], *, calls: int = 1, limit: int = 25) -> str:
    """cProfile ``calls`` runs of ``run``: print the top functions, save the stats file."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        run()
    profiler.disable()
    path = RESULTS / f"{name}.pstats"
    RESULTS.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(path)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(limit)
    stats.sort_stats("tottime").print_stats(limit)
    print(f"\n{name}: cProfile of {calls} call(s) (saved to {path})")
    print(out.getvalue())
    return str(path)
