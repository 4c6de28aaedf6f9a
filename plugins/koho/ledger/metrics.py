"""Metric snapshots: posts' counters and accounts' audience figures over time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from koho.ledger._base import as_dict, aware_now
from koho.ledger.models import AccountMetric, Delivery, PostMetric

_POST_METRIC_FIELDS = ("impressions", "likes", "reposts", "replies", "quotes", "clicks")


def add_post_metrics(
    session: Session, account_id: str, metrics: Iterable[Any], *, collected_at: datetime | None = None
) -> int:
    """Append one snapshot per post (``PostMetrics`` values or mappings); returns the count.

    Each snapshot is linked to the delivery that published the post, when the ledger has one.
    """
    collected_at = aware_now(collected_at)
    rows = [as_dict(m) for m in metrics]
    if not rows:
        return 0
    remote_ids = sorted({str(r["remote_id"]) for r in rows})
    delivery_ids = dict(
        session.execute(
            select(Delivery.remote_id, func.min(Delivery.id))
            .where(and_(Delivery.account_id == account_id, Delivery.remote_id.in_(remote_ids)))
            .group_by(Delivery.remote_id)
        ).all()
    )
    for row in rows:
        remote_id = str(row["remote_id"])
        values = {f: row.get(f) for f in _POST_METRIC_FIELDS}
        for counter in ("likes", "reposts", "replies", "quotes"):
            values[counter] = values[counter] or 0
        session.add(
            PostMetric(
                account_id=account_id,
                delivery_id=row.get("delivery_id") or delivery_ids.get(remote_id),
                remote_id=remote_id,
                collected_at=collected_at,
                extra=dict(row.get("extra") or {}),
                **values,
            )
        )
    session.flush()
    return len(rows)


def add_account_metrics(
    session: Session, account_id: str, metrics: Any, *, collected_at: datetime | None = None
) -> AccountMetric:
    """Append one snapshot of an account's figures (an ``AccountMetrics`` value or mapping)."""
    values = as_dict(metrics)
    row = AccountMetric(
        account_id=account_id,
        collected_at=aware_now(collected_at),
        followers=values.get("followers"),
        posts=values.get("posts"),
        views=values.get("views"),
        extra=dict(values.get("extra") or {}),
    )
    session.add(row)
    session.flush()
    return row
