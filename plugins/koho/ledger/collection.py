"""What collection reads from the ledger: the accounts to read and their recent posts.

Its own module beside ``repo`` so that the read side's queries stay in one place.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from koho.ledger.models import Account, Delivery


def active_accounts(session: Session, platforms: tuple[str, ...] = ()) -> list[Account]:
    """Active accounts that have a connection, by id (optionally only on ``platforms``)."""
    query = select(Account).where(Account.status == "active", Account.connection_id.is_not(None))
    if platforms:
        query = query.where(Account.platform.in_(platforms))
    return list(session.scalars(query.order_by(Account.id)))


def recent_post_ids(session: Session, account_id: str, since: datetime, *, limit: int = 200) -> tuple[str, ...]:
    """Remote ids of the account's posts published at or after ``since`` (the newest ``limit``), oldest first."""
    query = (
        select(Delivery.remote_id)
        .where(
            Delivery.account_id == account_id,
            Delivery.status == "published",
            Delivery.remote_id.is_not(None),
            Delivery.published_at >= since,
        )
        .order_by(Delivery.published_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    return tuple(reversed(dict.fromkeys(session.scalars(query))))
