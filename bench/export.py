"""Audit export and offline verification of a trail of 1,000,000 events (issue 5).

Issue #5's goals, on a demo data set of ~1,000,000 audit events (``--referrals 265000``):

* **export** of the whole trail (``Exporter(workflow, signing_key).export(out, Selection(),
  by="ada.auditor")``): >= 100,000 events/s for the JSONL + CSV part, peak memory < 200 MB;
* **offline verification** of that bundle (``verify_bundle(path)``): >= 100,000 events/s;
* both against **the floor**, measured in the same run: the same rows read with the bare
  driver (``sqlite3``; a psycopg server-side cursor) and written as JSON lines with
  ``json.dumps`` and no hashing (fsynced at the end, as the exporter's files are).

Every measurement runs in its own process under GNU ``time -f %M`` (its own peak RSS); the
processes report their timings as one JSON line. The export reports when its one pass over the
trail ended (the last progress callback, which the exporter calls after each batch of 5,000
events with the tree's size): the pass is what checks each event, builds the Merkle tree and
writes ``events.jsonl`` and ``events.csv``; after it come the consistency proofs, the access
log, the PDF report and the bag's tag files. The resident memory is sampled at each progress
call (``/proc/self/statm``). Two more references isolate the JSONL + CSV writing itself: the
exporter's own writers (``bundle.event_line`` and ``bundle.csv_line``, joined per batch, into
``HashingFile``) fed from the bare driver with no checks and no tree; and the floor plus a
plain ``csv.writer`` (no hashing).

Each round runs the floor, the export, the offline verification of that bundle and the two
writer references, the floor first in even rounds and last in odd ones; the script reports
medians over rounds. Then one filtered export (``--cases`` cases spread over the trail) and
the same cases within a date range (the day the data set was recorded), each timed once per
round and verified. ``--profile`` runs one export and one verification under cProfile in
their own processes and prints where the time goes.

The data set is built once with ``channelflow init --demo --referrals N`` (in a separate
process, timed) into ``bench/results/export-cache/`` (SQLite) and the PostgreSQL database
``cf_bench_export_cache``; ``--reuse`` keeps a cached build of the same size and schema.
Each backend works on a fresh copy (a copied file; ``CREATE DATABASE ... TEMPLATE`` as
``cf_bench_export_<pid>``), dropped at the end. Each export appends one event to the copy's
trail (the export's own record), so round r's trail is r - 1 events longer than round 1's.

    .venv/bin/python bench/export.py [--referrals 265000] [--backend sqlite|postgresql]
                                     [--reuse] [--rounds 3] [--cases 10] [--profile]
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/export.py` puts bench/ first on sys.path, where bench/transitions.py would
# shadow the `transitions` library channelflow imports (as in benchlib.py).
_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    sys.path.append(sys.path.pop(0))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

# Only the standard library above: the measured child processes import what they measure.

ROOT = _HERE.parent
RESULTS = ROOT / "bench" / "results"
CACHE = RESULTS / "export-cache"
PYTHON = ROOT / ".venv" / "bin" / "python"
TIME = "/usr/bin/time"  # GNU time, for a child's own peak RSS
PG_CACHE_DB = "cf_bench_export_cache"
AUDITOR = "ada.auditor"  # the demo's auditor
EVENTS_GOAL = 1_000_000  # the data set's size the issue asks for
RATE_GOAL = 100_000.0  # events/s, export (JSONL + CSV part) and verification
MEMORY_GOAL_MB = 200.0
BATCH = 5000
# channelflow.audit.bundle.COLUMNS, spelled out: the floor's process must not import channelflow.
COLUMNS = (
    "seq",
    "entity_type",
    "entity_id",
    "event",
    "from_state",
    "to_state",
    "actor",
    "role",
    "occurred_at",
    "recorded_at",
    "reason",
    "data",
    "prev_hash",
    "hash",
    "mac",
)
SELECT_ALL = f"SELECT {', '.join(COLUMNS)} FROM audit_event ORDER BY seq"


# -- the measured child processes ----------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _raw_rows(job: dict[str, Any]) -> Iterator[list[Any]]:
    """The trail in order from the bare driver, a batch at a time (as the exporter reads it)."""
    if job["backend"] == "sqlite":
        import sqlite3

        connection: Any = sqlite3.connect(job["path"], isolation_level=None)
        cursor = connection.cursor()
    else:
        import psycopg

        connection = psycopg.connect(job["dsn"])
        cursor = connection.cursor(name="bench_export_floor")
    cursor.execute(SELECT_ALL)
    try:
        while batch := cursor.fetchmany(BATCH):
            yield batch
    finally:
        cursor.close()
        connection.close()


def _child_floor(job: dict[str, Any]) -> dict[str, Any]:
    """The floor: rows as JSON lines with json.dumps, no hashing; ``csv`` adds a plain CSV."""
    import csv

    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = 0
    with (out / "events.jsonl").open("w", encoding="utf-8") as lines:
        sheet = (out / "events.csv").open("w", encoding="utf-8", newline="") if job["csv"] else None
        writer = csv.writer(sheet, lineterminator="\r\n") if sheet else None
        if writer:
            writer.writerow(COLUMNS)
        for batch in _raw_rows(job):
            for row in batch:
                lines.write(json.dumps(dict(zip(COLUMNS, row, strict=True))) + "\n")
                if writer:
                    writer.writerow(row)
            rows += len(batch)
        for handle in (lines, sheet):
            if handle is not None:
                handle.flush()
                os.fsync(handle.fileno())
        if sheet:
            sheet.close()
    return {"rows": rows, "seconds": time.perf_counter() - start, "rss_end_mb": _rss_mb()}


def _child_writers(job: dict[str, Any]) -> dict[str, Any]:
    """The exporter's own JSONL + CSV writers on the bare driver's rows: no checks, no tree."""
    from channelflow.audit import bundle

    out = Path(job["out"])
    start = time.perf_counter()
    events = bundle.HashingFile(out, bundle.EVENTS)
    sheet = bundle.HashingFile(out, bundle.EVENTS_CSV)
    event_line, csv_line = bundle.event_line, bundle.csv_line
    rows = 0
    sheet.write(bundle.CSV_HEADER)
    for batch in _raw_rows(job):
        events.write("".join([event_line(row) for row in batch]))
        sheet.write("".join([csv_line(row) for row in batch]))
        rows += len(batch)
    events.close()
    sheet.close()
    return {"rows": rows, "seconds": time.perf_counter() - start, "rss_end_mb": _rss_mb()}


def _profiled(job: dict[str, Any], run: Any) -> Any:
    if not job.get("profile"):
        return run()
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(run)
    finally:
        profiler.dump_stats(job["profile"])


def _child_export(job: dict[str, Any]) -> dict[str, Any]:
    from channelflow.audit.export import Exporter, Selection
    from channelflow.runtime import Runtime
    from channelflow.settings import Settings

    started = time.perf_counter()
    runtime = Runtime(
        Settings(
            database_url=job["url"],
            key_file=Path(job["key_file"]),
            user=None,
            reference_prefix="CF",
            signing_key_file=Path(job["signing_key_file"]),
        )
    )
    workflow, signing_key = runtime.workflow, runtime.signing_key
    ready_rss = _rss_mb()
    opened = time.perf_counter() - started
    marks: list[tuple[float, int, float]] = []

    def progress(size: int) -> None:
        marks.append((time.perf_counter(), size, _rss_mb()))

    selection = Selection(
        first_day=_day(job.get("first_day")),
        last_day=_day(job.get("last_day")),
        cases=tuple(job.get("cases") or ()),
    )
    exporter = Exporter(workflow, signing_key, progress=progress)
    start = time.perf_counter()
    result = _profiled(job, lambda: exporter.export(Path(job["out"]), selection, by=AUDITOR))
    total = time.perf_counter() - start
    end_rss = _rss_mb()
    runtime.close()
    pass_end = marks[-1][0] - start if marks else None
    return {
        "open_s": opened,
        "seconds": total,
        "pass_s": pass_end,
        "first_batch_s": marks[0][0] - start if marks else None,
        "after_pass_s": total - pass_end if pass_end is not None else None,
        "tree_size": result.tree_size,
        "events": result.events,
        "cases": result.cases,
        "ready_rss_mb": ready_rss,
        "pass_rss_mb": [m[2] for m in marks[:: max(1, len(marks) // 20)]] + [marks[-1][2]]
        if marks
        else [],
        "pass_end_rss_mb": marks[-1][2] if marks else None,
        "pass_max_rss_mb": max(m[2] for m in marks) if marks else None,
        "end_rss_mb": end_rss,
        "files": {
            p.relative_to(result.path).as_posix(): p.stat().st_size
            for p in sorted(result.path.rglob("*"))
            if p.is_file()
        },
    }


def _child_verify(job: dict[str, Any]) -> dict[str, Any]:
    from channelflow.audit.offline import verify_bundle

    marks: list[tuple[float, int]] = []

    def progress(count: int) -> None:
        marks.append((time.perf_counter(), count))

    start = time.perf_counter()
    result = _profiled(job, lambda: verify_bundle(Path(job["out"]), progress=progress))
    total = time.perf_counter() - start
    return {
        "seconds": total,
        "events": result.events,
        "tree_size": result.tree_size,
        "first_progress_s": marks[0][0] - start if marks else None,
        "first_progress_count": marks[0][1] if marks else None,
        "last_progress_s": marks[-1][0] - start if marks else None,
        "last_progress_count": marks[-1][1] if marks else None,
        "end_rss_mb": _rss_mb(),
    }


def _child_import(_job: dict[str, Any]) -> dict[str, Any]:
    """What the export's process holds before it reads anything: channelflow imported."""
    import channelflow.audit.export
    import channelflow.audit.offline
    import channelflow.runtime  # noqa: F401

    return {"seconds": 0.0, "rss_end_mb": _rss_mb()}


