"""Record alerts in the ledger once, and mail the ones nobody has been told about yet.

Recording and mailing are separate steps on purpose: if the relay is down, the alerts stay
un-notified in the ledger and the next run mails them; nothing is lost. The mail's id is made of
the alerts it lists, so a retry after a crash does not mail the same alerts to anyone twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from koho.ledger import alerts as ledger_alerts
from koho.notify.message import Message, content_id
from koho.notify.sender import send


@dataclass(frozen=True)
class AlertSpec:
    """An alert to raise; ``dedup_key`` says what makes a repeat a new alert (see raise_alert)."""

    kind: str
    dedup_key: str
    subject: str
    severity: str
    account_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def record_alerts(session, specs: Iterable[AlertSpec]) -> int:
    """Store alerts, skipping ones already raised (same dedup key); returns how many are new.

    Written in dedup-key order: two tasks raising the same alerts in different orders would
    otherwise deadlock on Postgres."""
    new = 0
    for spec in sorted(specs, key=lambda spec: spec.dedup_key):
        created = ledger_alerts.raise_alert(
            session,
            kind=spec.kind,
            dedup_key=spec.dedup_key,
            subject=spec.subject,
            detail=spec.detail,
            severity=spec.severity,
            account_id=spec.account_id,
        )
        new += created is not None
    return new


def notify_pending(ledger, *, to: Iterable[str], city_name: str, kinds: Iterable[str] | None = None) -> int:
    """Mail every alert not yet notified (of ``kinds``), one mail per recipient; returns how many
    alerts were mailed. Raises (alerts stay pending) when a recipient could not be mailed."""
    with ledger.session() as session:
        pending = ledger_alerts.pending_alerts(session, kinds=list(kinds) if kinds else None)
        items = [
            {
                "id": a.id,
                "kind": a.kind,
                "severity": a.severity,
                "subject": a.subject,
                "account_id": a.account_id,
                "detail": a.detail or {},
                "created_at": a.created_at,
            }
            for a in pending
        ]
    if not items:
        return 0
    critical = sum(1 for item in items if item["severity"] == "critical")
    subject = f"[Koho] {city_name}: {len(items)} alert(s)" + (f", {critical} critical" if critical else "")
    message = Message(
        id=content_id("alerts", [item["id"] for item in items]),
        to=tuple(to),
        subject=subject,
        template="mail/alerts.html.j2",
        context={"alerts": items, "city_name": city_name},
    )
    send(message, ledger=ledger)
    with ledger.session() as session:
        ledger_alerts.mark_notified(session, [item["id"] for item in items])
    return len(items)
