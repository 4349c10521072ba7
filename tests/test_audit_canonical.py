from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelflow.audit.canonical import canonical_json, event_hash, format_time, parse_time

texts = st.text(max_size=40)
optional_texts = st.none() | texts
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text("abcdefghij_", min_size=1, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(
    seq=st.integers(1, 2**40),
    strings=st.lists(texts, min_size=6, max_size=6),
    optional=st.lists(optional_texts, min_size=3, max_size=3),
    data=st.dictionaries(st.text("abcdefghij_", min_size=1, max_size=8), json_values, max_size=5),
)
def test_fast_event_hash_equals_sha256_of_canonical_json(
    seq: int, strings: list[str], optional: list[str | None], data: dict[str, object]
) -> None:
    fields = {
        "seq": seq,
        "entity_type": strings[0],
        "entity_id": strings[1],
        "event": strings[2],
        "actor": strings[3],
        "role": strings[4],
        "occurred_at": strings[5],
        "recorded_at": strings[5],
        "from_state": optional[0],
        "to_state": optional[1],
        "reason": optional[2],
        "prev_hash": "0" * 64,
    }
    data_text = canonical_json(data)
    document = json.dumps(
        {**fields, "data": data}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert event_hash(**fields, data=data_text) == hashlib.sha256(document.encode()).hexdigest()


def test_canonical_json_sorts_keys_without_whitespace_in_utf8() -> None:
    assert canonical_json({"b": 1, "a": ["é", None, True]}) == '{"a":["é",null,true],"b":1}'


def test_canonical_json_refuses_floats() -> None:
    with pytest.raises(TypeError):
        canonical_json({"score": 1.5})


def test_audit_times_are_fixed_width_utc_and_round_trip() -> None:
    instant = datetime(2026, 7, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    text = format_time(instant)
    assert text == "2026-07-01T09:30:00.000000Z"
    assert parse_time(text) == instant.astimezone(UTC)


def test_audit_times_refuse_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 1, 1))  # noqa: DTZ001


def test_chain_mac_is_standard_hmac_sha256_under_the_derived_chain_key() -> None:
    import hmac

    from channelflow.audit.keys import AuditKey

    key = AuditKey(bytes(range(32)))
    chain_key = hmac.digest(key.secret, b"channelflow audit chain", "sha256")
    digest = hashlib.sha256(b"event").hexdigest()
    assert key.mac(digest) == hmac.digest(chain_key, digest.encode(), "sha256").hex()