def _day(text: str | None) -> Any:
    from datetime import date

    return date.fromisoformat(text) if text else None


CHILDREN = {
    "floor": _child_floor,
    "writers": _child_writers,
    "export": _child_export,
    "verify": _child_verify,
    "import": _child_import,
}


def child_main() -> int:
    job = json.loads(sys.stdin.readline())
    answer = CHILDREN[job["what"]](job)
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


# -- the parent ------------------------------------------------------------------------------


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in its own process; its answer, wall time and peak RSS (GNU time)."""
    tmp = RESULTS / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("r", dir=tmp, suffix=".rss") as rss_file:
        start = time.perf_counter()
        completed = subprocess.run(
            [TIME, "-f", "%M", "-o", rss_file.name, str(PYTHON), __file__, "--child"],
            input=json.dumps(job) + "\n",
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")},
            cwd=RESULTS,
            check=False,
        )
        wall = time.perf_counter() - start
        if completed.returncode != 0:
            raise RuntimeError(f"{job['what']} exited {completed.returncode}: {completed.stderr}")
        peak_kib = int(rss_file.read().split()[-1])
    answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    answer.update({"wall_s": wall, "peak_rss_mb": peak_kib / 1024})
    return answer


@dataclass
class Copy:
    """A working copy of the cached data set."""

    backend: str
    url: str  # SQLAlchemy URL
    raw: dict[str, Any]  # how a child reaches it with the bare driver
    key_file: Path
    signing_key_file: Path


def demo_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELFLOW_")}
    env["CHANNELFLOW_KEY_FILE"] = str(folder / "channelflow.key")
    env["CHANNELFLOW_SIGNING_KEY"] = str(folder / "channelflow-signing.key")
    env["CHANNELFLOW_MAIL_TRANSPORT"] = "file"
    env["CHANNELFLOW_MAIL_DIR"] = str(folder / "mail")
    return env


def cached_meta(folder: Path, referrals: int) -> dict[str, Any] | None:
    from channelflow.store import schema

    try:
        meta: dict[str, Any] = json.loads((folder / "meta.json").read_text())
    except FileNotFoundError:
        return None
    fits = meta.get("referrals") == referrals and meta.get("schema") == schema.head_revision()
    keys = all((folder / name).exists() for name in ("channelflow.key", "channelflow-signing.key"))
    return meta if fits and keys else None


def load_demo(folder: Path, db: str, referrals: int) -> dict[str, Any]:
    from benchlib import CHANNELFLOW, machine
    from channelflow.store import schema

    print(f"loading the demo with {referrals:,} referrals into {db} ...", flush=True)
    command = [str(CHANNELFLOW), "init", "--demo", "--referrals", str(referrals), "--json"]
    start = time.perf_counter()
    completed = subprocess.run(
        [*command, "--db", db],
        env=demo_env(folder),
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    load_s = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"channelflow init exited {completed.returncode}: {completed.stderr}")
    summary = json.loads(completed.stdout)["demo"]
    print(f"  loaded {summary['events']:,} events in {load_s:.1f} s", flush=True)
    return {
        "referrals": referrals,
        "events": summary["events"],
        "by_state": summary["by_state"],
        "load_s": load_s,
        "schema": schema.head_revision(),
        "built": machine()["date"],
    }


def sqlite_cache(referrals: int, reuse: bool) -> tuple[dict[str, Any], bool]:
    from benchlib import checkpoint

    folder = CACHE / "sqlite"
    meta = cached_meta(folder, referrals) if reuse else None
    if meta is not None and (folder / "channelflow.db").exists():
        return meta, True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    meta = load_demo(folder, str(folder / "channelflow.db"), referrals)
    checkpoint(folder / "channelflow.db")
    meta["db_bytes"] = (folder / "channelflow.db").stat().st_size
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta, False


def pg_base() -> str:
    from benchlib import PG_ADMIN_URL

    return PG_ADMIN_URL.rsplit("/", 1)[0]


def pg_admin(statement: str) -> None:
    import psycopg

    from benchlib import PG_ADMIN_URL

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(statement)


def postgres_cache(referrals: int, reuse: bool) -> tuple[dict[str, Any], bool]:
    import psycopg

    from benchlib import PG_ADMIN_URL

    folder = CACHE / "postgresql"
    meta = cached_meta(folder, referrals) if reuse else None
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (PG_CACHE_DB,)
        ).fetchone()
    if meta is not None and exists:
        return meta, True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pg_admin(f'DROP DATABASE IF EXISTS "{PG_CACHE_DB}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{PG_CACHE_DB}"')
    meta = load_demo(folder, f"{pg_base()}/{PG_CACHE_DB}", referrals)
    with psycopg.connect(f"{pg_base()}/{PG_CACHE_DB}", autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
        size = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    meta["db_bytes"] = int(size[0]) if size else None
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta, False


@contextmanager
def working_copy(backend: str, workdir: Path) -> Iterator[Copy]:
    folder = CACHE / backend
    keys = (folder / "channelflow.key", folder / "channelflow-signing.key")
    if backend == "sqlite":
        path = workdir / "channelflow.db"
        shutil.copyfile(folder / "channelflow.db", path)
        try:
            yield Copy(backend, f"sqlite:///{path}", {"path": str(path)}, *keys)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    copy = f"cf_bench_export_{os.getpid()}"
    pg_admin(f'CREATE DATABASE "{copy}" TEMPLATE "{PG_CACHE_DB}"')
    try:
        url = f"{pg_base()}/{copy}".replace("postgresql://", "postgresql+psycopg://")
        yield Copy(backend, url, {"dsn": f"{pg_base()}/{copy}"}, *keys)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')


def raw_query(copy: Copy, sql: str) -> list[Any]:
    if copy.backend == "sqlite":
        import sqlite3

        connection: Any = sqlite3.connect(copy.raw["path"])
        try:
            return list(connection.execute(sql).fetchall())
        finally:
            connection.close()
    import psycopg

    with psycopg.connect(copy.raw["dsn"]) as connection:
        return list(connection.execute(sql).fetchall())


def pick_cases(copy: Copy, count: int) -> list[str]:
    """``count`` references spread evenly over the referrals (by id)."""
    references = [row[0] for row in raw_query(copy, "SELECT reference FROM referral ORDER BY id")]
    step = max(1, len(references) // count)
    return references[step // 2 :: step][:count]


def load_day(copy: Copy) -> str:
    """The local date the data set's events were recorded on (its first event's)."""
    from datetime import datetime

    from channelflow import clock

    first = raw_query(copy, "SELECT recorded_at FROM audit_event ORDER BY seq LIMIT 1")[0][0]
    return clock.local_date(datetime.fromisoformat(first.replace("Z", "+00:00"))).isoformat()


def measure_backend(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cache = sqlite_cache if name == "sqlite" else postgres_cache
    meta, reused = cache(args.referrals, args.reuse)
    if reused:
        print(f"{name}: reusing the data set built {meta['built']}", flush=True)
    if meta["events"] < EVENTS_GOAL:
        print(f"  note: the data set has {meta['events']:,} events, fewer than 1,000,000")
    result: dict[str, Any] = {"data_set": {**meta, "reused_cache": reused}, "rounds": []}
    with working_copy(name, workdir) as copy:
        base = {"backend": name, **copy.raw}
        app = {
            "url": copy.url,
            "key_file": str(copy.key_file),
            "signing_key_file": str(copy.signing_key_file),
        }
        result["import_only"] = run_child({"what": "import"})
        print(
            f"{name}: a process with channelflow imported holds "
            f"{result['import_only']['peak_rss_mb']:.1f} MB",
            flush=True,
        )
        for round_no in range(args.rounds):
            measured: dict[str, Any] = {"loadavg": os.getloadavg()[0]}
            order = ["floor", "floor_csv", "writers", "export"]
            if round_no % 2:
                order.reverse()
            for what in order:
                out = workdir / f"{what}-{round_no}"
                if what == "export":
                    measured["export"] = run_child(
                        {"what": "export", "out": str(out), **app, **base}
                    )
                    measured["verify"] = run_child({"what": "verify", "out": str(out)})
                else:
                    job = {"what": "writers" if what == "writers" else "floor", "out": str(out)}
                    job["csv"] = what == "floor_csv"
                    measured[what] = run_child({**job, **base})
                shutil.rmtree(out, ignore_errors=True)
            result["rounds"].append(measured)
            print_round(name, round_no, measured)
        cases = pick_cases(copy, args.cases)
        day = load_day(copy)
        result["filtered"] = {"cases": cases, "day": day, "runs": []}
        for round_no in range(args.rounds):
            runs: dict[str, Any] = {}
            for label, extra in (
                ("cases", {"cases": cases}),
                ("cases+dates", {"cases": cases, "first_day": day, "last_day": day}),
            ):
                out = workdir / f"filtered-{label}-{round_no}"
                exported = run_child({"what": "export", "out": str(out), **app, **base, **extra})
                verified = run_child({"what": "verify", "out": str(out)})
                runs[label] = {"export": exported, "verify": verified}
                print(
                    f"  filtered ({label}, {len(cases)} cases): export {exported['seconds']:.2f} s "
                    f"({exported['events']:,} of {exported['tree_size']:,} events, pass "
                    f"{exported['pass_s']:.2f} s, peak {exported['peak_rss_mb']:.0f} MB), "
                    f"verify {verified['seconds']:.3f} s",
                    flush=True,
                )
                shutil.rmtree(out, ignore_errors=True)
            result["filtered"]["runs"].append(runs)
        if args.profile:
            result["profile"] = profile_backend(name, app, base, workdir)
    return result


def print_round(name: str, round_no: int, m: dict[str, Any]) -> None:
    export, verify, floor = m["export"], m["verify"], m["floor"]
    events = export["tree_size"]
    print(
        f"{name} round {round_no + 1} (load {m['loadavg']:.1f}): floor {floor['seconds']:.2f} s "
        f"({floor['rows'] / floor['seconds']:,.0f} rows/s, {floor['peak_rss_mb']:.0f} MB); "
        f"floor+csv {m['floor_csv']['seconds']:.2f} s; exporter's writers alone "
        f"{m['writers']['seconds']:.2f} s; export {export['seconds']:.2f} s "
        f"(pass {export['pass_s']:.2f} s = {events / export['pass_s']:,.0f} events/s; "
        f"whole {events / export['seconds']:,.0f} events/s; peak {export['peak_rss_mb']:.0f} MB, "
        f"{export['pass_end_rss_mb']:.0f} MB at the pass's end); verify {verify['seconds']:.2f} s "
        f"({verify['events'] / verify['seconds']:,.0f} events/s, "
        f"peak {verify['peak_rss_mb']:.0f} MB)",
        flush=True,
    )


def profile_backend(
    name: str, app: dict[str, Any], base: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    import pstats

    out = workdir / "profiled"
    stats_export = RESULTS / f"export-export-{name}.pstats"
    stats_verify = RESULTS / f"export-verify-{name}.pstats"
    exported = run_child(
        {"what": "export", "out": str(out), "profile": str(stats_export), **app, **base}
    )
    verified = run_child({"what": "verify", "out": str(out), "profile": str(stats_verify)})
    shutil.rmtree(out, ignore_errors=True)
    for label, path, answer in (
        ("export", stats_export, exported),
        ("verify", stats_verify, verified),
    ):
        print(f"\n{name}: cProfile of one {label} ({answer['seconds']:.1f} s profiled; {path})")
        stats = pstats.Stats(str(path))
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)
    return {"export": exported, "verify": verified, "files": [str(stats_export), str(stats_verify)]}


def medians(result: dict[str, Any]) -> dict[str, Any]:
    from benchlib import median

    rounds = result["rounds"]

    def each(path: str, field_name: str) -> list[float]:
        return [float(r[path][field_name]) for r in rounds]

    sizes = [r["export"]["tree_size"] for r in rounds]
    floor_rates = [r["floor"]["rows"] / r["floor"]["seconds"] for r in rounds]
    pass_rates = [s / r["export"]["pass_s"] for s, r in zip(sizes, rounds, strict=True)]
    export_rates = [s / r["export"]["seconds"] for s, r in zip(sizes, rounds, strict=True)]
    verify_rates = [r["verify"]["events"] / r["verify"]["seconds"] for r in rounds]
    writer_rates = [r["writers"]["rows"] / r["writers"]["seconds"] for r in rounds]
    floor_csv_rates = [r["floor_csv"]["rows"] / r["floor_csv"]["seconds"] for r in rounds]
    return {
        "events": median(sizes),
        "floor_s": median(each("floor", "seconds")),
        "floor_rate": median(floor_rates),
        "floor_peak_mb": median(each("floor", "peak_rss_mb")),
        "floor_csv_s": median(each("floor_csv", "seconds")),
        "floor_csv_rate": median(floor_csv_rates),
        "writers_s": median(each("writers", "seconds")),
        "writers_rate": median(writer_rates),
        "export_s": median(each("export", "seconds")),
        "export_rate": median(export_rates),
        "pass_s": median(each("export", "pass_s")),
        "pass_rate": median(pass_rates),
        "after_pass_s": median(each("export", "after_pass_s")),
        "export_peak_mb": median(each("export", "peak_rss_mb")),
        "export_pass_end_mb": median(each("export", "pass_end_rss_mb")),
        "verify_s": median(each("verify", "seconds")),
        "verify_rate": median(verify_rates),
        "verify_peak_mb": median(each("verify", "peak_rss_mb")),
        "pass_over_floor": median([r["export"]["pass_s"] / r["floor"]["seconds"] for r in rounds]),
        "export_over_floor": median(
            [r["export"]["seconds"] / r["floor"]["seconds"] for r in rounds]
        ),
        "verify_over_floor": median(
            [r["verify"]["seconds"] / r["floor"]["seconds"] for r in rounds]
        ),
        "writers_over_floor": median(
            [r["writers"]["seconds"] / r["floor"]["seconds"] for r in rounds]
        ),
    }


def report(results: dict[str, Any]) -> bool:
    from benchlib import print_table

    rows, verdicts = [], []
    for name, res in results["backends"].items():
        if "skipped" in res:
            rows.append((name, f"skipped ({res['skipped']})", "-", "-", "-", "-"))
            continue
        m = res["summary"] = medians(res)
        events = int(m["events"])
        rows += [
            (name, "floor: raw cursor -> json.dumps lines", m["floor_s"], m["floor_rate"], 1.0,
             m["floor_peak_mb"]),
            (name, "floor + plain csv.writer", m["floor_csv_s"], m["floor_csv_rate"],
             m["floor_csv_s"] / m["floor_s"], "-"),
            (name, "exporter's JSONL+CSV writers alone", m["writers_s"], m["writers_rate"],
             m["writers_over_floor"], "-"),
            (name, "export: pass (check+tree+JSONL+CSV)", m["pass_s"], m["pass_rate"],
             m["pass_over_floor"], f"{m['export_pass_end_mb']:.1f} (at pass end)"),
            (name, "export: whole (incl. report, bag)", m["export_s"], m["export_rate"],
             m["export_over_floor"], m["export_peak_mb"]),
            (name, "offline verify of the bundle", m["verify_s"], m["verify_rate"],
             m["verify_over_floor"], m["verify_peak_mb"]),
        ]  # fmt: skip
        checks = (
            (f"data set of >= {EVENTS_GOAL:,} events", events >= EVENTS_GOAL, f"{events:,}"),
            (
                "export JSONL + CSV part (the pass) >= 100,000 events/s",
                m["pass_rate"] >= RATE_GOAL,
                f"{m['pass_rate']:,.0f} events/s (whole export {m['export_rate']:,.0f})",
            ),
            (
                f"export peak memory < {MEMORY_GOAL_MB:g} MB",
                m["export_peak_mb"] < MEMORY_GOAL_MB,
                f"{m['export_peak_mb']:.1f} MB",
            ),
            (
                "offline verification >= 100,000 events/s",
                m["verify_rate"] >= RATE_GOAL,
                f"{m['verify_rate']:,.0f} events/s",
            ),
        )
        for what, met, figure in checks:
            verdicts.append(f"{'PASS' if met else 'FAIL'} {name}: {what}: {figure}")
    params = results["params"]
    print_table(
        f"medians over {params['rounds']} rounds; each measurement in its own process",
        ("backend", "measurement", "seconds", "events/s", "x floor", "peak RSS MB"),
        rows,
    )
    print()
    for line in verdicts:
        print(line)
    return any(line.startswith("FAIL") for line in verdicts)


def audit_source_digest() -> str:
    """SHA-256 of src/channelflow/audit/*.py: which version of the code was measured."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "src" / "channelflow" / "audit").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def main() -> int:
    if "--child" in sys.argv:
        return child_main()
    from benchlib import filesystem, fresh_dir, machine, write_json
    from planning import postgres_reachable, postgres_settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--referrals", type=int, default=265_000)
    parser.add_argument(
        "--backend", action="append", choices=("sqlite", "postgresql"), default=None
    )
    parser.add_argument("--reuse", action="store_true", help=f"reuse a data set in {CACHE}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", type=int, default=10, help="cases in the filtered export")
    parser.add_argument("--profile", action="store_true", help="cProfile one export and verify")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]
    started = time.perf_counter()
    workdir = fresh_dir("export")
    results: dict[str, Any] = {
        "benchmark": "export",
        "machine": machine(),
        "params": {**vars(args), "backends": backends},
        "workdir": str(workdir),
        "filesystem": filesystem(workdir),
        "audit_source_sha256": audit_source_digest(),
        "backends": {},
    }
    print(f"audit code {results['audit_source_sha256']}, {results['machine']['git']}", flush=True)
    try:
        for name in backends:
            if name == "postgresql" and (why := postgres_reachable()) is not None:
                print(f"postgresql: skipped, the server is unreachable ({why})")
                results["backends"][name] = {"skipped": why}
                continue
            results["backends"][name] = measure_backend(name, args, workdir)
        if any("skipped" not in r for n, r in results["backends"].items() if n == "postgresql"):
            results["postgres_settings"] = postgres_settings()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = time.perf_counter() - started
    if audit_source_digest() != results["audit_source_sha256"]:
        results["audit_source_changed"] = True
        print("WARNING: src/channelflow/audit changed during the run; the figures mix versions")
    failed = report(results)
    print(f"\nwrote {write_json('export', results)} ({results['elapsed_s']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
