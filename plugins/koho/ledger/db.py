"""Connecting to the ledger: Airflow connection -> URL -> engine -> sessions, and migrations.

The ledger is named by an Airflow connection (``koho_db`` unless ``KOHO_LEDGER_CONN_ID`` says
otherwise) so that operators configure it like everything else, and so that the same code runs
on a SQLite file (``make run``, tests) and on Postgres (the distributed deployment).

SQLite needs care because many Airflow task processes write to the same file at once:

* WAL journal, so readers never block the writer;
* a busy timeout, so a writer waits for the lock instead of failing with "database is locked";
* foreign keys on (SQLite leaves them off by default);
* ``BEGIN IMMEDIATE`` for every transaction: the write lock is taken at the start, so a
  transaction that read first and writes later can never hit ``SQLITE_BUSY_SNAPSHOT`` (which
  no busy timeout cures). Read-only sessions opt out with ``Ledger.session(readonly=True)``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from koho.errors import KohoError

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "koho_db"
CONN_ID_ENV = "KOHO_LEDGER_CONN_ID"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10
#: Key of the Postgres advisory lock that serialises concurrent ``migrate()`` calls ("kohoLedg").
MIGRATION_LOCK_KEY = int.from_bytes(b"kohoLedg", "big")

# libpq parameters an Airflow Postgres connection may carry in its extras and that we pass on.
_LIBPQ_EXTRAS = frozenset(
    {
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "connect_timeout",
        "application_name",
        "options",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
    }
)
_SQLITE_BEGIN_OPTION = "koho_sqlite_begin"


class LedgerConfigError(KohoError):
    """The ledger's connection cannot be turned into a database URL."""


def safe_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``: the only form fit for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL may still hold a secret: say nothing about it
        return "(unparsable database URL)"


# ---------------------------------------------------------------------------------------------
# Airflow connection -> SQLAlchemy URL


def url_from_connection(conn: Any) -> str:
    """Turn an Airflow connection into a SQLAlchemy URL for the ledger.

    ``conn`` is anything with ``conn_type``, ``host``, ``schema``, ``login``, ``password``,
    ``port`` and ``extra_dejson`` (an Airflow ``Connection``). Supported types:

    * ``sqlite``: ``host`` is the database file; a relative path is resolved against
      ``$AIRFLOW_HOME`` so that it does not depend on the worker's current directory.
    * ``postgres`` / ``postgresql``: ``schema`` names the database (required: the ledger
      belongs in its own database); libpq extras such as ``sslmode`` are passed on.

    The returned string contains the password (it is needed to connect): never log it, use
    :func:`safe_url`.
    """
    conn_id = getattr(conn, "conn_id", None) or "(unnamed)"
    conn_type = (getattr(conn, "conn_type", None) or "").strip().lower()
    if conn_type == "sqlite":
        return _sqlite_url(conn, conn_id)
    if conn_type in ("postgres", "postgresql"):
        return _postgres_url(conn, conn_id)
    raise LedgerConfigError(
        f"Airflow connection '{conn_id}' has type '{conn_type or '(none)'}', but the Koho ledger "
        "needs a 'sqlite' or 'postgres' connection"
    )


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow").expanduser()


def _sqlite_url(conn: Any, conn_id: str) -> str:
    raw = (getattr(conn, "host", None) or getattr(conn, "schema", None) or "").strip()
    if not raw:
        raise LedgerConfigError(f"Airflow connection '{conn_id}' (sqlite) has no database file: put its path in 'host'")
    if raw == ":memory:":
        return "sqlite://"
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = _airflow_home() / path
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def _postgres_url(conn: Any, conn_id: str) -> str:
    database = (getattr(conn, "schema", None) or "").strip()
    if not database:
        raise LedgerConfigError(
            f"Airflow connection '{conn_id}' (postgres) names no database: put the ledger's database name in 'schema'"
        )
    extras = getattr(conn, "extra_dejson", None) or {}
    query = {key: str(value) for key, value in extras.items() if key in _LIBPQ_EXTRAS and value is not None}
    port = getattr(conn, "port", None)
    try:
        port = int(port) if port not in (None, "") else None
    except (TypeError, ValueError):
        raise LedgerConfigError(
            f"Airflow connection '{conn_id}' (postgres) has port {port!r}, which is not a number"
        ) from None
    url = URL.create(
        "postgresql+psycopg2",
        username=getattr(conn, "login", None) or None,
        password=getattr(conn, "password", None) or None,
        host=(getattr(conn, "host", None) or "").strip() or None,
        port=port,
        database=database,
        query=query,
    )
    return url.render_as_string(hide_password=False)


