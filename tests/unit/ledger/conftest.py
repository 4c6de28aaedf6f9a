"""Ledger fixtures: every ledger test runs on SQLite (a temporary file) and on Postgres.

Postgres: one uniquely named database per test session, created on the server at
127.0.0.1:5432 (database ``test``, user ``postgres``, trust auth) and dropped at the end. The
schema is migrated once per backend; each test starts from empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy.orm import Session

from koho.ledger import accounts as ledger_accounts
from koho.ledger import entries as ledger_entries
from koho.ledger.db import Ledger, dispose_engine
from koho.ledger.models import Base
from tests.unit.ledger.ledger_factories import account_row, entry_row

PG_HOST = os.environ.get("KOHO_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("KOHO_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("KOHO_TEST_PG_USER", "postgres")
PG_ADMIN_DB = "test"

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _admin() -> psycopg2.extensions.connection:
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, connect_timeout=3)
    conn.autocommit = True
    return conn


class PostgresServer:
    """Creates and drops databases for this test session; all names share one unique prefix."""

    def __init__(self) -> None:
        self.prefix = f"koho_ledger_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"

    def create_database(self, suffix: str = "") -> str:
        name = self.prefix + (f"_{suffix}" if suffix else "")
        conn = _admin()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()
        self.created.append(name)
        return self.url(name)

    def drop_all(self) -> None:
        conn = _admin()
        try:
            with conn.cursor() as cur:
                for name in self.created:
                    dispose_engine(self.url(name))
                    cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        finally:
            conn.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        _admin().close()
    except psycopg2.Error as exc:
        pytest.skip(f"Postgres on {PG_HOST}:{PG_PORT} not reachable: {str(exc).strip()}")
    server = PostgresServer()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def _migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fresh_url(backend: str, request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database (not migrated) on the backend under test."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"fresh_{uuid.uuid4().hex[:6]}")
    yield url
    dispose_engine(url)


@pytest.fixture
def ledger(backend: str, request: pytest.FixtureRequest, _migrated_urls: dict[str, str]) -> Iterator[Ledger]:
    """A migrated ledger with empty tables on the backend under test."""
    if backend not in _migrated_urls:
        server: PostgresServer = request.getfixturevalue("postgres")
        _migrated_urls[backend] = server.create_database()
    ledger = Ledger(_migrated_urls[backend])
    ledger.migrate()
    yield ledger
    _empty(ledger)


def _empty(ledger: Ledger) -> None:
    # DELETE rather than TRUNCATE: on tables this small it is several times faster on Postgres.
    with ledger.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def session(ledger: Ledger) -> Iterator[Session]:
    with ledger.session() as s:
        yield s


@pytest.fixture
def seeded(ledger: Ledger) -> Callable[..., None]:
    """``seeded(accounts=("city_x",), entries=("e1",))`` -> those accounts and entries exist."""

    def _seed(accounts: tuple[str, ...] = ("city_x",), entries: tuple[str, ...] = ("e1",)) -> None:
        with ledger.session() as s:
            ledger_accounts.upsert_accounts(s, [account_row(a) for a in accounts])
            for entry_id in entries:
                ledger_entries.upsert_entry(s, entry_row(entry_id))

    return _seed
