"""Accounts: the ledger's mirror of the registry (accounts.yaml) and the outcome of token checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from koho.errors import Problem, Where
from koho.ledger._base import as_dict, as_json, aware_now, clean_error, insert_ignore, reload
from koho.ledger.errors import LedgerError, UnknownRecord
from koho.ledger.models import Account, AccountKind, AccountStatus

_ACCOUNT_REQUIRED = ("id", "platform", "handle", "display_name", "department")
_ACCOUNT_OPTIONAL: dict[str, Any] = {
    "kind": AccountKind.GENERAL.value,
    "topic": None,
    "status": AccountStatus.ACTIVE.value,
    "connection_id": None,
    "settings": None,  # -> {}
}
_ACCOUNT_FIELDS = (*_ACCOUNT_REQUIRED[1:], *_ACCOUNT_OPTIONAL)


@dataclass(frozen=True)
class UpsertResult:
    """Account ids by what happened to them; ``problems`` lists rows that were skipped."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    retired: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()


def _account_values(raw: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Normalise one registry row; unknown keys are ignored (the registry knows more)."""
    row = as_dict(raw)
    where = Where(account=str(row.get("id") or "?"))
    problems = [Problem(where, f"'{key}' is required") for key in _ACCOUNT_REQUIRED if not row.get(key)]
    values = {key: row.get(key, default) for key, default in _ACCOUNT_OPTIONAL.items()}
    try:
        values["settings"] = as_json(dict(values["settings"] or {}), "'settings'")
    except (LedgerError, TypeError, ValueError) as exc:
        problems.append(Problem(where, str(exc)))
    for key, allowed in (("kind", AccountKind), ("status", AccountStatus)):
        if values[key] not in {v.value for v in allowed}:
            problems.append(Problem(where, f"'{key}' is {values[key]!r}, expected one of {[v.value for v in allowed]}"))
    if problems:
        return None, problems
    values.update({key: str(row[key]) for key in _ACCOUNT_REQUIRED})
    return values, []


def upsert_accounts(
    session: Session,
    accounts: Iterable[Any],
    *,
    retire_missing: bool = False,
    now: datetime | None = None,
) -> UpsertResult:
    """Make the ``accounts`` table reflect the registry (accounts.yaml).

    Rows are mappings (or dataclasses / pydantic models) with ``id``, ``platform``,
    ``handle``, ``display_name``, ``department`` and optionally ``kind``, ``topic``,
    ``status``, ``connection_id``, ``settings``. An invalid row is skipped and reported in
    ``problems``; the others proceed. Accounts missing from the registry are kept (their
    history matters) and only marked ``retired`` with ``retire_missing=True``.
    """
    now = aware_now(now)
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    rows: dict[str, dict[str, Any]] = {}
    for raw in accounts:
        values, row_problems = _account_values(raw)
        raw_id = as_dict(raw).get("id")
        if raw_id:
            seen.add(str(raw_id))
        if values is None:
            problems.extend(row_problems)
        else:
            rows[values["id"]] = values  # a later duplicate wins, as in a YAML mapping

    existing = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(list(rows))))}
    for account_id, values in rows.items():
        account = existing.get(account_id)
        if account is None:
            if insert_ignore(session, Account.__table__, {**values, "created_at": now, "updated_at": now}):
                created.append(account_id)
                continue
            account = reload(session, Account, account_id)  # a concurrent sync created it
        changes = {f: values[f] for f in _ACCOUNT_FIELDS if getattr(account, f) != values[f]}
        for name, value in changes.items():
            setattr(account, name, value)
        if changes:
            account.updated_at = now
        (updated if changes else unchanged).append(account_id)

    retired: list[str] = []
    if retire_missing:
        retired = _retire_missing(session, seen, now)
    session.flush()
    return UpsertResult(tuple(created), tuple(updated), tuple(unchanged), tuple(retired), tuple(problems))


def _retire_missing(session: Session, seen: set[str], now: datetime) -> list[str]:
    if not seen:
        raise LedgerError("refusing to retire every account: the registry given is empty")
    table = Account.__table__
    result = session.execute(
        update(table)
        .where(table.c.id.not_in(sorted(seen)), table.c.status != AccountStatus.RETIRED.value)
        .values(status=AccountStatus.RETIRED.value, updated_at=now)
        .returning(table.c.id)
    )
    retired = sorted(result.scalars())
    for account_id in retired:
        reload(session, Account, account_id)
    return retired


def record_verification(
    session: Session,
    account_id: str,
    *,
    ok: bool,
    token_expires_at: datetime | None = None,
    error: str | None = None,
    now: datetime | None = None,
) -> Account:
    """Remember the outcome of a token check.

    A success records the expiry the platform reported (None: it reports none); a failure
    keeps the last known expiry and stores the error, redacted, for the alert and the report.
    """
    account = session.get(Account, account_id)
    if account is None:
        raise UnknownRecord(f"account {account_id!r} does not exist")
    account.last_verified_at = aware_now(now)
    if ok:
        account.verify_error = None
        account.token_expires_at = token_expires_at
    else:
        account.verify_error = clean_error(error or "verification failed (no reason given)")
    session.flush()
    return account


# ---------------------------------------------------------------------------------------------
# reads


def get_account(session: Session, account_id: str) -> Account | None:
    """The account, or None when the ledger has none with this id."""
    return session.get(Account, account_id)


def accounts_by_id(session: Session, account_ids: Iterable[str] | None = None) -> dict[str, Account]:
    """The accounts named (all of them when ``account_ids`` is None), by id."""
    query = select(Account)
    if account_ids is not None:
        query = query.where(Account.id.in_(list(account_ids)))
    return {a.id: a for a in session.scalars(query)}


def all_accounts(session: Session) -> list[Account]:
    """Every account, general ones first, then by id (the order lists show them in)."""
    return list(session.scalars(select(Account).order_by(Account.kind, Account.id)))
