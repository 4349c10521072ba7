"""Engines and transactions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import PoolProxiedConnection
from sqlmodel import Session

from channelflow.exceptions import DatabaseUnavailable, InvalidInput

DEFAULT_DATABASE = "channelflow.db"
_WRITE = "channelflow_write"
# Arbitrary constant naming the writers' PostgreSQL advisory lock.
_WRITERS_LOCK_KEY = 0x63666C6F77
_LOCK_WRITERS = "SELECT pg_advisory_xact_lock(%s)"
_PG_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE


def database_url(value: str | None) -> str:
    """A SQLAlchemy URL from ``--db``/``CHANNELFLOW_DATABASE_URL``; a bare path means SQLite."""
    if not value:
        return f"sqlite:///{DEFAULT_DATABASE}"
    if "://" not in value:
        return f"sqlite:///{value}"
    if value.startswith(("postgresql://", "postgres://")):
        value = "postgresql+psycopg://" + value.split("://", 1)[1]
    return value


def open_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInput("the database URL is not valid") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if backend == "postgresql":
        return create_engine(url, hide_parameters=True, pool_reset_on_return=None)
    raise InvalidInput(f"unsupported database {backend!r}; use SQLite or PostgreSQL")


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:" and not Path(database).parent.exists():
        raise InvalidInput(f"the folder for database file {database} does not exist")
    # Connections always end their own transactions (see write_connection), so the pool
    # need not roll back again on every return.
    engine = create_engine(
        url, hide_parameters=True, connect_args={"timeout": 60}, pool_reset_on_return=None
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Take over transaction control so a write can start with BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A writer takes SQLite's write lock up front, so its reads and its write are one
        # serial step and two writers can never interleave between them.
        immediate = connection.get_execution_options().get(_WRITE, False)
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write_connection(engine: Engine, *, writers_lock: bool = True) -> Iterator[Connection]:
    """One write transaction that commits on success and rolls back on any error.

    Writers run one at a time on both backends: SQLite's BEGIN IMMEDIATE takes the database's
    write lock, and on PostgreSQL every writer first takes one transaction-scoped advisory
    lock. Every write appends to the audit chain, which is a single line anyway, so this
    costs no real concurrency; in return a writer reads the chain's head and the rows it
    changes without a race, and writers never deadlock, because all take the same lock first.
    """
    with _connect(engine) as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            if writers_lock and connection.dialect.name == "postgresql":
                driver = connection.connection.driver_connection
                assert driver is not None
                driver.execute(_LOCK_WRITERS, (_WRITERS_LOCK_KEY,))
            yield connection


@dataclass
class DriverConnection:
    """A write transaction held on the driver's own connection (see `driver_transaction`)."""

    dialect: Dialect
    driver: Any
    # Last writes whose results nobody reads, sent with the COMMIT (PostgreSQL only).
    with_commit: list[tuple[str, list[Any]]] = field(default_factory=list)


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[DriverConnection]:
    """:func:`write_connection` without SQLAlchemy's connection layer, for `DriverStatement`s.

    The same transaction and the same writers' lock; it exists because a change is only a
    few statements and SQLAlchemy's per-transaction bookkeeping was a tenth of its cost.
    """
    pooled = _raw_connection(engine)
    driver = pooled.driver_connection
    assert driver is not None
    connection = DriverConnection(engine.dialect, driver)
    transaction = (
        _postgres_transaction(connection)
        if engine.dialect.name == "postgresql"
        else _sqlite_transaction(connection)
    )
    try:
        with transaction:
            yield connection
    finally:
        pooled.close()


@contextmanager
def _sqlite_transaction(connection: DriverConnection) -> Iterator[None]:
    driver = connection.driver
    try:
        driver.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        raise _busy() from None
    try:
        yield
        driver.commit()
    finally:
        if driver.in_transaction:
            driver.rollback()


