"""Appending to the audit trail inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from channelflow import clock
from channelflow.audit.canonical import GENESIS_HASH, canonical_json, event_hash, format_time
from channelflow.audit.keys import AuditKey
from channelflow.store.db import DriverConnection, DriverStatement
from channelflow.store.models import AuditEvent

REFERRAL_ENTITY = "referral"


@dataclass(frozen=True)
class EventDraft:
    """An event about to be appended; the chain gives it its sequence number and hashes."""

    entity_type: str
    entity_id: str
    event: str
    from_state: str | None
    to_state: str | None
    actor: str
    role: str
    occurred_at: datetime
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str
    recorded_at: str = ""


def link(draft: EventDraft, *, head: ChainHead, recorded_at: str, key: AuditKey) -> dict[str, Any]:
    """The complete audit row that follows ``head``."""
    row: dict[str, Any] = {
        "seq": head.seq + 1,
        "entity_type": draft.entity_type,
        "entity_id": draft.entity_id,
        "event": draft.event,
        "from_state": draft.from_state,
        "to_state": draft.to_state,
        "actor": draft.actor,
        "role": draft.role,
        "occurred_at": format_time(draft.occurred_at),
        "recorded_at": recorded_at,
        "reason": draft.reason,
        "data": canonical_json(draft.data),
        "prev_hash": head.hash,
    }
    row["hash"] = event_hash(**row)
    row["mac"] = key.mac(row["hash"])
    return row


_audit = AuditEvent.__table__  # type: ignore[attr-defined]
_HEAD = select(_audit.c.seq, _audit.c.hash, _audit.c.recorded_at).order_by(_audit.c.seq.desc())
_READ_HEAD = DriverStatement(_HEAD.limit(1))
# The head as a one-row subquery, for callers that read it along with other rows (join it with
# ``outerjoin(HEAD, true())``, select ``HEAD_COLUMNS``, read it back with `head_of`).
HEAD = _HEAD.limit(1).subquery("chain_head")
HEAD_COLUMNS = (
    HEAD.c.seq.label("head_seq"),
    HEAD.c.hash.label("head_hash"),
    HEAD.c.recorded_at.label("head_recorded_at"),
)


def head_of(row: Any) -> ChainHead:
    """The head read through :data:`HEAD_COLUMNS`."""
    if row.head_seq is None:
        return ChainHead(0, GENESIS_HASH)
    return ChainHead(row.head_seq, row.head_hash, row.head_recorded_at)


_INSERT = DriverStatement(insert(_audit), column_keys=[column.name for column in _audit.c])


def read_head(connection: Connection | DriverConnection) -> ChainHead:
    found = _READ_HEAD.first(connection, {})
    if found is None:
        return ChainHead(0, GENESIS_HASH)
    return ChainHead(found.seq, found.hash, found.recorded_at)


def append(
    connection: Connection | DriverConnection,
    drafts: list[EventDraft],
    *,
    key: AuditKey,
    head: ChainHead | None = None,
) -> list[dict[str, Any]]:
    """Append ``drafts`` in order; they commit or vanish with the caller's transaction.

    ``connection`` is a writer's (`store.db.write_connection`), which holds the writers' lock
    to commit, so appends happen one after another and the chain never forks. ``head`` is
    the chain's head if the caller already read it in this transaction. The recording time
    never runs backwards along the chain (even between machines whose clocks disagree), so
    the trail's order is its recording order.
    """
    if head is None:
        head = read_head(connection)
    recorded_at = max(format_time(clock.now()), head.recorded_at)
    rows = []
    for draft in drafts:
        row = link(draft, head=head, recorded_at=recorded_at, key=key)
        rows.append(row)
        head = ChainHead(row["seq"], row["hash"], recorded_at)
    # Nothing reads the new rows back, so on PostgreSQL they may travel with the COMMIT.
    _INSERT.executemany(connection, rows, with_commit=True)
    return rows
