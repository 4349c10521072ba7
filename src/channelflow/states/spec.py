"""The vocabulary for declaring a lifecycle as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    POLICE = "police"
    COORDINATOR = "coordinator"
    CHAIR = "chair"
    MEMBER = "member"
    LEAD = "lead"
    ADMIN = "admin"
    AUDITOR = "auditor"


class ValueKind(StrEnum):
    CHOICE = "choice"
    DATE = "date"
    USER = "user"
    TEXT = "text"


@dataclass(frozen=True)
class SetKey:
    """One ``--set KEY=VALUE`` an event takes."""

    name: str
    kind: ValueKind
    required: bool = True
    choices: tuple[str, ...] = ()
    help: str = ""
    max_length: int = 2000


@dataclass(frozen=True)
class EventSpec:
    """One event of a lifecycle: where it may start, where it leads, who may fire it."""

    name: str
    sources: tuple[str, ...]
    dest: str
    roles: frozenset[Role]
    keys: tuple[SetKey, ...] = ()
    reason_required: bool = False
    summary: str = ""

    def key(self, name: str) -> SetKey | None:
        return next((key for key in self.keys if key.name == name), None)

    @property
    def requires(self) -> list[str]:
        """The ``--set`` keys the guard needs, plus ``reason`` where a reason is required."""
        needed = [key.name for key in self.keys if key.required]
        return [*needed, "reason"] if self.reason_required else needed


@dataclass(frozen=True)
class Lifecycle:
    name: str
    states: tuple[str, ...]
    initial: str
    events: tuple[EventSpec, ...] = field(default=())

    def event(self, name: str) -> EventSpec | None:
        return next((spec for spec in self.events if spec.name == name), None)

    def allows(self, event: str, source: str, dest: str) -> bool:
        spec = self.event(event)
        return spec is not None and source in spec.sources and spec.dest == dest
