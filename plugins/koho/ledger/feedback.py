"""Residents' feedback: comments, replies and mentions, stored once per platform id.

Residents' text is untrusted and personal: it is stored as received (templates escape it) and
never logged here. Overlapping collection runs insert with ``ON CONFLICT DO NOTHING`` on
(platform, account, remote id), so each comment is stored once however many runs saw it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from koho.ledger._base import as_dict, aware_now, insert_ignore, orm_update
from koho.ledger.errors import LedgerError
from koho.ledger.models import FeedbackItem

_FEEDBACK_REQUIRED = ("account_id", "platform", "remote_id", "author", "text")
_FEEDBACK_OPTIONAL = ("post_remote_id", "url", "created_at", "collected_at", "department", "route_reason", "hostile")


def add_feedback(session: Session, items: Iterable[Any], *, now: datetime | None = None) -> int:
    """Store collected comments; ones already stored (same platform, account, remote id) are
    ignored, so overlapping collection windows are harmless. Returns how many were new.

    Each item has ``account_id``, ``platform``, ``remote_id``, ``author``, ``text`` and
    optionally ``post_remote_id``, ``url``, ``created_at`` (default: ``collected_at``),
    ``collected_at`` (default: now), ``department``, ``route_reason``, ``hostile``.
    """
    now = aware_now(now)
    rows = []
    for raw in items:
        item = as_dict(raw)
        # An empty text is a real comment (an image, a sticker); a missing one is a bug.
        missing = [key for key in _FEEDBACK_REQUIRED if item.get(key) in (None, "") and key != "text"]
        if item.get("text") is None:
            missing.append("text")
        if missing:
            raise LedgerError(f"feedback item {item.get('remote_id')!r} lacks {missing}")
        values = {key: item[key] for key in _FEEDBACK_REQUIRED}
        values.update({key: item.get(key) for key in _FEEDBACK_OPTIONAL})
        values["collected_at"] = values["collected_at"] or now
        values["created_at"] = values["created_at"] or values["collected_at"]
        values["hostile"] = bool(values["hostile"])
        rows.append(values)
    # In key order: two overlapping batches then take the unique index's locks in the same order
    # and one waits for the other instead of both deadlocking (Postgres).
    rows.sort(key=lambda v: (str(v["platform"]), str(v["account_id"]), str(v["remote_id"])))
    return sum(insert_ignore(session, FeedbackItem.__table__, values) for values in rows)


def feedback_for_digest(session: Session, department: str | None = None) -> list[FeedbackItem]:
    """Feedback not yet sent in a digest (for one department, or all), oldest first."""
    query = select(FeedbackItem).where(FeedbackItem.digest_sent_at.is_(None))
    if department is not None:
        query = query.where(FeedbackItem.department == department)
    return list(session.scalars(query.order_by(FeedbackItem.created_at, FeedbackItem.id)))


def mark_digest_sent(session: Session, ids: Iterable[int], *, now: datetime | None = None) -> int:
    """Mark feedback as sent in a digest; returns how many were newly marked (a re-run marks none)."""
    ids = list(ids)
    if not ids:
        return 0
    statement = update(FeedbackItem).where(FeedbackItem.id.in_(ids), FeedbackItem.digest_sent_at.is_(None))
    return orm_update(session, statement.values(digest_sent_at=aware_now(now)))
