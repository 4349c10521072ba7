"""Creating, upgrading and checking the schema with the migrations shipped in the package."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from channelflow.exceptions import DatabaseUnavailable, NotInitialised


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("channelflow.store") / "migrations"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def upgrade(engine: Engine) -> None:
    """Create the schema, or bring it up to date; safe to run any number of times."""
    config = _config()
    try:
        with engine.connect() as connection:
            connection.execution_options(channelflow_write=True)
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
    except OperationalError as error:
        if "database is locked" in str(error.orig):
            raise
        raise DatabaseUnavailable(
            f"cannot open the {engine.dialect.name} database to create the schema"
        ) from None


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except (OperationalError, ProgrammingError):
        raise DatabaseUnavailable(f"cannot open the {engine.dialect.name} database") from None


def require_current(engine: Engine) -> None:
    revision = current_revision(engine)
    if revision is None:
        raise NotInitialised()
    if revision != head_revision():
        raise NotInitialised(
            "the database schema is older than this version of channelflow; "
            "run `channelflow init` to upgrade it"
        )
