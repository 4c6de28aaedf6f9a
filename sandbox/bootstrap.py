"""Wire a city's account registry to a running sandbox: accounts there, connections here.

Used by ``make run`` (the demo city) and by end-to-end tests. Tokens are generated on the
machine (kept in a git-ignored file so that re-running keeps them) and are never committed.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests

#: The connection extra naming the sandbox timeline of the connection's account.
TIMELINE_EXTRA = "timeline_url"


def load_or_create_secrets(path: Path, account_ids: Iterable[str]) -> dict[str, str]:
    """One random secret per account, stable across runs (stored at ``path``, mode 0600)."""
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for account_id in account_ids:
        if account_id not in known:
            known[account_id] = secrets.token_urlsafe(24)
            changed = True
    if changed or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=1))
        path.chmod(0o600)
    return known


def register_accounts(sandbox_url: str, accounts: Iterable[dict[str, Any]], tokens: dict[str, str]) -> dict[str, dict]:
    """Create each account in the sandbox; returns {account id: connection fields}.

    ``accounts`` are registry rows (``koho.accounts.sync.registry_rows``). Bluesky logs in with
    an app password (the connection's password); every other platform takes a bearer token.
    The extra ``timeline_url`` tells Koho where the sandbox shows what it received (the calendar
    view and the dry run link there); a real platform's connection has none.
    """
    body = []
    rows = list(accounts)
    for row in rows:
        secret = tokens[row["id"]]
        body.append(
            {
                "platform": row["platform"],
                "handle": row["handle"].lstrip("@").split("@")[0] if row["platform"] != "line" else row["handle"],
                "display_name": row["display_name"],
                "token": None if row["platform"] == "bluesky" else secret,
                "password": secret if row["platform"] == "bluesky" else None,
                "followers": 1000,
            }
        )
    response = requests.post(f"{sandbox_url}/_admin/accounts", json=body, timeout=30)
    response.raise_for_status()
    created = response.json()
    connections = {}
    for row, made in zip(rows, created, strict=True):
        connections[row["connection_id"]] = {
            "conn_type": f"koho_{row['platform']}",
            "host": f"{sandbox_url}/{row['platform']}",
            "login": made["handle"],
            "password": tokens[row["id"]],
            "extra": json.dumps({"account_id": made["account_id"], TIMELINE_EXTRA: f"{sandbox_url}/_timeline"}),
        }
    return connections


def seed_demo(sandbox_url: str) -> dict:
    response = requests.post(f"{sandbox_url}/_admin/demo", timeout=60)
    response.raise_for_status()
    return response.json()