def _raw_connection(engine: Engine) -> PoolProxiedConnection:
    try:
        return engine.raw_connection()
    except OperationalError:
        raise _unavailable(engine) from None


def _unavailable(engine: Engine) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"cannot open the {engine.dialect.name} database; check the database URL "
        "and that the server is running"
    )


def _busy() -> DatabaseUnavailable:
    return DatabaseUnavailable(
        "the database is busy (another process has held it for a minute); try again"
    )


@contextmanager
def _postgres_transaction(connection: DriverConnection) -> Iterator[None]:
    """BEGIN with the writers' lock, and the last writes with COMMIT: a round trip each.

    psycopg would send BEGIN on its own, and wait for each statement's answer. Whatever
    fails, the connection goes back to the pool idle, out of any transaction.
    """
    driver = connection.driver
    driver.autocommit = True
    try:
        # Without parameters psycopg uses the simple protocol, which allows two statements.
        driver.execute(f"BEGIN; SELECT pg_advisory_xact_lock({_WRITERS_LOCK_KEY})")
        yield
        with driver.pipeline(), driver.cursor() as cursor:
            for sql, rows in connection.with_commit:
                cursor.executemany(sql, rows)
            driver.execute("COMMIT")
    finally:
        if not driver.closed:
            if driver.info.transaction_status != _PG_IDLE:
                driver.execute("ROLLBACK")
            driver.autocommit = False


@contextmanager
def autocommit_connection(engine: Engine) -> Iterator[DriverConnection]:
    """One driver connection on which each statement commits by itself, without waiting for
    the disk (SQLite ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``).

    For work made of single-statement changes whose last few may be lost harmlessly in a
    power cut or a database server crash, such as the outbox's claims and delivery records;
    a killed client process loses none of them. The connection goes back to the pool with
    its usual settings.
    """
    pooled = _raw_connection(engine)
    driver = pooled.driver_connection
    assert driver is not None
    postgres = engine.dialect.name == "postgresql"
    try:
        if postgres:
            driver.autocommit = True
            driver.execute("SET synchronous_commit = off")
        else:
            driver.execute("PRAGMA synchronous=NORMAL")
        try:
            yield DriverConnection(engine.dialect, driver)
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise _busy() from None
            raise
        finally:
            if postgres and not driver.closed:
                driver.execute("RESET synchronous_commit")
                driver.autocommit = False
            elif not postgres:
                driver.execute("PRAGMA synchronous=FULL")
    finally:
        pooled.close()


def _driver_of(connection: Connection | DriverConnection) -> tuple[Dialect, Any]:
    if isinstance(connection, DriverConnection):
        return connection.dialect, connection.driver
    return connection.dialect, connection.connection.driver_connection


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """:func:`write_connection` with an ORM session on it."""
    with (
        write_connection(engine) as connection,
        Session(bind=connection, expire_on_commit=False) as session,
    ):
        yield session
        session.flush()


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with _connect(engine) as connection, connection.begin(), Session(bind=connection) as session:
        yield session


@contextmanager
def _connect(engine: Engine) -> Iterator[Connection]:
    try:
        connection = engine.connect()
    except OperationalError:
        raise _unavailable(engine) from None
    with connection:
        yield connection


def reserve_ids(connection: Connection, table: str, count: int) -> list[int]:
    """``count`` fresh primary keys for ``table``, for bulk inserts that need them up front.

    PostgreSQL takes them from the table's sequence, so concurrent inserts never collide;
    SQLite writers hold the database's write lock, so the next free ids are theirs.
    """
    if connection.dialect.name == "postgresql":
        return list(
            connection.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                    "FROM generate_series(1, :count)"
                ),
                {"table": table, "count": count},
            ).scalars()
        )
    start = connection.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one()
    return list(range(start + 1, start + 1 + count))


