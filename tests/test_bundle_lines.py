"""The export's hand-written line formats against the standard library's."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import given
from hypothesis import strategies as st

from channelflow.audit import bundle
from channelflow.audit.canonical import canonical_json, row_hash

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
maybe = st.none() | texts


@st.composite
def rows(draw: st.DrawFn) -> tuple[object, ...]:
    data = draw(st.dictionaries(st.text(max_size=8), texts | st.integers(), max_size=4))
    return (
        draw(st.integers(min_value=1, max_value=10**9)),
        draw(texts),
        draw(texts),
        draw(texts),
        draw(maybe),
        draw(maybe),
        draw(texts),
        draw(texts),
        draw(texts),
        draw(texts),
        draw(maybe),
        canonical_json(data),
        "0" * 64,
        draw(texts),
        draw(texts),
    )


@given(rows())
def test_the_hashed_line_is_canonical_json_and_its_hash_is_the_chains(
    row: tuple[object, ...],
) -> None:
    digest, line = bundle.hashed_line(row)
    assert digest == row_hash(*row[:13])  # type: ignore[arg-type]
    event = dict(zip(bundle.COLUMNS, row, strict=True))
    event["data"] = json.loads(str(row[11]))
    assert (
        line == json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    )


@given(rows())
def test_the_csv_line_is_what_the_csv_module_writes_after_neutralising(
    row: tuple[object, ...],
) -> None:
    cells = []
    for name in bundle.CSV_COLUMNS:
        value = row[bundle.COLUMNS.index(name)]
        text = "" if value is None else str(value)
        cells.append("'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text)
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\r\n").writerow(cells)
    assert bundle.csv_line(row) == expected.getvalue()
    assert next(csv.reader(io.StringIO(bundle.csv_line(row), newline=""))) == cells
