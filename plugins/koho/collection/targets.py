"""The accounts a collection maps over, as the operators' keyword arguments."""

from __future__ import annotations

from koho.ledger.collection import active_accounts
from koho.ledger.db import Ledger


def collection_targets(ledger: Ledger | None = None, platforms: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """``[{platform, conn_id, account_id}]`` for the active accounts with a connection (optionally only
    on ``platforms``): ``SomeOperator.partial(task_id=...).expand_kwargs(collection_targets())`` makes
    one mapped task per account."""
    ledger = ledger or Ledger.from_airflow()
    with ledger.session(readonly=True) as session:
        return [
            {"platform": a.platform, "conn_id": a.connection_id or "", "account_id": a.id}
            for a in active_accounts(session, platforms)
        ]
