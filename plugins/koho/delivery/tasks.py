"""Task bodies shared by the publishing workflows (calendar, ad-hoc): which slots are due, and
what to tell people about the outcomes."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select

from koho.delivery.slots import Slot, group_into_slots
from koho.ledger import repo
from koho.ledger.db import Ledger
from koho.ledger.models import Delivery
from koho.timeutil import utcnow

log = logging.getLogger(__name__)

#: Overdue deliveries (scheduler down, a long outage) are still sent within this grace period;
#: older ones wait for a person: a notice posted hours late may do more harm than good.
LATE_GRACE = timedelta(hours=3)


def due_slots(ledger: Ledger, *, horizon: timedelta, stale_after: timedelta = timedelta(minutes=15)) -> list[dict]:
    """Slots to send from now until ``now + horizon``: planned deliveries, overdue ones (sent at
    once), and deliveries left 'sending' by a dead worker for longer than ``stale_after``."""
    now = utcnow()
    with ledger.session() as session:
        too_late = session.scalars(
            select(Delivery).where(Delivery.status == "planned", Delivery.due_at < now - LATE_GRACE)
        ).all()
        for delivery in too_late:
            repo.mark_needs_attention(
                session, delivery.id,
                f"not sent: it was due {delivery.due_at.isoformat()} and is more than {LATE_GRACE} late; "
                "re-plan or cancel it",
            )
        rows = session.scalars(
            select(Delivery).where(
                Delivery.due_at <= now + horizon,
                or_(
                    Delivery.status == "planned",
                    (Delivery.status == "sending") & (Delivery.sending_since < now - stale_after),
                ),
            ).order_by(Delivery.due_at, Delivery.id)
        ).all()
        slots = group_into_slots(rows)
    merged: dict[str, Slot] = {}
    for slot in slots:
        at = max(slot.at, now.replace(microsecond=0))  # overdue: now
        key = at.isoformat()
        merged[key] = Slot(at, merged[key].chains + slot.chains) if key in merged else Slot(at, slot.chains)
    out = [s.as_dict() for s in merged.values()]
    log.info("%s slot(s), %s deliveries due by %s; %s too late for a person to decide",
             len(out), sum(s.size for s in merged.values()), (now + horizon).isoformat(), len(too_late))
    return out


def report_outcomes(ledger: Ledger, outcomes: list[dict[str, Any]], *, to: list[str], city_name: str) -> dict:
    """Alert and mail the PR section about failed deliveries (once per delivery)."""
    from koho.accounts.sync import AlertSpec
    from koho.alerts import notify_pending, record_alerts

    failed = [o for o in outcomes if o and o.get("status") in ("failed", "sending")]
    specs = [
        AlertSpec(
            kind="delivery_failed",
            dedup_key=f"delivery_failed:{o['delivery_id']}:{o['status']}",
            subject=f"{o['account_id']}: '{o['entry_id']}' " + (
                "was not published" if o["status"] == "failed" else "may not have been published"),
            severity="critical" if o["status"] == "failed" else "warning",
            account_id=o["account_id"] if o["account_id"] != "website" else None,
            detail={"entry": o["entry_id"], "platform": o["platform"], "reason": o.get("error") or "",
                    "due": o.get("due_at") or ""},
        )
        for o in failed
    ]
    with ledger.session() as session:
        new = record_alerts(session, specs)
    mailed = notify_pending(ledger, to=to, city_name=city_name, kinds=["delivery_failed"]) if new and to else 0
    published = [o for o in outcomes if o and o.get("status") == "published"]
    late = sorted(o["late_seconds"] for o in published if o.get("late_seconds") is not None)
    summary = {"published": len(published), "failed": len(failed), "mailed": mailed,
               "late_p50": late[len(late) // 2] if late else None}
    log.info("publishing summary: %s", summary)
    return summary
