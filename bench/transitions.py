"""Durable transitions per second: ``Workflow.fire`` against the bare driver doing the same writes.

Each backend gets a pool of cases in ``intervention`` (opened and moved there through the
engine), then two copies of that database: one the engine fires ``review`` (``--set
outcome=progressing``) on, round-robin over the pool, and one the raw baseline
(:class:`benchlib.RawWriter`) writes the same update + audit row to, one transaction each.
Rounds interleave engine and baseline (alternating which goes first); the reported figure is
the median over rounds of engine/raw.

    .venv/bin/python bench/transitions.py [--transitions 2000] [--rounds 3] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from benchlib import (
    CHAIR,
    COORDINATOR,
    LEAD,
    PG_ADMIN_URL,
    POLICE,
    RawWriter,
    checkpoint,
    filesystem,
    fresh_dir,
    machine,
    make_runtime,
    median,
    open_runtime,
    print_table,
    sqlite_connect,
    write_json,
)
from channelflow.runtime import Runtime
from channelflow.workflow.engine import NewReferral

GOAL = 0.5
WARMUP = 50


@dataclass
class Backend:
    name: str
    engine_url: str
    raw_connect: Callable[[], Any]
    key_file: Path
    postgres: bool


def build_pool(runtime: Runtime, size: int) -> list[str]:
    """``size`` referrals taken to ``intervention`` through the engine, as users would."""
    workflow = runtime.workflow
    references = []
    for index in range(size):
        details = NewReferral(
            received_on=date(2026, 1, 5),
            sector="education",
            concern="no_clear_ideology",
            subject_name=f"Bench Subject {index:04d}",
            date_of_birth=date(1990, 3, 4),
        )
        reference = workflow.open_referral(details, by=COORDINATOR)
        workflow.fire(reference, "screen", by=POLICE, values={"outcome": "proceed"})
        workflow.fire(reference, "refer_to_panel", by=COORDINATOR)
        workflow.fire(reference, "accept", by=CHAIR, values={"consent": "given", "lead": LEAD})
        workflow.fire(
            reference, "start_intervention", by=COORDINATOR, values={"support_plan": "SP"}
        )
        references.append(reference)
    return references


@contextmanager
def sqlite_backend(workdir: Path, pool: int) -> Iterator[tuple[Backend, list[str]]]:
    engine_db, raw_db, key_file = workdir / "engine.db", workdir / "raw.db", workdir / "audit.key"
    runtime = make_runtime(f"sqlite:///{engine_db}", key_file)
    references = build_pool(runtime, pool)
    runtime.close()
    checkpoint(engine_db)
    shutil.copyfile(engine_db, raw_db)
    yield (
        Backend(
            "sqlite", f"sqlite:///{engine_db}", lambda: sqlite_connect(raw_db), key_file, False
        ),
        references,
    )


@contextmanager
def postgres_backend(workdir: Path, pool: int) -> Iterator[tuple[Backend, list[str]]]:
    engine_db, raw_db = f"cf_bench_{os.getpid()}", f"cf_bench_{os.getpid()}_raw"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    key_file = workdir / "audit-pg.key"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{engine_db}"')
    try:
        engine_url = base.replace("postgresql://", "postgresql+psycopg://") + f"/{engine_db}"
        # make_runtime migrates with schema.upgrade(open_engine(url)) (Runtime.initialise).
        runtime = make_runtime(engine_url, key_file)
        references = build_pool(runtime, pool)
        runtime.close()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{raw_db}" TEMPLATE "{engine_db}"')
        yield (
            Backend(
                "postgresql",
                engine_url,
                lambda: psycopg.connect(f"{base}/{raw_db}"),
                key_file,
                True,
            ),
            references,
        )
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            for name in (engine_db, raw_db):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_engine(runtime: Runtime, references: list[str], count: int, offset: int) -> float:
    """Seconds for ``count`` fires."""
    workflow = runtime.workflow
    values = {"outcome": "progressing"}
    start = time.perf_counter()
    for index in range(offset, offset + count):
        workflow.fire(references[index % len(references)], "review", by=CHAIR, values=values)
    return time.perf_counter() - start


def run_raw(writer: RawWriter, references: list[str], count: int, offset: int) -> float:
    """Seconds for ``count`` raw transactions (the untimed refresh reads head and versions)."""
    writer.refresh(references)
    start = time.perf_counter()
    for index in range(offset, offset + count):
        writer.write(references[index % len(references)])
    return time.perf_counter() - start


def measure(
    backend: Backend, references: list[str], count: int, rounds: int, chunk: int
) -> dict[str, Any]:
    """Each round: ``count`` transitions per side, alternating in chunks of ``chunk``."""
    runtime = open_runtime(backend.engine_url, backend.key_file)
    raw = RawWriter(backend.raw_connect(), runtime.key, postgres=backend.postgres)
    run_engine(runtime, references, WARMUP, 0)
    run_raw(raw, references, WARMUP, 0)
    engine_tps, raw_tps, ratios = [], [], []
    offset = WARMUP
    for round_no in range(rounds):
        engine_s = raw_s = 0.0
        for part in range(0, count, chunk):
            size = min(chunk, count - part)
            # Alternate which side goes first, so neither always follows the other's fsyncs.
            if (part // chunk + round_no) % 2 == 0:
                engine_s += run_engine(runtime, references, size, offset)
                raw_s += run_raw(raw, references, size, offset)
            else:
                raw_s += run_raw(raw, references, size, offset)
                engine_s += run_engine(runtime, references, size, offset)
            offset += size
        e, r = count / engine_s, count / raw_s
        engine_tps.append(e)
        raw_tps.append(r)
        ratios.append(e / r)
        print(
            f"  {backend.name} round {round_no + 1}: engine {e:,.0f}/s, raw {r:,.0f}/s, "
            f"ratio {e / r:.3f}",
            flush=True,
        )
    raw.connection.close()
    runtime.close()
    return {
        "engine_tps": engine_tps,
        "raw_tps": raw_tps,
        "ratios": ratios,
        "median_engine_tps": median(engine_tps),
        "median_raw_tps": median(raw_tps),
        "median_ratio": median(ratios),
        "goal_ratio": GOAL,
        "met": median(ratios) >= GOAL,
    }


def postgres_settings() -> dict[str, str]:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transitions", type=int, default=2000, help="per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=50, help="cases in intervention")
    parser.add_argument("--chunk", type=int, default=100, help="alternate sides every N")
    parser.add_argument(
        "--backend", action="append", choices=("sqlite", "postgresql"), default=None
    )
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]
    workdir = fresh_dir("transitions")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "benchmark": "transitions",
        "machine": machine(),
        "params": {
            "transitions_per_round": args.transitions,
            "rounds": args.rounds,
            "pool": args.pool,
            "chunk": args.chunk,
            "warmup": WARMUP,
            "event": "review --set outcome=progressing (intervention -> intervention)",
        },
        "sqlite_dir": str(workdir),
        "sqlite_filesystem": filesystem(workdir),
        "tmp_filesystem": filesystem(Path("/tmp")),
        "backends": {},
    }
    try:
        for name in backends:
            print(f"{name}: building a pool of {args.pool} cases in intervention", flush=True)
            factory = sqlite_backend if name == "sqlite" else postgres_backend
            with factory(workdir, args.pool) as (backend, references):
                results["backends"][name] = measure(
                    backend, references, args.transitions, args.rounds, args.chunk
                )
        if "postgresql" in backends:
            results["postgres_settings"] = postgres_settings()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = time.perf_counter() - started
    rows = [
        (
            name,
            res["median_engine_tps"],
            res["median_raw_tps"],
            res["median_ratio"],
            f">= {GOAL}",
            "yes" if res["met"] else "NO",
        )
        for name, res in results["backends"].items()
    ]
    print_table(
        f"durable transitions/s, median of {args.rounds} rounds x {args.transitions}",
        ("backend", "engine/s", "raw/s", "engine/raw", "goal", "met"),
        rows,
    )
    print(f"\nwrote {write_json('transitions', results)} ({results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
