"""Metric snapshots: posts' counters and accounts' audience figures over time.

A snapshot is keyed by what the platform names (account, the post's remote id) and the instant
it stands for (``collected_at``): collection tasks that overlap or are retried with the same
instant write one snapshot, not two, in a single ``INSERT ... ON CONFLICT DO UPDATE`` (the last
writer's counters win; there is no read-then-write to race). A later instant is a new snapshot:
history is appended, never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from koho.ledger._base import as_dict, aware_now, upsert_insert
from koho.ledger.errors import LedgerError
from koho.ledger.models import AccountMetric, Delivery, PostMetric

_POST_METRIC_FIELDS = ("impressions", "likes", "reposts", "replies", "quotes", "clicks")
_ZERO_WHEN_MISSING = ("likes", "reposts", "replies", "quotes")
_ACCOUNT_METRIC_FIELDS = ("followers", "posts", "views")


def add_post_metrics(
    session: Session, account_id: str, metrics: Iterable[Any], *, collected_at: datetime | None = None
) -> int:
    """Record one snapshot per post (``PostMetrics`` values or mappings); returns how many.

    Each snapshot is linked to the delivery that published the post, when the ledger has one.
    The same post twice in ``metrics`` is one snapshot (the later values win).
    """
    collected_at = aware_now(collected_at)
    by_remote: dict[str, dict[str, Any]] = {}
    for raw in metrics:
        row = as_dict(raw)
        remote_id = str(row.get("remote_id") or "").strip()
        if not remote_id:
            raise LedgerError(f"a post metric of account {account_id!r} has no remote_id: {sorted(row)}")
        by_remote[remote_id] = row
    if not by_remote:
        return 0
    delivery_ids = dict(
        session.execute(
            select(Delivery.remote_id, func.min(Delivery.id))
            .where(Delivery.account_id == account_id, Delivery.remote_id.in_(sorted(by_remote)))
            .group_by(Delivery.remote_id)
        ).all()
    )
    values = []
    # In key order: overlapping multi-row upserts then lock rows in the same order and one waits
    # for the other instead of both deadlocking (Postgres).
    for remote_id, row in sorted(by_remote.items()):
        counters = {f: row.get(f) for f in _POST_METRIC_FIELDS}
        counters.update({f: counters[f] or 0 for f in _ZERO_WHEN_MISSING})
        values.append(
            {
                "account_id": account_id,
                "delivery_id": row.get("delivery_id") or delivery_ids.get(remote_id),
                "remote_id": remote_id,
                "collected_at": collected_at,
                "extra": dict(row.get("extra") or {}),
                **counters,
            }
        )
    table = PostMetric.__table__
    statement = upsert_insert(session, table).values(values)
    excluded = statement.excluded
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.account_id, table.c.remote_id, table.c.collected_at],
            set_={
                **{f: excluded[f] for f in (*_POST_METRIC_FIELDS, "extra")},
                "delivery_id": func.coalesce(excluded.delivery_id, table.c.delivery_id),
            },
        )
    )
    return len(values)


def add_account_metrics(
    session: Session, account_id: str, metrics: Any, *, collected_at: datetime | None = None
) -> AccountMetric:
    """Record one snapshot of an account's figures (an ``AccountMetrics`` value or mapping)."""
    given = as_dict(metrics)
    collected_at = aware_now(collected_at)
    table = AccountMetric.__table__
    statement = upsert_insert(session, table).values(
        account_id=account_id,
        collected_at=collected_at,
        extra=dict(given.get("extra") or {}),
        **{f: given.get(f) for f in _ACCOUNT_METRIC_FIELDS},
    )
    excluded = statement.excluded
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.account_id, table.c.collected_at],
            set_={f: excluded[f] for f in (*_ACCOUNT_METRIC_FIELDS, "extra")},
        )
    )
    query = select(AccountMetric).where(
        AccountMetric.account_id == account_id, AccountMetric.collected_at == collected_at
    )
    return session.scalars(query.execution_options(populate_existing=True)).one()


__all__ = ["add_account_metrics", "add_post_metrics"]
