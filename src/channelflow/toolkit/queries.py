"""Reading the toolkit: plain Core selects that run on any connection, on either backend.

The scheduler calls `due_actions` and the board summary calls `ratings_by_colour` inside
their own transactions, so nothing here opens one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from channelflow.store.models import ToolkitAction, ToolkitBenchmark, User
from channelflow.toolkit.scale import stored_scale

benchmark_table = ToolkitBenchmark.__table__  # type: ignore[attr-defined]
action_table = ToolkitAction.__table__  # type: ignore[attr-defined]
_b, _a = benchmark_table, action_table
_users = User.__table__  # type: ignore[attr-defined]


def ratings_by_colour(connection: Connection) -> list[tuple[str, int]]:
    """How many benchmarks have each rating, in scale order, zero counts included.

    Empty before a toolkit is loaded, so a summary can say "not assessed" rather than show a
    row of noughts. Unrated benchmarks are not counted.
    """
    scale = stored_scale(connection)
    if scale is None:
        return []
    rows = connection.execute(
        select(_b.c.rating, func.count()).where(_b.c.rating.is_not(None)).group_by(_b.c.rating)
    ).all()
    counts: dict[str, int] = {rating: count for rating, count in rows}
    ordered = [(rating, counts.pop(rating, 0)) for rating in scale]
    # Only a scale changed by hand could leave ratings off it; they still count.
    return ordered + sorted(counts.items())


@dataclass(frozen=True)
class DueAction:
    """An open action whose process review is due; read like a row (``action.owner``)."""

    id: int
    text: str
    owner: str
    review_on: date
    benchmark: str  # its name, as a reminder shows it
    benchmark_key: str
    # Changes whenever the review is recorded or moved, so it tells one occasion from the next.
    updated_at: datetime


def due_actions(connection: Connection, first: date, last: date) -> list[DueAction]:
    """Open actions with an owner whose process review falls from ``first`` to ``last``
    (both included), by review date."""
    query = (
        select(
            _a.c.id,
            _a.c.text,
            _a.c.owner,
            _a.c.review_on,
            _b.c.name.label("benchmark"),
            _b.c.key.label("benchmark_key"),
            _a.c.updated_at,
        )
        .join_from(_a, _b, _a.c.benchmark_id == _b.c.id)
        .where(
            _a.c.completed_on.is_(None),
            _a.c.owner.is_not(None),
            _a.c.review_on.between(first, last),
        )
        .order_by(_a.c.review_on, _a.c.id)
    )
    return [DueAction(**row._mapping) for row in connection.execute(query)]


def benchmark_rows(connection: Connection) -> list[dict[str, Any]]:
    """Every benchmark in position order, each with its actions in the order they were added."""
    actions: dict[int, list[dict[str, Any]]] = {}
    for action in connection.execute(select(_a).order_by(_a.c.benchmark_id, _a.c.id)):
        actions.setdefault(action.benchmark_id, []).append(action_view(action))
    return [
        {
            "key": row.key,
            "name": row.name,
            "position": row.position,
            "rating": row.rating,
            "comment": row.comment,
            "actions": actions.get(row.id, []),
        }
        for row in connection.execute(select(_b).order_by(_b.c.position, _b.c.id))
    ]


def action_view(action: Any) -> dict[str, Any]:
    """An action as `Toolkit.list` shows it (a table row or a `ToolkitAction`)."""
    return {
        "id": action.id,
        "text": action.text,
        "owner": action.owner,
        "review_on": action.review_on,
        "completed_on": action.completed_on,
    }


def known_users(connection: Connection, names: Sequence[str]) -> set[str]:
    """Which of ``names`` are users."""
    if not names:
        return set()
    found = connection.execute(select(_users.c.name).where(_users.c.name.in_(set(names))))
    return set(found.scalars())
