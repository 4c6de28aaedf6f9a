"""What every aggregate module of the ledger shares: clocks, input normalising, redaction and the
race-safe insert forms.

Writes that many tasks make at once (planning, alerts, feedback, metrics, cursors) are single
``INSERT ... ON CONFLICT`` statements keyed by a unique index: the database decides who wins, a
concurrent duplicate is a no-op (or an update) instead of an error that would abort the whole
transaction on Postgres, and nothing is read first and written later.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from koho import secrets
from koho.ledger.errors import LedgerError, UnknownRecord
from koho.ledger.models import utcnow

MAX_ERROR_CHARS = 4000
#: The dialects whose ``INSERT ... ON CONFLICT`` the ledger uses (it runs on nothing else).
_UPSERT_DIALECTS = {"postgresql": pg_insert, "sqlite": sqlite_insert}


def aware_now(now: datetime | None) -> datetime:
    """``now`` in UTC (default: this instant); a naive time is refused, as the models refuse it."""
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise ValueError("'now' must be timezone-aware")
    return now.astimezone(UTC)


def as_dict(obj: Any) -> dict[str, Any]:
    """Accept mappings, dataclasses and pydantic models alike (the callers use all three)."""
    if isinstance(obj, Mapping):
        return dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    raise TypeError(f"expected a mapping, a dataclass or a pydantic model, got {type(obj).__name__}")


def clean_error(reason: str) -> str:
    """Error text as stored: secrets redacted (it ends up in reports and mails), bounded."""
    text = secrets.redact(str(reason)).strip()
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


def redact_json(value: Any) -> Any:
    """``value`` with secrets redacted in every string it holds (alert details are mailed)."""
    if isinstance(value, str):
        return secrets.redact(value)
    if isinstance(value, Mapping):
        return {str(k): redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value


def conflict_insert(session: Session, table: Table) -> Any | None:
    """The dialect's ``INSERT`` with ``on_conflict_do_nothing/do_update`` for ``table``, or None
    on a backend without it (the callers then fall back to a savepoint)."""
    maker = _UPSERT_DIALECTS.get(session.get_bind().dialect.name)
    return maker(table) if maker else None


def upsert_insert(session: Session, table: Table) -> Any:
    """Like :func:`conflict_insert`, for writes that need ``ON CONFLICT DO UPDATE`` (no fallback)."""
    statement = conflict_insert(session, table)
    if statement is None:
        name = session.get_bind().dialect.name
        raise LedgerError(f"the ledger's database ({name}) has no INSERT ... ON CONFLICT; use SQLite or Postgres")
    return statement


def insert_ignore(session: Session, table: Table, values: Mapping[str, Any]) -> bool:
    """Insert a row unless it collides with a unique key; True when it was inserted.

    ``ON CONFLICT DO NOTHING`` keeps the transaction usable after a collision (a plain
    IntegrityError would abort it on Postgres); other backends fall back to a savepoint.
    """
    statement = conflict_insert(session, table)
    if statement is not None:
        result = session.execute(statement.values(**values).on_conflict_do_nothing())
        return result.rowcount == 1
    try:
        with session.begin_nested():
            session.execute(insert(table).values(**values))
    except IntegrityError:
        return False
    return True


def orm_update(session: Session, statement: Any) -> int:
    """Run an ORM UPDATE and bring objects already loaded in this session up to date."""
    result = session.execute(statement, execution_options={"synchronize_session": "fetch"})
    return result.rowcount


def as_json(value: Any, what: str) -> Any:
    """``value`` as it will come back from a JSON column (tuples become lists, keys strings),
    so that comparing it with what is stored tells real changes from representation ones."""
    try:
        return json.loads(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError) as exc:
        raise LedgerError(f"{what} is not JSON: {exc}") from None


def reload(session: Session, model: type, ident: Any) -> Any:
    """The row as the database has it now (after a Core UPDATE the identity map is stale)."""
    obj = session.get(model, ident, populate_existing=True)
    if obj is None:
        raise UnknownRecord(f"{model.__tablename__} {ident!r} does not exist")
    return obj


def check_value(value: str, allowed: type, what: str) -> str:
    """``value`` if it is one of the enum ``allowed``; a clear error naming ``what`` otherwise."""
    values = {v.value for v in allowed}
    if value not in values:
        raise LedgerError(f"{what} {value!r} is not one of {sorted(values)}")
    return value
