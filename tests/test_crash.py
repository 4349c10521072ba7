"""A writer killed with SIGKILL at a random moment loses nothing it acknowledged and leaves
nothing half-written, on SQLite and on PostgreSQL.

The writer is a separate Python process that opens a `Runtime` and drives referrals through
the lifecycle for ever (open, screen, refer, accept, start, three reviews, exit, then a new
referral), printing ``ACK <reference> <version>`` only after each call has returned, that is
after its transaction committed. The next writer picks up wherever the last one was killed.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from channelflow.audit.verify import verify_chain
from channelflow.runtime import Runtime

pytestmark = pytest.mark.slow

KILLS = 4
TIMEOUT = 60

WRITER = """
import sys
from datetime import date
from pathlib import Path

from sqlalchemy import text

from channelflow import clock
from channelflow.runtime import Runtime
from channelflow.settings import Settings
from channelflow.workflow.engine import NewReferral

url, key_file, limit = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
runtime = Runtime(
    Settings(database_url=url, key_file=key_file, user=None, reference_prefix="CF")
)
workflow = runtime.workflow
REVIEWS = 3
NEXT = {
    "received": ("screen", "pat", {"outcome": "proceed"}),
    "screened": ("refer_to_panel", "cora", {}),
    "panel_review": ("accept", "chris", {"consent": "given", "lead": "lee"}),
    "accepted": ("start_intervention", "cora", {"support_plan": "SP-1"}),
}


def open_case():
    with runtime.engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT reference, state, version FROM referral WHERE state <> 'closed' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).first()


print("READY", flush=True)
fired = 0
while limit == 0 or fired < limit:
    case = open_case()
    if case is None:
        details = NewReferral(
            received_on=clock.today(),
            sector="education",
            concern="extreme_right_wing",
            subject_name="Crash Test",
            date_of_birth=date(1990, 3, 4),
            address="1 Example Street",
        )
        reference, version = workflow.open_referral(details, by="cora"), 1
    else:
        reference, state, version = case
        if state == "intervention":
            if version < 5 + REVIEWS:
                event, by, values = "review", "chris", {"outcome": "progressing"}
            else:
                event, by, values = "exit", "chris", {"summary": "objectives met"}
        else:
            event, by, values = NEXT[state]
        result = workflow.fire(reference, event, by=by, values=values, expected_version=version)
        version = result.version
    print(f"ACK {reference} {version}", flush=True)
    fired += 1
runtime.close()
"""


@dataclass(frozen=True)
class Ack:
    reference: str
    version: int


def run_writer(
    runtime: Runtime, tmp_path: Path, name: str, *, limit: int = 0, kill_after: float | None = None
) -> tuple[int, list[Ack]]:
    """Run a writer until it has fired ``limit`` times, or SIGKILL it ``kill_after`` seconds
    after it is ready; its exit status and what it acknowledged."""
    errors = tmp_path / f"{name}.err"
    with (
        open(errors, "w") as err,
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                runtime.settings.database_url,
                str(runtime.settings.key_file),
                str(limit),
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        ) as process,
    ):
        assert process.stdout is not None
        ready = process.stdout.readline()
        if ready != "READY\n":
            process.kill()
        elif kill_after is not None:
            time.sleep(kill_after)
            process.send_signal(signal.SIGKILL)
        output = process.stdout.read()
        status = process.wait(timeout=TIMEOUT)
    assert ready == "READY\n", f"the writer did not start: {errors.read_text()}"
    return status, acks_in(output)


def acks_in(output: str) -> list[Ack]:
    """Every complete ACK line; a line cut short by the kill acknowledges nothing."""
    acks = []
    for line in output.splitlines(keepends=True):
        if line.endswith("\n") and line.startswith("ACK "):
            _, reference, version = line.split()
            acks.append(Ack(reference, int(version)))
    return acks


def scalar(engine: Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql)).scalar_one())


def event_total(engine: Engine) -> int:
    return scalar(engine, "SELECT count(*) FROM audit_event")


def versions(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT reference, version FROM referral"))
        return {reference: int(version) for reference, version in rows}


def wait_until_quiet(engine: Engine) -> None:
    """On PostgreSQL, wait for the killed writer's server backend to finish with its work."""
    if engine.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + TIMEOUT
    busy = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle'"
    )
    while scalar(engine, busy):
        assert time.monotonic() < deadline, "the killed writer's backend is still busy"
        time.sleep(0.05)


def assert_nothing_half_written(runtime: Runtime) -> None:
    engine = runtime.engine
    verified = verify_chain(engine, runtime.key)
    with engine.connect() as connection:
        seqs = list(connection.execute(text("SELECT seq FROM audit_event ORDER BY seq")).scalars())
        mismatched = connection.execute(
            text(
                "SELECT r.reference, r.version, count(a.seq) FROM referral r "
                "LEFT JOIN audit_event a "
                "ON a.entity_type = 'referral' AND a.entity_id = r.reference "
                "GROUP BY r.reference, r.version HAVING count(a.seq) <> r.version"
            )
        ).all()
        orphans = connection.execute(
            text(
                "SELECT count(*) FROM person p "
                "WHERE NOT EXISTS (SELECT 1 FROM referral r WHERE r.person_id = p.id)"
            )
        ).scalar_one()
        exits_without_reviews = connection.execute(
            text(
                "SELECT r.reference FROM referral r "
                "LEFT JOIN post_exit_review p ON p.referral_id = r.id "
                "GROUP BY r.reference, r.exited_on "
                "HAVING count(p.id) <> CASE WHEN r.exited_on IS NULL THEN 0 ELSE 2 END"
            )
        ).all()
    assert seqs == list(range(1, verified.count + 1))
    assert mismatched == []
    assert orphans == 0
    assert exits_without_reviews == []


def test_killed_writer_loses_no_acknowledged_change_and_leaves_nothing_half_written(
    runtime: Runtime, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    engine = runtime.engine
    acknowledged: dict[str, int] = {}

    for round_number in range(KILLS):
        before = event_total(engine)
        delay = rng.uniform(0.2, 1.5)
        name = f"writer-{round_number}"
        status, acks = run_writer(runtime, tmp_path, name, kill_after=delay)
        assert status == -signal.SIGKILL, (tmp_path / f"{name}.err").read_text()
        wait_until_quiet(engine)
        context = f"seed {seed}, kill {round_number} after {delay:.2f}s"

        # A fresh process carried on from wherever the last one was killed.
        assert acks, f"{context}: the writer acknowledged nothing"
        for ack in acks:
            acknowledged[ack.reference] = max(acknowledged.get(ack.reference, 0), ack.version)
        # Every acknowledged change is there; at most one more committed without its ACK.
        added = event_total(engine) - before
        assert len(acks) <= added <= len(acks) + 1, context
        stored = versions(engine)
        lost = {ref: v for ref, v in acknowledged.items() if stored.get(ref, 0) < v}
        assert lost == {}, context
        assert_nothing_half_written(runtime)

    status, final_acks = run_writer(runtime, tmp_path, "finisher", limit=5)
    assert status == 0, (tmp_path / "finisher.err").read_text()
    assert len(final_acks) == 5
    stored = versions(engine)
    assert all(stored[ack.reference] >= ack.version for ack in final_acks)
    assert len(acknowledged) >= 1
    assert_nothing_half_written(runtime)
