"""Re-walking the whole audit trail, in constant memory."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from channelflow.audit.canonical import GENESIS_HASH
from channelflow.audit.keys import AuditKey
from channelflow.audit.walk import Run, fetch_batches, range_query, walk
from channelflow.exceptions import IntegrityFailure

# Below this many events one process verifies alone; above it a helper process checks the
# second half at the same time (starting it costs about a tenth of a second).
PARALLEL_FROM = 200_000


@dataclass(frozen=True)
class Verification:
    count: int
    head: str


def count_events(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM audit_event")).scalar_one())


def verify_chain(
    engine: Engine,
    key: AuditKey,
    *,
    progress: Callable[[int], None] | None = None,
    parallel_from: int = PARALLEL_FROM,
) -> Verification:
    """Check every link, then that each referral's row agrees with its trail.

    Raises :class:`IntegrityFailure` naming the first bad sequence number.
    """
    with engine.connect() as connection:
        last = int(
            connection.execute(text("SELECT coalesce(max(seq), 0) FROM audit_event")).scalar_one()
        )
        split = last // 2 + 1 if last >= parallel_from and _helper_can_read(engine) else None
        helper = _start_helper(engine, key, first=split, last=last) if split else None
        try:
            scale = (
                (lambda done: progress(done * last // (split - 1)))
                if (progress and split)
                else progress
            )
            with closing(_batches(connection, last=split - 1 if split else None)) as batches:
                head = walk(batches, key, first_seq=1, prev_hash=GENESIS_HASH, progress=scale)
            if helper is not None and split is not None:
                head = _stitch(head, _finish_helper(helper), split=split)
        finally:
            if helper is not None:
                _stop_helper(helper)
        _check_referrals_match_trail(connection, last_seq=head.last_seq)
    return Verification(count=head.last_seq, head=head.last_hash or GENESIS_HASH)


def _batches(connection: Connection, *, last: int | None) -> Generator[list[Any], None, None]:
    """The trail in order, in batches of plain tuples, holding one batch in memory.

    Uses the driver's cursor directly (a server-side cursor on PostgreSQL, which needs the
    transaction begun first): SQLAlchemy's row objects would cost a third of verification's
    time. Rows appended while the walk runs lie past ``last`` or past the end it saw, and the
    trail is append-only, so the walk's view of the rows it checks cannot change under it.
    """
    connection.exec_driver_sql("SELECT 1")  # make sure the transaction has begun
    driver = connection.connection.driver_connection
    assert driver is not None
    postgres = connection.dialect.name == "postgresql"
    cursor = driver.cursor(name="channelflow_verify") if postgres else driver.cursor()
    sql = range_query(upper_bound=last is not None).format(first=1, last=last)
    try:
        yield from fetch_batches(cursor, sql)
    finally:
        cursor.close()


def _helper_can_read(engine: Engine) -> bool:
    database = engine.url.database
    return engine.dialect.name == "postgresql" or bool(database and database != ":memory:")


def _start_helper(engine: Engine, key: AuditKey, *, first: int, last: int) -> subprocess.Popen[str]:
    if engine.dialect.name == "sqlite":
        database = str(engine.url.database)
    else:
        database = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    helper = subprocess.Popen(
        # -I: isolated, so nothing in the working directory (or PYTHON* variables) can stand
        # in for the helper, which is handed the key.
        [sys.executable, "-I", "-m", "channelflow.audit.walk"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert helper.stdin is not None
    # The key and any database password travel over the pipe, never on the command line.
    job = {
        "backend": engine.dialect.name,
        "database": database,
        "first": first,
        "last": last,
        "key": key.secret.hex(),
    }
    helper.stdin.write(json.dumps(job) + "\n")
    helper.stdin.close()
    return helper


def _stop_helper(helper: subprocess.Popen[str]) -> None:
    if helper.poll() is None:
        helper.kill()
    if helper.stdout is not None and not helper.stdout.closed:
        helper.stdout.close()
    helper.wait()


def _finish_helper(helper: subprocess.Popen[str]) -> dict[str, Any] | None:
    """The helper's answer, or None if it died without giving one."""
    assert helper.stdout is not None
    answer = helper.stdout.readline()
    helper.wait()
    if helper.returncode != 0 or not answer:
        return None
    result: dict[str, Any] = json.loads(answer)
    return result


def _stitch(first_half: Run, second_half: dict[str, Any] | None, *, split: int) -> Run:
    """Join the halves, reporting failures in sequence order: the end of the first half,
    then the join, then whatever the helper found further on."""
    if first_half.last_seq != split - 1:
        missing = first_half.last_seq + 1
        raise IntegrityFailure(f"audit event {missing} is missing", sequence=missing)
    if second_half is None:
        raise IntegrityFailure(
            f"the helper checking audit events {split} onwards failed; run verify again"
        )
    if second_half["first_prev_hash"] != first_half.last_hash:
        raise IntegrityFailure(
            f"audit event {split} does not follow event {split - 1}", sequence=split
        )
    if not second_half["ok"]:
        raise IntegrityFailure(second_half["message"], sequence=second_half["sequence"])
    if second_half["last_hash"] is None:
        raise IntegrityFailure(f"audit event {split} is missing", sequence=split)
    return Run(1, GENESIS_HASH, second_half["last_seq"], second_half["last_hash"])


def _check_referrals_match_trail(connection: Connection, *, last_seq: int) -> None:
    """Catch events cut from the end of the trail: each referral's version counts its events."""
    mismatch = connection.execute(
        text(
            "SELECT r.reference, r.version, count(a.seq) FROM referral r "
            "LEFT JOIN audit_event a ON a.entity_type = 'referral' AND a.entity_id = r.reference "
            "GROUP BY r.reference, r.version HAVING count(a.seq) <> r.version "
            "ORDER BY r.reference LIMIT 1"
        )
    ).first()
    if mismatch is not None:
        raise IntegrityFailure(
            f"audit event {last_seq + 1} onwards is missing: referral {mismatch[0]} records "
            f"{mismatch[1]} changes but the trail holds {mismatch[2]}",
            sequence=last_seq + 1,
        )
