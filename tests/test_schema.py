from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import channelflow.store.models  # noqa: F401  (registers the tables)
from channelflow.store import schema
from channelflow.store.db import open_engine


def test_migrated_schema_equals_declared_models(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
        assert differences == []
    finally:
        engine.dispose()


def test_upgrade_is_safe_to_run_twice(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        schema.upgrade(engine)
        schema.upgrade(engine)
        assert schema.current_revision(engine) == schema.head_revision()
        tables = set(inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_full_sync_and_foreign_keys(tmp_path: object) -> None:
    engine = open_engine(f"sqlite:///{tmp_path}/pragmas.db")
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys")
            }
        assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}
    finally:
        engine.dispose()
