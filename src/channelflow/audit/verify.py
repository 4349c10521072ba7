"""Re-walking the whole audit trail, in constant memory."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, text

from channelflow.audit.canonical import GENESIS_HASH, event_hash
from channelflow.audit.keys import AuditKey
from channelflow.exceptions import IntegrityFailure

_BATCH = 5000
_COLUMNS = (
    "seq, entity_type, entity_id, event, from_state, to_state, actor, role, "
    "occurred_at, recorded_at, reason, data, prev_hash, hash, mac"
)


@dataclass(frozen=True)
class Verification:
    count: int
    head: str


def count_events(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM audit_event")).scalar_one())


def verify_chain(
    engine: Engine, key: AuditKey, *, progress: Callable[[int], None] | None = None
) -> Verification:
    """Check every link, then that each referral's row agrees with its trail.

    Raises :class:`IntegrityFailure` naming the first bad sequence number.
    """
    expected_seq, previous, count = 1, GENESIS_HASH, 0
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=_BATCH).execute(
            text(f"SELECT {_COLUMNS} FROM audit_event ORDER BY seq")
        )
        for batch in result.partitions(_BATCH):
            for row in batch:
                seq = row[0]
                if seq != expected_seq:
                    missing = "missing" if seq > expected_seq else "out of order"
                    raise IntegrityFailure(
                        f"audit event {expected_seq} is {missing}", sequence=expected_seq
                    )
                if row[12] != previous:
                    raise IntegrityFailure(
                        f"audit event {seq} does not follow event {seq - 1}", sequence=seq
                    )
                digest = event_hash(
                    seq=seq,
                    entity_type=row[1],
                    entity_id=row[2],
                    event=row[3],
                    from_state=row[4],
                    to_state=row[5],
                    actor=row[6],
                    role=row[7],
                    occurred_at=row[8],
                    recorded_at=row[9],
                    reason=row[10],
                    data=row[11],
                    prev_hash=previous,
                )
                if digest != row[13]:
                    raise IntegrityFailure(f"audit event {seq} was altered", sequence=seq)
                if not hmac.compare_digest(key.mac(digest), row[14]):
                    raise IntegrityFailure(
                        f"audit event {seq} is not signed by this database's audit key",
                        sequence=seq,
                    )
                previous, expected_seq = digest, seq + 1
            count = expected_seq - 1
            if progress is not None:
                progress(count)
        _check_referrals_match_trail(connection, last_seq=count)
    return Verification(count=count, head=previous)


def _check_referrals_match_trail(connection: object, *, last_seq: int) -> None:
    """Catch events cut from the end of the trail: each referral's version counts its events."""
    from sqlalchemy.engine import Connection

    assert isinstance(connection, Connection)
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
            f"referral {mismatch[0]} records {mismatch[1]} changes but the audit trail holds "
            f"{mismatch[2]}; events after sequence {last_seq} are missing",
            sequence=last_seq + 1,
        )
