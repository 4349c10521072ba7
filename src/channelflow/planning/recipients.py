"""Who receives what: panel and board membership, case leads, escalation to the chair."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from channelflow.config import BodySettings, Config
from channelflow.exceptions import ConfigurationError
from channelflow.store.models import User

_users = User.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Recipient:
    user_id: int
    name: str
    email: str | None


class Directory:
    """The users, read once per planning pass."""

    def __init__(self, connection: Connection) -> None:
        rows = connection.execute(
            select(_users.c.id, _users.c.name, _users.c.role, _users.c.email).order_by(
                _users.c.name
            )
        ).all()
        self._by_name = {row.name: Recipient(row.id, row.name, row.email) for row in rows}
        self._roles = {row.name: row.role for row in rows}

    def get(self, name: str | None) -> Recipient | None:
        return self._by_name.get(name) if name else None

    def with_roles(self, roles: tuple[str, ...]) -> list[Recipient]:
        return [self._by_name[name] for name, role in self._roles.items() if role in roles]

    def named(self, names: tuple[str, ...], where: str, config: Config) -> list[Recipient]:
        unknown = [name for name in names if name not in self._by_name]
        if unknown:
            place = f"{config.source}: " if config.source else ""
            raise ConfigurationError(
                f"{place}{where} in the configuration names no user {unknown[0]!r}"
            )
        return [self._by_name[name] for name in names]

    def members(self, body: BodySettings, config: Config) -> list[Recipient]:
        if body.members is not None:
            return self.named(body.members, f"[{body.name}] members", config)
        return self.with_roles(body.roles)

    def escalation(self, config: Config) -> list[Recipient]:
        names = config.reminders.escalate_to
        if names is not None:
            return self.named(names, "[reminders] escalate_to", config)
        return self.with_roles(("chair",))

    def check(self, config: Config) -> None:
        """Refuse a configuration naming users that do not exist, before planning anything."""
        self.members(config.panel, config)
        self.members(config.board, config)
        self.escalation(config)
