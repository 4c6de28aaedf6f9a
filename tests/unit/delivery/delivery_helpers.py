"""Helpers for delivery tests: ledger rows as the calendar validation and the registry hand them over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from koho.ledger import entries
from koho.ledger.db import Ledger
from koho.ledger.models import CalendarEntry

#: 2026-04-01 09:00 in Tokyo.
T0 = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


def account_row(
    account_id: str, platform: str, *, conn_id: str | None = None, status: str = "active", **extra: Any
) -> dict:
    return {
        "id": account_id,
        "platform": platform,
        "handle": f"{account_id}_h",
        "display_name": f"こほ市 {account_id}",
        "department": "pr",
        "status": status,
        "connection_id": conn_id or f"koho_{account_id.replace('-', '_')}",
        "settings": {},
        **extra,
    }


def add_entry(
    ledger: Ledger,
    entry_id: str,
    *,
    accounts: list[str],
    text: str,
    due: datetime | None = None,
    origin: str = "calendar",
    approval: bool = False,
    **payload: Any,
) -> CalendarEntry:
    """A stored entry whose payload is what the calendar validation would have produced."""
    body = {
        "id": entry_id,
        "title": f"{entry_id} のお知らせ",
        "text": text,
        "accounts": accounts,
        "channels": payload.pop("channels", ["social"]),
        "hashtags": payload.pop("hashtags", []),
        **payload,
    }
    with ledger.session() as session:
        return entries.upsert_entry(
            session,
            {
                "id": entry_id,
                "origin": origin,
                "source": "test.yaml",
                "source_line": 1,
                "title": body["title"],
                "publish_at": due or T0,
                "payload": body,
                "approval_required": approval,
                "content_hash": text,
            },
        ).entry


def plan(ledger: Ledger, entry_id: str, **kwargs: Any):
    """Plan an entry's deliveries as calendar_sync does (accounts from the ledger)."""
    from sqlalchemy import select

    from koho.delivery.planner import plan_entry
    from koho.ledger.models import Account

    with ledger.session() as session:
        entry = session.get(CalendarEntry, entry_id)
        accounts = {a.id: a for a in session.scalars(select(Account))}
        return plan_entry(session, entry, accounts, **kwargs)


def soon(seconds: float = 0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