# ---------------------------------------------------------------------------------------------
# Engines, cached per URL per process

_engines: dict[tuple[int, str], Engine] = {}
_engines_lock = threading.Lock()


def _forget_engines_in_child() -> None:
    """After fork the child must not reuse the parent's pooled connections (shared sockets).

    ``dispose(close=False)`` drops them without closing, which would break the parent's.
    """
    global _engines_lock
    for engine in list(_engines.values()):
        engine.dispose(close=False)
    _engines.clear()
    _engines_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_engines_in_child)


def get_engine(url: str | URL) -> Engine:
    """The process-wide engine for ``url`` (created on first use, with the ledger's settings)."""
    url = make_url(url)
    key = (os.getpid(), url.render_as_string(hide_password=False))
    engine = _engines.get(key)
    if engine is not None:
        return engine
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _create_engine(url)
            _engines[key] = engine
    return engine


def dispose_engine(url: str | URL) -> None:
    """Close and forget this process's engine for ``url`` (tests, or before deleting a file)."""
    key = (os.getpid(), make_url(url).render_as_string(hide_password=False))
    with _engines_lock:
        engine = _engines.pop(key, None)
    if engine is not None:
        engine.dispose()


def _create_engine(url: URL) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _create_sqlite_engine(url)
    if backend == "postgresql":
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
        if "application_name" not in url.query:
            connect_args["application_name"] = "koho-ledger"
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    return create_engine(url, pool_pre_ping=True)


def _create_sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if in_memory:
        # One shared connection, or every new connection would see a different empty database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver must not BEGIN on its own: we do, below
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


# ---------------------------------------------------------------------------------------------
# Migrations


def alembic_config() -> Config:
    """An Alembic config built in code: no ``alembic.ini`` and no dependency on the cwd."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def migrate(url_or_engine: str | URL | Engine, revision: str = "head") -> None:
    """Upgrade the ledger's schema to ``revision`` (head by default); a no-op when up to date.

    Safe to call from several processes at once: on Postgres an advisory lock serialises the
    callers, on SQLite the ``BEGIN IMMEDIATE`` transaction does.
    """
    engine = url_or_engine if isinstance(url_or_engine, Engine) else get_engine(url_or_engine)
    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


# ---------------------------------------------------------------------------------------------
# The Ledger handle


class Ledger:
    """Koho's database: an engine plus short transactions.

    Keep sessions short and never hold one open across a platform call: on SQLite an open
    write session holds the database's write lock.
    """

    def __init__(self, url: str | URL):
        self.url = make_url(url)
        get_engine(self.url)  # fail early on a bad URL or driver

    @classmethod
    def from_airflow(cls, conn_id: str | None = None) -> Ledger:
        """The ledger named by an Airflow connection.

        ``conn_id`` defaults to ``$KOHO_LEDGER_CONN_ID``, then ``koho_db``. Airflow is imported
        only here, so the rest of the ledger works (and is tested) without it.
        """
        conn_id = conn_id or os.environ.get(CONN_ID_ENV) or DEFAULT_CONN_ID
        from airflow.sdk import BaseHook

        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception as exc:
            raise LedgerConfigError(
                f"Airflow connection '{conn_id}' for the Koho ledger could not be read "
                f"({type(exc).__name__}); define it (sqlite or postgres) or set {CONN_ID_ENV}"
            ) from exc
        return cls(url_from_connection(conn))

    @property
    def engine(self) -> Engine:
        """This process's engine (looked up each time, so a forked worker gets its own)."""
        return get_engine(self.url)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A transaction: committed when the block succeeds, rolled back when it raises.

        Objects stay usable after the block (``expire_on_commit=False``), so a function can
        return what it loaded. A ``readonly`` session takes no write lock on SQLite and is
        rolled back at the end: anything written in it is discarded.
        """
        bind = self.engine
        if readonly and self.dialect == "sqlite":
            bind = bind.execution_options(**{_SQLITE_BEGIN_OPTION: "DEFERRED"})
        session = Session(bind=bind, expire_on_commit=False)
        try:
            yield session
            if not readonly:
                session.commit()
            # A read-only session ends in close(): it rolls the transaction back without
            # expiring (unlike rollback()), so what was loaded stays readable afterwards.
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self, revision: str = "head") -> None:
        """Upgrade this ledger's schema (see :func:`migrate`)."""
        migrate(self.engine, revision)

    def __repr__(self) -> str:
        return f"Ledger({safe_url(self.url)!r})"
