"""Fixtures: every behaviour test runs on a real SQLite file and on a real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from channelflow import clock
from channelflow.runtime import Runtime
from channelflow.settings import Settings
from channelflow.store import schema
from channelflow.store.db import open_engine
from channelflow.workflow.engine import Workflow
from tests.cli_helpers import signing_key_beside
from tests.factories import USERS
from tests.mailserver import MailServer

PG_SERVER = os.environ.get(
    "CHANNELFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's CHANNELFLOW_* settings, and the clock is never left pinned.

    The export signing key, which commands would otherwise look for in the working
    directory, lives in the test's own folder.
    """
    for name in list(os.environ):
        if name.startswith("CHANNELFLOW_") and name != "CHANNELFLOW_TEST_POSTGRES":
            monkeypatch.delenv(name)
    monkeypatch.setenv("CHANNELFLOW_SIGNING_KEY", str(tmp_path / "signing.key"))
    yield
    clock.set_now(None)


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI but {reason}")
    pytest.skip(f"PostgreSQL not reachable ({reason}); set CHANNELFLOW_TEST_POSTGRES")


@dataclass
class PostgresServer:
    admin_url: str
    template: str

    def url(self, database: str) -> str:
        base = self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        return f"{base}/{database}"

    def create_database(self) -> str:
        name = f"cf_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A migrated template database; each test gets a fresh copy of it."""
    try:
        with psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as error:
        _postgres_unavailable(type(error).__name__)
    template = f"cf_template_{os.getpid()}"
    server = PostgresServer(PG_SERVER, template)
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{template}"')
    engine = open_engine(server.url(template))
    schema.upgrade(engine)
    engine.dispose()
    yield server
    server.drop_database(template)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, migrated database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'channelflow.db'}"
        engine = open_engine(url)
        schema.upgrade(engine)
        engine.dispose()
        yield url
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty migrated PostgreSQL database, for tests that only make sense there."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


def make_runtime(database_url: str, key_file: Path) -> Runtime:
    runtime = Runtime(
        Settings(
            database_url=database_url,
            key_file=key_file,
            user=None,
            reference_prefix="CF",
            signing_key_file=Path(
                os.environ.get("CHANNELFLOW_SIGNING_KEY") or signing_key_beside(key_file)
            ),
        )
    )
    runtime.initialise()
    runtime.workflow.add_first_admin("admin")
    for name, role in USERS:
        runtime.workflow.add_user(name, role, email=f"{name}@example.org", by="admin")
    return runtime


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """An initialised channelflow with one user of every role (see tests.factories.USERS)."""
    rt = make_runtime(database_url, tmp_path / "audit.key")
    yield rt
    rt.close()


@pytest.fixture
def workflow(runtime: Runtime) -> Workflow:
    return runtime.workflow


@pytest.fixture
def engine(runtime: Runtime) -> Engine:
    return runtime.engine


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    """A real SMTP server on loopback; ``mail_server.fail_next(...)`` injects faults."""
    with MailServer() as server:
        yield server
