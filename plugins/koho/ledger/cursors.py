"""Collection cursors: where incremental reading of one stream of one account stopped.

Many collection tasks may move the same cursor at once (an overlapping run, a retry). A move is
one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement: with ``advance="text"`` or
``advance="number"`` the database keeps whichever cursor is furthest, so a slow task that
finishes last can never move a cursor back and make the next run read everything again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, and_, collate, func, or_
from sqlalchemy.orm import Session

from koho.ledger._base import aware_now, upsert_insert
from koho.ledger.errors import LedgerError
from koho.ledger.models import Cursor

#: How a new cursor compares with the stored one: ``always`` replaces it; ``text`` moves it only
#: forward in byte order (ISO timestamps, fixed-width tokens); ``number`` only forward as a
#: non-negative integer written in decimal (snowflake ids of any length).
Advance = Literal["always", "text", "number"]
_ADVANCES = ("always", "text", "number")


def get_cursor(session: Session, account_id: str, stream: str) -> str | None:
    """Where collection of ``stream`` (e.g. "comments", "mentions") for an account stopped."""
    row = session.get(Cursor, (account_id, stream), populate_existing=True)
    return row.cursor if row else None


def set_cursor(
    session: Session,
    account_id: str,
    stream: str,
    cursor: str,
    *,
    advance: Advance = "always",
    now: datetime | None = None,
) -> bool:
    """Move a collection cursor in one statement; True when it moved (or was created).

    With ``advance`` other than ``always`` a cursor that is not further than the stored one is
    ignored, whoever wrote the stored one and however the two calls interleave.
    """
    if advance not in _ADVANCES:
        raise LedgerError(f"cursor advance {advance!r} is not one of {list(_ADVANCES)}")
    if advance == "number" and not cursor.isdigit():
        raise LedgerError(f"cursor {cursor!r} of {account_id}/{stream} is not a decimal number")
    table = Cursor.__table__
    values = {"account_id": account_id, "stream": stream, "cursor": cursor, "updated_at": aware_now(now)}
    statement = upsert_insert(session, table).values(**values)
    new = statement.excluded.cursor
    result = session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.account_id, table.c.stream],
            set_={"cursor": new, "updated_at": statement.excluded.updated_at},
            where=_further(session, new, table.c.cursor, advance),
        )
    )
    return result.rowcount == 1


def _further(session: Session, new: ColumnElement, old: ColumnElement, advance: Advance) -> ColumnElement | None:
    """The SQL condition under which ``new`` replaces ``old`` (None: always)."""
    if advance == "always":
        return None
    if session.get_bind().dialect.name == "postgresql":
        # Byte order, whatever the database's locale (SQLite compares bytes already).
        new, old = collate(new, "C"), collate(old, "C")
    if advance == "text":
        return new > old
    # Decimal numbers: a longer one is larger; of equal length, byte order is numeric order.
    return or_(func.length(new) > func.length(old), and_(func.length(new) == func.length(old), new > old))


__all__ = ["Advance", "get_cursor", "set_cursor"]
