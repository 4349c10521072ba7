"""Canonical JSON (RFC 8785 for the values channelflow stores) and the chain's hash.

Event data holds only strings, integers, booleans, nulls, lists and objects with ASCII keys,
for which sorted keys, no whitespace and UTF-8 is exactly the JCS encoding.
"""

from __future__ import annotations

import hashlib
import json
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


def _string(value: str | None) -> str:
    return "null" if value is None else str(encode_basestring(value))


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
    """SHA-256 over the canonical JSON object of one event.

    ``data`` is already canonical JSON text. The object is spelled out with its keys in sorted
    order rather than built with ``json.dumps`` because verification runs this per row and it
    is several times faster; `tests/test_audit_canonical.py` proves the two are identical.
    """
    document = (
        f'{{"actor":{_string(actor)},"data":{data},"entity_id":{_string(entity_id)},'
        f'"entity_type":{_string(entity_type)},"event":{_string(event)},'
        f'"from_state":{_string(from_state)},"occurred_at":{_string(occurred_at)},'
        f'"prev_hash":{_string(prev_hash)},"reason":{_string(reason)},'
        f'"recorded_at":{_string(recorded_at)},"role":{_string(role)},"seq":{int(seq)},'
        f'"to_state":{_string(to_state)}}}'
    )
    return hashlib.sha256(document.encode("utf-8")).hexdigest()
