"""Rows for ledger tests (plain dicts, as the registry and the calendar loader hand them over)."""

from __future__ import annotations

from datetime import UTC, datetime

T0 = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo


def account_row(account_id: str = "city_x", **overrides) -> dict:
    row = {
        "id": account_id,
        "platform": "x",
        "handle": f"{account_id}_handle",
        "display_name": f"City {account_id}",
        "department": "pr",
        "connection_id": f"koho_{account_id}",
        "settings": {"daily_cap": 5},
    }
    row.update(overrides)
    return row


def entry_row(entry_id: str = "2026-04-01-cherry", **overrides) -> dict:
    row = {
        "id": entry_id,
        "origin": "calendar",
        "source": "calendar.yaml",
        "source_line": 12,
        "title": "桜まつり",
        "publish_at": T0,
        "payload": {"targets": ["city_x"], "text": "桜まつりを開催します"},
        "approval_required": False,
        "content_hash": "h1",
    }
    row.update(overrides)
    return row
