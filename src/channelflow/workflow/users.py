"""User accounts and their roles."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlmodel import Session, col

from channelflow import clock
from channelflow.exceptions import InvalidInput, UserNotFound
from channelflow.notifications.message import validate_address
from channelflow.states import Role
from channelflow.store.models import User

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise InvalidInput(
            f"unknown role {value!r}; use one of: {', '.join(role.value for role in Role)}"
        ) from None


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput("a user name must be 1-64 lower-case letters, digits, '.', '_' or '-'")
    return name


def validate_email(email: str | None) -> str | None:
    """The same rule the outbox applies, so every stored address can be emailed."""
    return None if email is None else validate_address(email)


def get_user(session: Session, name: str | None) -> User:
    if not name:
        raise InvalidInput("say who you are with --by USER (or set CHANNELFLOW_USER)")
    user: User | None = session.execute(
        select(User).where(col(User.name) == name)
    ).scalar_one_or_none()
    if user is None:
        raise UserNotFound(f"no user is called {name!r}")
    return user


def insert_user(session: Session, *, name: str, role: Role, email: str | None) -> User:
    validate_name(name)
    if session.execute(select(col(User.id)).where(col(User.name) == name)).first():
        raise InvalidInput(f"a user called {name!r} already exists")
    user = User(name=name, role=role.value, email=validate_email(email), created_at=clock.now())
    session.add(user)
    session.flush()
    return user
