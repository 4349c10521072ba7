"""Reading a toolkit self-assessment from a TOML file, checked before anything is stored.

The file holds the scale and the benchmarks in order::

    scale = ["red", "amber", "green"]          # optional; this is the default

    [[benchmark]]
    key = "referral-process"                   # a slug: lower-case letters, digits, '-'
    name = "Referral Process"
    rating = "green"
    comment = "New referral process in place"  # optional

    [[benchmark.action]]
    text = "6 month review of process"
    owner = "cora"                             # optional; a user name
    review_on = 2019-10-01                     # optional
    completed_on = 2019-07-04                  # optional; a completed action has no review

Every problem is reported as one sentence naming the file, the benchmark and the field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from channelflow.exceptions import InvalidInput
from channelflow.toolkit.scale import DEFAULT_SCALE, parse_scale, rating_on
from channelflow.workflow.dates import EARLIEST_YEAR, date_not_in_future, parse_date
from channelflow.workflow.text import MAX_TEXT, clean_text

MAX_NAME = 200
MAX_ACTION = 200
MAX_OWNER = 64
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_TOP_FIELDS = ("scale", "benchmark")
_BENCHMARK_FIELDS = ("key", "name", "rating", "comment", "action")
_ACTION_FIELDS = ("text", "owner", "review_on", "completed_on")


@dataclass(frozen=True)
class ActionSpec:
    text: str
    owner: str | None
    review_on: date | None
    completed_on: date | None


@dataclass(frozen=True)
class BenchmarkSpec:
    key: str
    name: str
    rating: str
    comment: str | None
    actions: tuple[ActionSpec, ...]


@dataclass(frozen=True)
class ToolkitFile:
    path: Path
    scale: tuple[str, ...]
    benchmarks: tuple[BenchmarkSpec, ...]


def validate_key(key: str, *, where: str) -> str:
    if not _KEY.match(key):
        raise InvalidInput(
            f"{where}: a benchmark key must be 1-64 lower-case letters, digits or '-'"
        )
    # Audit events name actions "action-<id>" and the whole toolkit "toolkit", so a benchmark
    # keyed like either would share their history.
    if key == "toolkit" or key.startswith("action-"):
        raise InvalidInput(f"{where}: the benchmark key {key!r} is reserved; choose another")
    return key


def read_toolkit(path: Path) -> ToolkitFile:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except OSError as error:
        raise InvalidInput(f"cannot read {path} ({error.strerror or 'unreadable'})") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"{path} is not valid TOML: {error}") from None
    return _Reader(path).toolkit(document)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def toolkit(self, document: dict[str, Any]) -> ToolkitFile:
        where = str(self.path)
        self.fields(document, _TOP_FIELDS, where)
        scale = parse_scale(document["scale"], where=where) if "scale" in document else None
        scale = scale or DEFAULT_SCALE
        tables = self.tables(document.get("benchmark"), f"{where}: [[benchmark]]")
        if not tables:
            raise InvalidInput(f"{where} declares no [[benchmark]] tables")
        benchmarks: list[BenchmarkSpec] = []
        for number, table in enumerate(tables, start=1):
            benchmark = self.benchmark(table, number, scale)
            if any(b.key == benchmark.key for b in benchmarks):
                raise InvalidInput(f"{where}: benchmark key {benchmark.key!r} appears twice")
            benchmarks.append(benchmark)
        return ToolkitFile(self.path, scale, tuple(benchmarks))

    def benchmark(
        self, table: dict[str, Any], number: int, scale: tuple[str, ...]
    ) -> BenchmarkSpec:
        where = f"{self.path}: benchmark {number}"
        key = validate_key(self.text(table, "key", where), where=where)
        where = f"{self.path}: benchmark {key!r}"
        self.fields(table, _BENCHMARK_FIELDS, where)
        actions = self.tables(table.get("action"), f"{where}: [[benchmark.action]]")
        return BenchmarkSpec(
            key=key,
            name=clean_text(
                self.text(table, "name", where), what=f"{where}: name", max_length=MAX_NAME
            ),
            rating=rating_on(scale, self.text(table, "rating", where), where=f"{where}: rating"),
            comment=self.optional_text(table, "comment", where, MAX_TEXT),
            actions=tuple(
                self.action(action, f"{where}: action {index}")
                for index, action in enumerate(actions, start=1)
            ),
        )

    def action(self, table: dict[str, Any], where: str) -> ActionSpec:
        self.fields(table, _ACTION_FIELDS, where)
        text = self.text(table, "text", where)
        review_on = self.date(table, "review_on", where)
        completed_on = self.date(table, "completed_on", where)
        if completed_on is not None:
            date_not_in_future(completed_on, what=f"{where}: completed_on")
            if review_on is not None:
                # A completed action is never reviewed again, so a review date would be a
                # reminder nobody should get.
                raise InvalidInput(f"{where}: a completed action has no review_on")
        return ActionSpec(
            text=clean_text(text, what=f"{where}: text", max_length=MAX_ACTION),
            owner=self.optional_text(table, "owner", where, MAX_OWNER),
            review_on=review_on,
            completed_on=completed_on,
        )

    def fields(self, table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for name in table:
            if name not in allowed:
                raise InvalidInput(
                    f"{where}: unknown field {name!r} (expected {', '.join(allowed)})"
                )

    def tables(self, value: object, where: str) -> list[dict[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise InvalidInput(f"{where} must be an array of tables")
        return value

    def text(self, table: dict[str, Any], name: str, where: str) -> str:
        if name not in table:
            raise InvalidInput(f"{where}: {name} is missing")
        value = table[name]
        if not isinstance(value, str):
            raise InvalidInput(f"{where}: {name} must be a string")
        return value

    def optional_text(
        self, table: dict[str, Any], name: str, where: str, max_length: int
    ) -> str | None:
        if name not in table:
            return None
        text = self.text(table, name, where)
        return clean_text(text, what=f"{where}: {name}", max_length=max_length)

    def date(self, table: dict[str, Any], name: str, where: str) -> date | None:
        value = table.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            return parse_date(value, what=f"{where}: {name}")
        # A TOML date-time is a datetime, which is also a date: only a plain date will do.
        if not isinstance(value, date) or isinstance(value, datetime):
            raise InvalidInput(f"{where}: {name} must be a date such as 2019-10-01")
        if value.year < EARLIEST_YEAR:
            raise InvalidInput(f"{where}: {name} is before {EARLIEST_YEAR}")
        return value
