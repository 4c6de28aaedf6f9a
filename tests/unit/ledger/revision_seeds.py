"""Representative ledger rows for each schema revision, written with plain SQL as that revision wrote them.

A new migration adds its rows to ``SEEDS`` (the migration harness fails for a revision without
any); the backup tests fill a ledger through the whole history with them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from koho.ledger.db import alembic_config, get_engine, migrate
from koho.ledger.models import Base

T = datetime(2026, 11, 25, 0, 30, 15, 123456, tzinfo=UTC)
LATER = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

#: revision -> {table: rows}, in the column names and values that revision knew.
SEEDS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "0001": {
        "accounts": [
            {
                "id": "city-x",
                "platform": "x",
                "handle": "koho_city",
                "display_name": "広報こほ市",
                "kind": "general",
                "topic": None,
                "department": "kouhou",
                "status": "active",
                "connection_id": "x_city",
                "settings": {"caps": {"per_day": 8}, "メモ": "市の公式"},
                "token_expires_at": LATER,
                "last_verified_at": T,
                "verify_error": None,
                "created_at": T,
                "updated_at": T,
            }
        ],
        "calendar_entries": [
            {
                "id": "2026-12-festival",
                "origin": "calendar",
                "source": "demo.yaml",
                "source_line": 12,
                "title": "冬まつりのお知らせ",
                "publish_at": LATER,
                "payload": {"text": "冬まつりを開催します。", "hashtags": ["こほ市"]},
                "approval_required": True,
                "revision": 2,
                "content_hash": "abc123",
                "status": "approved",
                "created_by": "staff",
                "created_at": T,
                "updated_at": T,
            }
        ],
        "deliveries": [
            {
                "id": 1,
                "entry_id": "2026-12-festival",
                "account_id": "city-x",
                "revision": 2,
                "idempotency_key": "k-0001",
                "part_index": 0,
                "parent_delivery_id": None,
                "due_at": LATER,
                "status": "published",
                "text": "冬まつりを開催します。#こほ市",
                "planned_created_at": LATER,
                "attempts": 1,
                "sending_since": None,
                "remote_id": "1899",
                "remote_url": "https://x.com/koho_city/status/1899",
                "published_at": LATER,
                "last_error": None,
                "dag_run_id": "scheduled__2026-12-01",
                "created_at": T,
                "updated_at": T,
            }
        ],
        "post_metrics": [
            {
                "id": 1,
                "account_id": "city-x",
                "delivery_id": 1,
                "remote_id": "1899",
                "collected_at": LATER,
                "impressions": 12_000_000_000,
                "likes": 5,
                "reposts": 2,
                "replies": 1,
                "quotes": 0,
                "clicks": None,
                "extra": {"bookmarks": 3},
            }
        ],
        "account_metrics": [
            {
                "id": 1,
                "account_id": "city-x",
                "collected_at": LATER,
                "followers": 4321,
                "posts": 100,
                "views": None,
                "extra": {},
            }
        ],
        "feedback_items": [
            {
                "id": 1,
                "account_id": "city-x",
                "platform": "x",
                "remote_id": "r-1",
                "post_remote_id": "1899",
                "author": "住民A",
                "text": "駐車場はありますか？",
                "url": None,
                "created_at": LATER,
                "collected_at": LATER,
                "department": "kouhou",
                "route_reason": "キーワード: 駐車場",
                "hostile": False,
                "digest_sent_at": None,
            }
        ],
        "cursors": [{"account_id": "city-x", "stream": "mentions", "cursor": "c-42", "updated_at": T}],
        "alerts": [
            {
                "id": 1,
                "kind": "token_expiring",
                "severity": "warning",
                "account_id": "city-x",
                "subject": "トークンの期限が近づいています",
                "detail": {"days": 6},
                "dedup_key": "token_expiring:city-x",
                "created_at": T,
                "notified_at": None,
                "resolved_at": None,
            }
        ],
    },
    "0002": {
        "outbox": [
            {
                "id": 1,
                "message_id": "alerts-abc",
                "recipient": "koho@city.example.jp",
                "part": 1,
                "parts": 2,
                "subject": "[Koho] こほ市: 1 alert(s)",
                "mail_message_id": "<alerts-abc.1@city.example.jp>",
                "status": "sent",
                "attempts": 1,
                "claimed_by": "scheduled__2026-12-01",
                "claimed_try": 1,
                "claimed_at": T,
                "sent_at": LATER,
                "maybe_sent_before": False,
                "last_error": None,
                "created_at": T,
                "updated_at": LATER,
            }
        ],
    },
    "0003": {
        "post_metrics": [
            {
                "id": 2,
                "account_id": "city-x",
                "delivery_id": 1,
                "remote_id": "1899",
                "collected_at": T,
                "impressions": 800,
                "likes": 1,
                "reposts": 0,
                "replies": 0,
                "quotes": 0,
                "clicks": None,
                "extra": {},
            }
        ],
        "account_metrics": [
            {
                "id": 2,
                "account_id": "city-x",
                "collected_at": T,
                "followers": 4300,
                "posts": 99,
                "views": None,
                "extra": {"source": "初回"},
            }
        ],
    },
}


def history() -> list[str]:
    """Revisions from the first to head."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _bind(dialect: str, value: Any) -> Any:
    """A Python value as plain SQL of that revision stores it (SQLite: naive UTC text)."""
    if isinstance(value, datetime):
        if dialect == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _insert(conn: Connection, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    params = ", ".join(f":{name}" for name in row)
    values = {name: _bind(conn.dialect.name, value) for name, value in row.items()}
    conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({params})"), values)  # noqa: S608 - names are ours


def seed_up_to(conn: Connection, revision: str) -> list[tuple[str, dict[str, Any]]]:
    written = []
    for rev in history():
        for table, rows in SEEDS[rev].items():
            for row in rows:
                _insert(conn, table, row)
                written.append((table, row))
        if rev == revision:
            break
    return written


def read_back(conn: Connection, table_name: str, row: dict[str, Any]) -> dict[str, Any]:
    table = Base.metadata.tables[table_name]
    key = sa.and_(*(column == row[column.name] for column in table.primary_key.columns))
    found = conn.execute(sa.select(table).where(key)).mappings().one()
    return {name: found[name] for name in row}


def fill_through_history(url: str) -> list[tuple[str, dict[str, Any]]]:
    """Migrate ``url`` revision by revision, writing each revision's rows at its own schema; ends at head."""
    written: list[tuple[str, dict[str, Any]]] = []
    engine = get_engine(url)
    for rev in history():
        migrate(url, rev)
        with engine.begin() as conn:
            for table, rows in SEEDS[rev].items():
                for row in rows:
                    _insert(conn, table, row)
                    written.append((table, row))
    migrate(url)
    return written
