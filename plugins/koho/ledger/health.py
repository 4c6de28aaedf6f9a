"""What the operator's health check asks of the ledger: its schema revision, its clock, and the
accounts' last credential checks (recorded by ``accounts_sync``, so the platforms are not asked twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from koho.ledger.db import alembic_config
from koho.ledger.models import VERSION_TABLE, Account, AccountStatus


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("the ledger has no migrations")
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at; ``None`` when it was never migrated."""
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def database_now(conn: Connection) -> datetime | None:
    """The database server's clock (Postgres); ``None`` for SQLite, whose clock is this machine's."""
    if conn.dialect.name != "postgresql":
        return None
    return conn.execute(sa.text("SELECT now()")).scalar_one()


@dataclass(frozen=True)
class AccountCheck:
    """An active account's connection and the outcome of its last credential check."""

    account_id: str
    connection_id: str | None
    last_verified_at: datetime | None
    verify_error: str | None
    token_expires_at: datetime | None


def active_account_checks(conn: Connection) -> list[AccountCheck]:
    """Active accounts in id order, with what ``accounts_sync`` last found about their tokens."""
    columns = (
        Account.id,
        Account.connection_id,
        Account.last_verified_at,
        Account.verify_error,
        Account.token_expires_at,
    )
    query = sa.select(*columns).where(Account.status == AccountStatus.ACTIVE.value).order_by(Account.id)
    return [AccountCheck(*row) for row in conn.execute(query)]
