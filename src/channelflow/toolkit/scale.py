"""The rating scale: data declared by the toolkit file and kept with the database."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from sqlalchemy import Connection, select

from channelflow.exceptions import InvalidInput
from channelflow.store.models import Meta

DEFAULT_SCALE = ("red", "amber", "green")
SCALE_KEY = "toolkit_scale"
# Short enough for the rating column, and plain enough to type on a command line; spaces
# are allowed because newer assurance scales read "not met / met / exceeding".
_RATING = re.compile(r"^[a-z0-9](?:[a-z0-9 _-]{0,30}[a-z0-9])?$")

_meta = Meta.__table__  # type: ignore[attr-defined]


def parse_scale(values: object, *, where: str) -> tuple[str, ...]:
    """A scale as declared (a list of distinct names, worst first), lower-cased."""
    if not isinstance(values, list) or not values:
        raise InvalidInput(f"{where}: scale must be a non-empty list of rating names")
    scale: list[str] = []
    for value in values:
        if not isinstance(value, str) or not _RATING.match(value.strip().lower()):
            raise InvalidInput(
                f"{where}: each scale entry must be 1-32 letters, digits, spaces, '-' or '_'"
            )
        name = value.strip().lower()
        if name in scale:
            raise InvalidInput(f"{where}: scale lists {name!r} twice")
        scale.append(name)
    return tuple(scale)


def rating_on(scale: Sequence[str], value: str, *, where: str) -> str:
    """``value`` as stored (lower-case), if it is on ``scale``."""
    rating = value.strip().lower()
    if rating not in scale:
        raise InvalidInput(f"{where}: {value!r} is not a rating; use one of: {', '.join(scale)}")
    return rating


def stored_scale(connection: Connection) -> tuple[str, ...] | None:
    """The scale the loaded toolkit uses, or None before a toolkit is loaded."""
    text = connection.execute(
        select(_meta.c.value).where(_meta.c.key == SCALE_KEY)
    ).scalar_one_or_none()
    return None if text is None else tuple(json.loads(text))


def scale_row(scale: Sequence[str]) -> Meta:
    return Meta(key=SCALE_KEY, value=json.dumps(list(scale)))
