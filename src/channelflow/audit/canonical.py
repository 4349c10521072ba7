"""Canonical JSON (RFC 8785 for the values channelflow stores) and the chain's hash.

Event data holds only strings, integers, booleans, nulls, lists and objects with ASCII keys,
for which sorted keys, no whitespace and UTF-8 is exactly the JCS encoding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

GENESIS_HASH = "0" * 64
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def canonical_json(value: Any) -> str:
    _refuse_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("audit data must not hold floating-point numbers")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def format_time(instant: datetime) -> str:
    """Fixed-width UTC text: sorts as time does and hashes the same on every backend."""
    if instant.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return instant.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _nullable(value: str | None) -> str:
    return "null" if value is None else _quote(value)


_quote: Callable[[str], str] = encode_basestring


def event_hash(
    *,
    seq: int,
    entity_type: str,
    entity_id: str,
    event: str,
    from_state: str | None,
    to_state: str | None,
    actor: str,
    role: str,
    occurred_at: str,
    recorded_at: str,
    reason: str | None,
    data: str,
    prev_hash: str,
) -> str:
    """SHA-256 over the canonical JSON object of one event (``data`` is canonical JSON text)."""
    return row_hash(
        seq,
        entity_type,
        entity_id,
        event,
        from_state,
        to_state,
        actor,
        role,
        occurred_at,
        recorded_at,
        reason,
        data,
        prev_hash,
    )


def row_hash(
    seq: int,
    entity_type: str,
    entity_id: str,
    event: str,
    from_state: str | None,
    to_state: str | None,
    actor: str,
    role: str,
    occurred_at: str,
    recorded_at: str,
    reason: str | None,
    data: str,
    prev_hash: str,
) -> str:
    """:func:`event_hash` with positional arguments in the audit table's column order.

    The object is spelled out with its keys in sorted order rather than built with
    ``json.dumps`` because verification runs this per row and it is several times faster;
    `tests/test_audit_canonical.py` proves the two are identical.
    """
    quote = _quote
    document = (
        f'{{"actor":{quote(actor)},"data":{data},"entity_id":{quote(entity_id)},'
        f'"entity_type":{quote(entity_type)},"event":{quote(event)},'
        f'"from_state":{_nullable(from_state)},"occurred_at":{quote(occurred_at)},'
        f'"prev_hash":{quote(prev_hash)},"reason":{_nullable(reason)},'
        f'"recorded_at":{quote(recorded_at)},"role":{quote(role)},"seq":{int(seq)},'
        f'"to_state":{_nullable(to_state)}}}'
    )
    return hashlib.sha256(document.encode("utf-8")).hexdigest()