class DriverStatement:
    """A Core statement compiled once per backend and run straight on the driver's cursor.

    Only for the statements every change runs: SQLAlchemy's per-execution machinery costs
    more than SQLite's own work on them (see BENCHMARKS.md). Parameters still pass through
    each column's bind processor, so dates and UTC datetimes are stored exactly as
    SQLAlchemy stores them, and the statement runs in the connection's transaction.
    """

    def __init__(self, statement: Any, *, column_keys: list[str] | None = None) -> None:
        self._statement = statement
        self._column_keys = column_keys
        self._compiled: dict[str, tuple[str, list[str] | None, dict[str, Any], dict[str, Any]]] = {}
        self._result_readers: dict[str, list[tuple[str, Any]]] = {}

    def _compile(
        self, dialect: Any
    ) -> tuple[str, list[str] | None, dict[str, Any], dict[str, Any]]:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self._statement.compile(dialect=dialect, column_keys=self._column_keys)
            processors = {
                name: processor
                for name, bind in compiled.binds.items()
                if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))
                is not None
            }
            order = list(compiled.positiontup) if compiled.positional else None
            # Values the statement carries itself, such as a LIMIT.
            fixed = {
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not bind.required
            }
            found = (str(compiled), order, processors, fixed)
            self._compiled[dialect.name] = found
        return found

    def _prepare(self, dialect: Any, params: Mapping[str, Any]) -> tuple[str, Any]:
        sql, order, processors, fixed = self._compile(dialect)
        values = {
            name: processors[name](value) if name in processors else value
            for name, value in (fixed | dict(params)).items()
        }
        return sql, [values[name] for name in order] if order is not None else values

    def execute(self, connection: Connection | DriverConnection, params: Mapping[str, Any]) -> int:
        """Run once; returns the number of rows changed."""
        dialect, driver = _driver_of(connection)
        sql, values = self._prepare(dialect, params)
        cursor = driver.cursor()
        try:
            cursor.execute(sql, values)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def first(
        self, connection: Connection | DriverConnection, params: Mapping[str, Any]
    ) -> SimpleNamespace | None:
        """Run a SELECT and return its first row with attribute access, or ``None``."""
        rows = self.all(connection, params, limit=1)
        return rows[0] if rows else None

    def all(
        self,
        connection: Connection | DriverConnection,
        params: Mapping[str, Any],
        *,
        limit: int | None = None,
    ) -> list[SimpleNamespace]:
        """Run a SELECT and return its rows with attribute access."""
        dialect, driver = _driver_of(connection)
        sql, values = self._prepare(dialect, params)
        cursor = driver.cursor()
        try:
            cursor.execute(sql, values)
            found = cursor.fetchmany(limit) if limit is not None else cursor.fetchall()
        finally:
            cursor.close()
        readers = self._readers(dialect)
        return [
            SimpleNamespace(
                **{
                    name: read(value) if read is not None and value is not None else value
                    for (name, read), value in zip(readers, row, strict=True)
                }
            )
            for row in found
        ]

    def _readers(self, dialect: Any) -> list[tuple[str, Any]]:
        found = self._result_readers.get(dialect.name)
        if found is None:
            found = [
                (column.key, column.type.dialect_impl(dialect).result_processor(dialect, None))
                for column in getattr(
                    self._statement, "selected_columns", self._statement.exported_columns
                )
            ]
            self._result_readers[dialect.name] = found
        return found

    def executemany(
        self,
        connection: Connection | DriverConnection,
        rows: Sequence[Mapping[str, Any]],
        *,
        with_commit: bool = False,
    ) -> None:
        """Run for each row; ``with_commit`` may hold the rows back to go with the COMMIT."""
        dialect, driver = _driver_of(connection)
        prepared = [self._prepare(dialect, row) for row in rows]
        if (
            with_commit
            and isinstance(connection, DriverConnection)
            and dialect.name == "postgresql"
        ):
            connection.with_commit.append((prepared[0][0], [values for _, values in prepared]))
            return
        cursor = driver.cursor()
        try:
            cursor.executemany(prepared[0][0], [values for _, values in prepared])
        finally:
            cursor.close()
