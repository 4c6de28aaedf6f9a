"""Delivery fixtures: a small city whose accounts live in the real sandbox (connections as
``AIRFLOW_CONN_*`` variables, the way Airflow documents for tests), recorded in the fresh SQLite
``ledger`` each test gets from ``tests/unit/conftest.py``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from koho.ledger import accounts
from tests.unit.delivery.delivery_helpers import account_row


@pytest.fixture
def city(ledger, sandbox, connect) -> Callable[..., dict]:
    """``city(account_id, platform, status="active")``: a sandbox account, its connection and its ledger row.

    Bluesky accounts get an app password (the hook logs in with it); other platforms a token.
    """

    def _add(account_id: str, platform: str, *, status: str = "active") -> dict:
        handle = f"{account_id.replace('-', '_')}_sample"
        login = {"password": f"app-password-{account_id}"} if platform == "bluesky" else {}
        official = sandbox.add_account(platform, handle, display_name=account_id, **login)
        conn_id = connect(platform, official, conn_id=f"koho_{account_id.replace('-', '_')}")
        row = account_row(account_id, platform, conn_id=conn_id, status=status)
        row["handle"] = official["handle"]
        with ledger.session() as session:
            accounts.upsert_accounts(session, [row])
        return {**row, "sandbox": official}

    return _add
