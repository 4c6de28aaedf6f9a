"""Alerts: what a person must know, raised once per ``dedup_key`` however many tasks raise it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from koho import secrets
from koho.ledger._base import aware_now, check_value, insert_ignore, orm_update, redact_json
from koho.ledger.models import Alert, AlertKind, AlertSeverity


def raise_alert(
    session: Session,
    kind: str,
    dedup_key: str,
    subject: str,
    detail: Mapping[str, Any] | None = None,
    severity: str = AlertSeverity.WARNING.value,
    account_id: str | None = None,
    *,
    now: datetime | None = None,
) -> Alert | None:
    """Record an alert once: None when one with ``dedup_key`` exists already (even resolved).

    Put in ``dedup_key`` whatever makes a repeat a *new* alert (a date, a token expiry, a
    delivery id); subject and detail are redacted because alerts are mailed.
    """
    check_value(kind, AlertKind, "alert kind")
    check_value(severity, AlertSeverity, "alert severity")
    inserted = insert_ignore(
        session,
        Alert.__table__,
        {
            "kind": kind,
            "severity": severity,
            "account_id": account_id,
            "subject": secrets.redact(subject),
            "detail": redact_json(dict(detail or {})),
            "dedup_key": dedup_key,
            "created_at": aware_now(now),
        },
    )
    if not inserted:
        return None
    return session.scalars(select(Alert).where(Alert.dedup_key == dedup_key)).one()


def pending_alerts(session: Session, kinds: Iterable[str] | None = None) -> list[Alert]:
    """Alerts not yet notified (and not resolved meanwhile), oldest first."""
    query = select(Alert).where(Alert.notified_at.is_(None), Alert.resolved_at.is_(None))
    if kinds is not None:
        query = query.where(Alert.kind.in_(list(kinds)))
    return list(session.scalars(query.order_by(Alert.created_at, Alert.id)))


def mark_notified(session: Session, ids: Iterable[int], *, now: datetime | None = None) -> int:
    """Mark alerts as sent to people; returns how many were newly marked."""
    ids = list(ids)
    if not ids:
        return 0
    return orm_update(
        session, update(Alert).where(Alert.id.in_(ids), Alert.notified_at.is_(None)).values(notified_at=aware_now(now))
    )


def resolve_alert(session: Session, dedup_key: str, *, now: datetime | None = None) -> bool:
    """Mark an alert resolved (e.g. the token works again); False when none is open."""
    statement = update(Alert).where(Alert.dedup_key == dedup_key, Alert.resolved_at.is_(None))
    return orm_update(session, statement.values(resolved_at=aware_now(now))) == 1
