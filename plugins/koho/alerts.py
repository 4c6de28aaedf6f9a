"""Record alerts in the ledger once, and mail the ones nobody has been told about yet.

Recording and mailing are separate steps on purpose: if the relay is down, the alerts stay
un-notified in the ledger and the next run mails them; nothing is lost and nothing is sent twice.
"""

from __future__ import annotations

from collections.abc import Iterable

from koho.accounts.sync import AlertSpec
from koho.ledger import alerts as ledger_alerts
from koho.notify.mail import send_mail


def record_alerts(session, specs: Iterable[AlertSpec]) -> int:
    """Store alerts, skipping ones already raised (same dedup key); returns how many are new."""
    new = 0
    for spec in specs:
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
    """Mail every alert not yet notified (of ``kinds``) in one message; returns how many were sent."""
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
    send_mail(to=to, subject=subject, template="mail/alerts.html.j2", alerts=items, city_name=city_name)
    with ledger.session() as session:
        ledger_alerts.mark_notified(session, [item["id"] for item in items])
    return len(items)
