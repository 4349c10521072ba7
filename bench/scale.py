"""channelflow at 100,000 referrals: demo load time, fire latency, audit verify speed and memory.

Every figure has a baseline measured in the same run:

* demo load (`channelflow init --demo`) against copying the loaded rows into an empty schema
  with one ``INSERT ... SELECT`` per table (SQLite's own floor for writing that data);
* ``Workflow.fire`` latency (``review`` on random cases in ``intervention``) against a raw
  sqlite3 transaction doing the same update + audit insert on the same file, alternating in
  chunks;
* ``verify_chain`` throughput against a plain ``SELECT * FROM audit_event ORDER BY seq`` scan
  with no hashing;
* the peak RSS of a process running only `channelflow audit verify --json` against a process
  that only imports ``channelflow.cli``.

Rounds interleave each measurement with its baseline; medians over rounds are reported.

    .venv/bin/python bench/scale.py [--referrals 100000] [--reuse] [--fires 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import (
    CHAIR,
    CHANNELFLOW,
    PYTHON,
    RESULTS,
    TMP,
    RawWriter,
    checkpoint,
    filesystem,
    fresh_dir,
    machine,
    median,
    open_runtime,
    percentile,
    print_table,
    sqlite_connect,
    write_json,
)
from channelflow.audit.verify import verify_chain
from channelflow.store import schema
from channelflow.store.db import open_engine

CACHE = RESULTS / "scale-cache"
TIME = "/usr/bin/time"  # GNU time, for a child's own peak RSS
P99_GOAL_MS = 10.0
VERIFY_GOAL = 100_000
MEMORY_GOAL_MB = 150.0
CHUNK = 100
# Parents before children, for the load floor's copy with foreign keys on.
TABLES = (
    "users",
    "person",
    "referral",
    "post_exit_review",
    "reference_counter",
    "audit_event",
    "access_log",
    "channelflow_meta",
)


def run_measured(
    command: list[str], env: dict[str, str] | None = None, stdin: str | None = None
) -> tuple[str, float, int]:
    """Run ``command``; its stdout, wall seconds and peak RSS in KiB.

    The peak comes from GNU time's %M, not from this process's wait4: a child forked from this
    (large) process inherits its high-water mark across exec, which would hide a small child's
    own peak.
    """
    TMP.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("r", dir=TMP, suffix=".rss") as rss_file:
        start = time.perf_counter()
        completed = subprocess.run(
            [TIME, "-f", "%M", "-o", rss_file.name, *command],
            input=stdin.encode() if stdin is not None else None,
            stdout=subprocess.PIPE,
            env=env,
            cwd=RESULTS,
            check=False,
        )
        elapsed = time.perf_counter() - start
        output = completed.stdout.decode()
        if completed.returncode != 0:
            raise RuntimeError(f"{command} exited with {completed.returncode}: {output[-2000:]}")
        peak_kib = int(rss_file.read().split()[-1])
    return output, elapsed, peak_kib


def verify_env(key_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
    env["CHANNELFLOW_KEY_FILE"] = str(key_file)
    return env


def build(referrals: int) -> dict[str, Any]:
    """Load the demo into a fresh SQLite file in the cache; time it and its SQLite floor."""
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    db, key = CACHE / "channelflow.db", CACHE / "channelflow.key"
    print(f"loading the demo with {referrals:,} referrals into {db} ...", flush=True)
    command = [str(CHANNELFLOW), "init", "--demo", "--referrals", str(referrals), "--json"]
    output, load_s, load_rss = run_measured([*command, "--db", str(db)], verify_env(key))
    summary = json.loads(output)["demo"]
    checkpoint(db)
    print(f"  loaded in {load_s:.1f} s; measuring the floor (INSERT ... SELECT)", flush=True)
    floor_db = CACHE / "floor.db"
    engine = open_engine(f"sqlite:///{floor_db}")
    schema.upgrade(engine)
    engine.dispose()
    connection = sqlite_connect(floor_db)
    connection.execute("ATTACH DATABASE ? AS loaded", (str(db),))
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    for table in TABLES:
        connection.execute(f"INSERT INTO main.{table} SELECT * FROM loaded.{table}")
    connection.execute("COMMIT")
    floor_s = time.perf_counter() - start
    connection.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{floor_db}{suffix}").unlink(missing_ok=True)
    meta = {
        "referrals": referrals,
        "events": summary["events"],
        "by_state": summary["by_state"],
        "load_s": load_s,
        "load_peak_rss_mb": load_rss / 1024,
        "floor_s": floor_s,
        "db_bytes": db.stat().st_size,
        "built": machine()["date"],
    }
    (CACHE / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def cached(referrals: int) -> dict[str, Any] | None:
    try:
        meta: dict[str, Any] = json.loads((CACHE / "meta.json").read_text())
    except FileNotFoundError:
        return None
    return meta if meta.get("referrals") == referrals else None


def stamp(marks: list[float]) -> Callable[[int], None]:
    """A progress callback noting when each batch was done (the last one ends the walk)."""
    return lambda _count: marks.append(time.perf_counter())


def measure_verify(db: Path, key_file: Path, rounds: int) -> dict[str, Any]:
    runtime = open_runtime(f"sqlite:///{db}", key_file)
    verify_rates, walk_rates, scan_rates, ratios = [], [], [], []
    count = 0
    for round_no in range(rounds):
        for side in ("verify", "scan") if round_no % 2 == 0 else ("scan", "verify"):
            if side == "verify":
                marks: list[float] = []
                start = time.perf_counter()
                result = verify_chain(runtime.engine, runtime.key, progress=stamp(marks))
                total = time.perf_counter() - start
                count = result.count
                verify_rates.append(count / total)
                walk_rates.append(count / (marks[-1] - start))
            else:
                connection = sqlite_connect(db)
                start = time.perf_counter()
                cursor = connection.execute("SELECT * FROM audit_event ORDER BY seq")
                rows = 0
                while batch := cursor.fetchmany(5000):
                    rows += len(batch)
                scan_rates.append(rows / (time.perf_counter() - start))
                connection.close()
        ratios.append(verify_rates[-1] / scan_rates[-1])
        print(
            f"  verify round {round_no + 1}: {verify_rates[-1]:,.0f} events/s "
            f"(chain walk alone {walk_rates[-1]:,.0f}/s), scan {scan_rates[-1]:,.0f} rows/s",
            flush=True,
        )
    runtime.close()
    return {
        "events": count,
        "verify_eps": verify_rates,
        "chain_walk_eps": walk_rates,
        "scan_rows_per_s": scan_rates,
        "ratios": ratios,
        "median_verify_eps": median(verify_rates),
        "median_chain_walk_eps": median(walk_rates),
        "median_scan_rows_per_s": median(scan_rates),
        "median_ratio": median(ratios),
        "goal_eps": VERIFY_GOAL,
        "met": median(verify_rates) >= VERIFY_GOAL,
    }


def helper_job(db: Path, key_file: Path) -> str:
    """The job `verify` hands its helper process: the second half of the trail."""
    from channelflow.audit.keys import load_key

    with sqlite_connect(db) as connection:
        last = connection.execute("SELECT max(seq) FROM audit_event").fetchone()[0]
    job = {
        "backend": "sqlite",
        "database": str(db),
        "first": last // 2 + 1,
        "last": last,
        "key": load_key(key_file).secret.hex(),
    }
    return json.dumps(job) + "\n"


def measure_memory(db: Path, key_file: Path, rounds: int) -> dict[str, Any]:
    """Peak RSS of `audit verify` (main process) plus, separately, of the helper process it
    starts for long trails; both are alive at once, so their sum is what verify needs."""
    verify_cmd = [str(CHANNELFLOW), "audit", "verify", "--db", str(db), "--json"]
    idle_cmd = [str(PYTHON), "-c", "import channelflow.cli"]
    helper_cmd = [str(PYTHON), "-m", "channelflow.audit.walk"]
    job = helper_job(db, key_file)
    helper_mb = []
    for _ in range(rounds):
        output, _, rss = run_measured(helper_cmd, verify_env(key_file), stdin=job)
        if not json.loads(output)["ok"]:
            raise RuntimeError(f"the verify helper failed: {output}")
        helper_mb.append(rss / 1024)
    print(f"  helper process peak {median(helper_mb):.1f} MB", flush=True)
    verify_mb, idle_mb, verify_s = [], [], []
    for round_no in range(rounds):
        for side in ("verify", "idle") if round_no % 2 == 0 else ("idle", "verify"):
            if side == "verify":
                output, elapsed, rss = run_measured(verify_cmd, verify_env(key_file))
                if not json.loads(output)["ok"]:
                    raise RuntimeError(f"audit verify failed: {output}")
                verify_mb.append(rss / 1024)
                verify_s.append(elapsed)
            else:
                _, _, rss = run_measured(idle_cmd, verify_env(key_file))
                idle_mb.append(rss / 1024)
        print(
            f"  memory round {round_no + 1}: verify peak {verify_mb[-1]:.1f} MB, "
            f"import-only {idle_mb[-1]:.1f} MB",
            flush=True,
        )
    return {
        "verify_peak_rss_mb": verify_mb,
        "import_only_rss_mb": idle_mb,
        "verify_process_s": verify_s,
        "median_verify_peak_rss_mb": median(verify_mb),
        "helper_peak_rss_mb": helper_mb,
        "median_helper_peak_rss_mb": median(helper_mb),
        "median_total_peak_rss_mb": median(verify_mb) + median(helper_mb),
        "median_import_only_rss_mb": median(idle_mb),
        "median_delta_mb": median([v - i for v, i in zip(verify_mb, idle_mb, strict=True)]),
        "ratio": median(verify_mb) / median(idle_mb),
        "goal_mb": MEMORY_GOAL_MB,
        "met": median(verify_mb) + median(helper_mb) < MEMORY_GOAL_MB,
    }


def measure_fire(db: Path, key_file: Path, fires: int, rounds: int, seed: int) -> dict[str, Any]:
    connection = sqlite_connect(db)
    references = [
        row[0]
        for row in connection.execute(
            "SELECT reference FROM referral WHERE state = 'intervention' ORDER BY reference"
        )
    ]
    if not references:
        raise RuntimeError("the data set has no case in intervention to review")
    runtime = open_runtime(f"sqlite:///{db}", key_file)
    workflow = runtime.workflow
    raw = RawWriter(connection, runtime.key, postgres=False)
    rng = random.Random(seed)
    values = {"outcome": "progressing"}

    def engine_chunk(picks: list[str], out: list[float]) -> None:
        for reference in picks:
            start = time.perf_counter()
            workflow.fire(reference, "review", by=CHAIR, values=values)
            out.append(time.perf_counter() - start)

    def raw_chunk(picks: list[str], out: list[float]) -> None:
        raw.refresh(references)  # untimed: the chain head moved while the engine fired
        for reference in picks:
            start = time.perf_counter()
            raw.write(reference)
            out.append(time.perf_counter() - start)

    engine_chunk(rng.choices(references, k=50), [])
    raw_chunk(rng.choices(references, k=50), [])
    per_round = []
    for round_no in range(rounds):
        engine_ms: list[float] = []
        raw_ms: list[float] = []
        for part in range(0, fires, CHUNK):
            size = min(CHUNK, fires - part)
            sides = [(engine_chunk, engine_ms), (raw_chunk, raw_ms)]
            if (part // CHUNK + round_no) % 2:
                sides.reverse()
            for run, out in sides:
                run(rng.choices(references, k=size), out)
        stats = {
            "engine_p50_ms": percentile(engine_ms, 0.50) * 1e3,
            "engine_p99_ms": percentile(engine_ms, 0.99) * 1e3,
            "engine_max_ms": max(engine_ms) * 1e3,
            "raw_p50_ms": percentile(raw_ms, 0.50) * 1e3,
            "raw_p99_ms": percentile(raw_ms, 0.99) * 1e3,
            "raw_max_ms": max(raw_ms) * 1e3,
        }
        per_round.append(stats)
        print(
            f"  fire round {round_no + 1}: engine p50 {stats['engine_p50_ms']:.2f} ms "
            f"p99 {stats['engine_p99_ms']:.2f} ms; raw p50 {stats['raw_p50_ms']:.2f} ms "
            f"p99 {stats['raw_p99_ms']:.2f} ms",
            flush=True,
        )
    runtime.close()
    connection.close()
    result: dict[str, Any] = {"cases_in_intervention": len(references), "rounds": per_round}
    for name in per_round[0]:
        result[f"median_{name}"] = median([r[name] for r in per_round])
    result["median_p50_ratio"] = median([r["engine_p50_ms"] / r["raw_p50_ms"] for r in per_round])
    result["median_p99_ratio"] = median([r["engine_p99_ms"] / r["raw_p99_ms"] for r in per_round])
    result["goal_p99_ms"] = P99_GOAL_MS
    result["met"] = result["median_engine_p99_ms"] < P99_GOAL_MS
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument(
        "--reuse", action="store_true", help=f"reuse the data set cached in {CACHE} if present"
    )
    parser.add_argument("--fires", type=int, default=1000, help="fires per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    started = time.perf_counter()
    meta = cached(args.referrals) if args.reuse else None
    reused = meta is not None
    if meta is None:
        meta = build(args.referrals)
    else:
        print(f"reusing the data set in {CACHE} (built {meta['built']})", flush=True)
    workdir = fresh_dir("scale")
    db, key_file = workdir / "channelflow.db", workdir / "channelflow.key"
    shutil.copyfile(CACHE / "channelflow.db", db)
    shutil.copyfile(CACHE / "channelflow.key", key_file)
    results: dict[str, Any] = {
        "benchmark": "scale",
        "machine": machine(),
        "params": vars(args),
        "sqlite_dir": str(workdir),
        "sqlite_filesystem": filesystem(workdir),
        "tmp_filesystem": filesystem(Path("/tmp")),
        "data_set": {**meta, "reused_cache": reused},
    }
    try:
        print("audit verify throughput (in process) against a plain scan", flush=True)
        results["verify"] = measure_verify(db, key_file, args.rounds)
        print("audit verify peak memory (separate processes)", flush=True)
        results["memory"] = measure_memory(db, key_file, args.rounds)
        print("fire latency against a raw transaction on the same file", flush=True)
        results["fire"] = measure_fire(db, key_file, args.fires, args.rounds, args.seed)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = time.perf_counter() - started
    report(results)
    print(f"\nwrote {write_json('scale', results)} ({results['elapsed_s']:.0f} s)")
    return 0


def report(results: dict[str, Any]) -> None:
    data, fire = results["data_set"], results["fire"]
    verify, memory = results["verify"], results["memory"]
    yes = {True: "yes", False: "NO"}
    rows = [
        (
            "demo load (s)" + (" [cached]" if data["reused_cache"] else ""),
            "-",
            data["load_s"],
            data["floor_s"],
            f"{data['load_s'] / data['floor_s']:.1f}x floor",
            "-",
        ),
        (
            "fire p50 (ms)",
            "-",
            fire["median_engine_p50_ms"],
            fire["median_raw_p50_ms"],
            f"{fire['median_p50_ratio']:.1f}x raw",
            "-",
        ),
        (
            "fire p99 (ms)",
            f"< {P99_GOAL_MS:g}",
            fire["median_engine_p99_ms"],
            fire["median_raw_p99_ms"],
            f"{fire['median_p99_ratio']:.1f}x raw",
            yes[fire["met"]],
        ),
        (
            "verify (events/s)",
            f">= {VERIFY_GOAL:,}",
            f"{verify['median_verify_eps']:,.0f}",
            f"{verify['median_scan_rows_per_s']:,.0f}",
            f"{verify['median_ratio']:.3f} of scan",
            yes[verify["met"]],
        ),
        (
            "verify peak RSS, main + helper (MB)",
            f"< {MEMORY_GOAL_MB:g}",
            f"{memory['median_verify_peak_rss_mb']:.1f} + "
            f"{memory['median_helper_peak_rss_mb']:.1f}",
            memory["median_import_only_rss_mb"],
            f"+{memory['median_delta_mb']:.1f} MB main",
            yes[memory["met"]],
        ),
    ]
    print_table(
        f"{data['referrals']:,} referrals, {data['events']:,} audit events; "
        f"medians of {results['params']['rounds']} rounds",
        ("metric", "goal", "measured", "baseline", "ratio", "met"),
        rows,
    )


if __name__ == "__main__":
    sys.exit(main())
