"""Connection handling, engines, sessions, migrations and time storage of the ledger."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

from koho.errors import KohoError
from koho.ledger.db import (
    Ledger,
    LedgerConfigError,
    alembic_config,
    get_engine,
    migrate,
    safe_url,
    url_from_connection,
)
from koho.ledger.models import VERSION_TABLE, Account, Base, Delivery
from tests.unit.ledger.ledger_factories import T0, account_row

JST = ZoneInfo("Asia/Tokyo")


def conn(conn_type: str, **fields) -> SimpleNamespace:
    base = {"conn_id": "koho_db", "host": None, "schema": None, "login": None, "password": None, "port": None}
    base.update(fields)
    base.setdefault("extra_dejson", {})
    return SimpleNamespace(conn_type=conn_type, **base)


# --- url_from_connection ----------------------------------------------------------------------


def test_sqlite_absolute_path() -> None:
    assert url_from_connection(conn("sqlite", host="/var/koho/ledger.db")) == "sqlite:////var/koho/ledger.db"


def test_sqlite_relative_path_resolves_against_airflow_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    url = make_url(url_from_connection(conn("sqlite", host="data/ledger.db")))
    assert url.database == str(tmp_path / "data" / "ledger.db")


def test_sqlite_memory() -> None:
    assert url_from_connection(conn("sqlite", host=":memory:")) == "sqlite://"


def test_sqlite_without_path_is_a_clear_error() -> None:
    with pytest.raises(LedgerConfigError, match=r"'koho_db' \(sqlite\) has no database file"):
        url_from_connection(conn("sqlite"))


@pytest.mark.parametrize("conn_type", ["postgres", "postgresql", "Postgres"])
def test_postgres(conn_type: str) -> None:
    password = "p@ss:w/rd%"  # characters that must be quoted in a URL
    url = make_url(
        url_from_connection(
            conn(
                conn_type,
                host="db.city.local",
                port="5433",
                login="koho",
                password=password,
                schema="koho_ledger",
                extra_dejson={"sslmode": "require", "cursor": "dictcursor", "iam": True},
            )
        )
    )
    assert url.drivername == "postgresql+psycopg2"
    assert (url.host, url.port, url.username, url.database) == ("db.city.local", 5433, "koho", "koho_ledger")
    assert url.password == password
    assert dict(url.query) == {"sslmode": "require"}  # Airflow-only extras are not libpq parameters


def test_postgres_needs_a_database_and_hides_the_password() -> None:
    with pytest.raises(LedgerConfigError, match="names no database") as info:
        url_from_connection(conn("postgres", host="h", login="koho", password="s3cret-pw"))
    assert "s3cret-pw" not in str(info.value)


def test_postgres_bad_port() -> None:
    with pytest.raises(LedgerConfigError, match="port 'abc'"):
        url_from_connection(conn("postgres", host="h", schema="db", port="abc", password="s3cret-pw"))


@pytest.mark.parametrize("conn_type", ["mysql", "http", "", None])
def test_unsupported_type_names_connection_and_type(conn_type: str | None) -> None:
    with pytest.raises(KohoError) as info:
        url_from_connection(conn(conn_type, conn_id="my_ledger", host="h", password="s3cret-pw"))
    message = str(info.value)
    assert "'my_ledger'" in message
    assert f"'{conn_type or '(none)'}'" in message
    assert "sqlite" in message and "postgres" in message
    assert "s3cret-pw" not in message


def test_rendered_urls_hide_the_password() -> None:
    url = "postgresql+psycopg2://koho:s3cret-pw@db/koho"
    assert "s3cret-pw" not in safe_url(url)
    assert "s3cret-pw" not in repr(Ledger(url))


def test_from_airflow_reads_the_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KOHO_LEDGER_CONN_ID", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_KOHO_DB", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "a.db")}))
    monkeypatch.setenv("AIRFLOW_CONN_OTHER_DB", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "b.db")}))
    assert Ledger.from_airflow().url.database == str(tmp_path / "a.db")
    assert Ledger.from_airflow("other_db").url.database == str(tmp_path / "b.db")
    monkeypatch.setenv("KOHO_LEDGER_CONN_ID", "other_db")
    assert Ledger.from_airflow().url.database == str(tmp_path / "b.db")


def test_from_airflow_missing_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_LEDGER", raising=False)
    with pytest.raises(LedgerConfigError, match="'no_such_ledger'"):
        Ledger.from_airflow("no_such_ledger")


# --- engines and sessions ---------------------------------------------------------------------


def test_engines_are_cached_per_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert get_engine(url) is get_engine(url) is Ledger(url).engine
    assert get_engine(f"sqlite:///{tmp_path / 'd.db'}") is not get_engine(url)


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'sub' / 'p.db'}")  # the missing folder is created
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_session_commits_or_rolls_back(ledger: Ledger) -> None:
    with ledger.session() as s:
        s.add(Account(**account_row("kept")))
    with pytest.raises(RuntimeError), ledger.session() as s:
        s.add(Account(**account_row("dropped")))
        s.flush()
        raise RuntimeError("boom")
    with ledger.session(readonly=True) as s:
        assert s.scalars(select(Account.id)).all() == ["kept"]


def test_foreign_keys_are_enforced(ledger: Ledger) -> None:
    with pytest.raises(sa.exc.IntegrityError), ledger.session() as s:
        s.add(
            Delivery(
                entry_id="nope",
                account_id="nope",
                revision=1,
                idempotency_key="k",
                due_at=T0,
                text="t",
                planned_created_at=T0,
            )
        )


# --- migrations -------------------------------------------------------------------------------


def test_migrate_twice_is_idempotent(fresh_url: str) -> None:
    migrate(fresh_url)
    migrate(fresh_url)
    engine = get_engine(fresh_url)
    with engine.connect() as c:
        context = MigrationContext.configure(c, opts={"version_table": VERSION_TABLE})
        assert context.get_current_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert set(inspect(c).get_table_names()) == {*Base.metadata.tables, VERSION_TABLE}


def test_concurrent_migrations(fresh_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(fresh_url)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_migrated_schema_equals_the_models(fresh_url: str) -> None:
    migrate(fresh_url)
    with get_engine(fresh_url).connect() as c:
        context = MigrationContext.configure(
            c, opts={"version_table": VERSION_TABLE, "compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []

        # Alembic does not compare CHECK constraints: do it here.
        inspector = inspect(c)
        for table in Base.metadata.sorted_tables:
            in_models = {ck.name for ck in table.constraints if isinstance(ck, sa.CheckConstraint)}
            in_db = {ck["name"] for ck in inspector.get_check_constraints(table.name)}
            assert in_db == in_models, table.name


def test_schema_comparison_would_see_a_difference(fresh_url: str) -> None:
    """Guard against a comparison that passes because it compares nothing."""
    migrate(fresh_url)
    changed = sa.MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["deliveries"].append_column(sa.Column("surprise", sa.Integer))
    with get_engine(fresh_url).connect() as c:
        context = MigrationContext.configure(c, opts={"version_table": VERSION_TABLE})
        diff = compare_metadata(context, changed)
    assert [d[0] for d in diff] == ["add_column"]


# --- time -------------------------------------------------------------------------------------


def test_aware_datetimes_round_trip_as_utc(ledger: Ledger) -> None:
    nine_in_tokyo = datetime(2026, 4, 1, 9, 0, 0, 123456, tzinfo=JST)
    with ledger.session() as s:
        s.add(Account(**account_row(), token_expires_at=nine_in_tokyo))
    with ledger.session(readonly=True) as s:
        stored = s.get(Account, "city_x").token_expires_at
        assert stored == nine_in_tokyo  # the same instant
        assert stored.utcoffset() == timedelta(0) and stored.tzinfo is UTC
        assert stored.hour == 0 and stored.microsecond == 123456
        # Comparisons in SQL agree with Python (SQLite compares the stored text).
        query = select(Account.id).where(Account.token_expires_at < datetime(2026, 4, 1, 9, 0, 1, tzinfo=JST))
        assert s.scalars(query).all() == ["city_x"]
        query = select(Account.id).where(Account.token_expires_at > datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC))
        assert s.scalars(query).all() == []


def test_naive_datetimes_are_refused(ledger: Ledger) -> None:
    with pytest.raises(StatementError, match="naive datetime"), ledger.session() as s:
        s.add(Account(**account_row(), token_expires_at=datetime(2026, 4, 1, 9, 0)))
        s.flush()


def test_readonly_session_discards_writes_and_keeps_objects(ledger: Ledger) -> None:
    with ledger.session() as s:
        s.add(Account(**account_row("a")))
    with ledger.session(readonly=True) as s:
        account = s.get(Account, "a")
        s.add(Account(**account_row("ghost")))
    assert account.display_name == "City a"  # still readable after the block
    with ledger.session(readonly=True) as s:
        assert s.scalars(select(Account.id)).all() == ["a"]


def test_readers_do_not_wait_for_an_open_writer(ledger: Ledger) -> None:
    with ledger.session() as s:
        s.add(Account(**account_row("a")))
    writing = threading.Event()
    done = threading.Event()

    def writer() -> None:
        with ledger.session() as s:
            s.get(Account, "a").display_name = "changed"
            s.flush()  # holds the write lock (SQLite) / the row lock (Postgres)
            writing.set()
            done.wait(timeout=10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(timeout=10)
        started = time.monotonic()
        with ledger.session(readonly=True) as s:
            assert s.get(Account, "a").display_name == "City a"  # the committed state
        assert time.monotonic() - started < 1
    finally:
        done.set()
        thread.join()


def test_a_forked_worker_gets_its_own_engine(ledger: Ledger) -> None:
    """LocalExecutor forks task processes: a child must not use the parent's pooled connections."""
    with ledger.session() as s:
        s.add(Account(**account_row("a")))
    parent_engine = ledger.engine
    pid = os.fork()
    if pid == 0:  # the child: exit without running any pytest machinery
        code = 1
        try:
            with ledger.session() as s:
                s.get(Account, "a").display_name = "from the child"
            code = 0 if ledger.engine is not parent_engine else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ledger.engine is parent_engine
    with ledger.session(readonly=True) as s:  # the parent's pooled connection still works
        assert s.get(Account, "a").display_name == "from the child"
