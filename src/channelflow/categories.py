"""Home Office reporting categories (sector of referral, type of concern), kept as data."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Literal

from channelflow.exceptions import InvalidInput

Category = Literal["sector", "concern"]


@cache
def _load() -> dict[str, dict[str, dict[str, object]]]:
    raw = json.loads(files("channelflow.data").joinpath("categories.json").read_text("utf-8"))
    return {name: values for name, values in raw.items() if not name.startswith("_")}


def values(category: Category, *, include_retired: bool = False) -> list[str]:
    return [
        key
        for key, meta in _load()[category].items()
        if include_retired or not meta.get("retired", False)
    ]


def validate(category: Category, value: str) -> str:
    """Return the stable identifier for ``value`` or refuse it, listing the accepted values."""
    normalised = value.strip().lower().replace("-", "_").replace(" ", "_")
    if normalised in values(category):
        return normalised
    raise InvalidInput(f"unknown {category} {value!r}; use one of: {', '.join(values(category))}")
