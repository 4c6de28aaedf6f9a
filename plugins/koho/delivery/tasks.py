"""Task bodies shared by the publishing workflows (calendar, ad-hoc): which slots are due, and
what to tell people about the outcomes."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from koho.delivery.slots import Slot, group_into_slots
from koho.ledger import deliveries
from koho.ledger.db import Ledger
from koho.ledger.models import Delivery
from koho.timeutil import utcnow

log = logging.getLogger(__name__)

#: Overdue deliveries (scheduler down, a long outage) are still sent within this grace period;
#: older ones wait for a person: a notice posted hours late may do more harm than good.
LATE_GRACE = timedelta(hours=3)
#: A future delivery taken on by one publishing run is left to that run until this long after its
#: due time; then any run sends it (as overdue). See :func:`due_slots`.
RESERVATION_GRACE = timedelta(minutes=2)


def due_slots(
    ledger: Ledger, *, horizon: timedelta, stale_after: timedelta | None = None, run_id: str | None = None
) -> list[dict]:
    """Slots to send from now until ``now + horizon``: planned deliveries, overdue ones (sent at
    once), and deliveries left 'sending' by a dead worker for longer than ``stale_after``
    (default: ``$KOHO_STALE_AFTER_SECONDS`` or 15 minutes).

    With ``run_id`` (``"<dag_id>/<run_id>"``) the run *takes on* the future deliveries it returns
    (their ``dag_run_id``, status still planned) and leaves alone those another run took on:
    publishing runs overlap (every five minutes with a six-minute look-ahead, plus runs started
    right after a sync or an approval), and without this every overlapping run would wake up for
    the same slot at the same instant — twice the task starts exactly when time matters. The
    claim still decides who sends; a run that took a delivery on and died leaves it to the others
    ``RESERVATION_GRACE`` after its due time.
    """
    from koho.delivery.sender import default_stale_after

    stale_after = default_stale_after() if stale_after is None else stale_after
    now = utcnow()
    with ledger.session() as session:
        too_late = deliveries.overdue(session, due_before=now - LATE_GRACE)
        for delivery in too_late:
            deliveries.mark_needs_attention(
                session,
                delivery.id,
                f"not sent: it was due {delivery.due_at.isoformat()} and is more than {LATE_GRACE} late; "
                "re-plan or cancel it",
            )
        rows = deliveries.due_or_stale(session, until=now + horizon, stale_before=now - stale_after)
        if run_id:
            rows = _take_on(session, rows, run_id, now)
        slots = group_into_slots(rows)
    merged: dict[str, Slot] = {}
    for slot in slots:
        at = max(slot.at, now.replace(microsecond=0))  # overdue: now
        key = at.isoformat()
        merged[key] = Slot(at, merged[key].chains + slot.chains) if key in merged else Slot(at, slot.chains)
    out = [s.as_dict() for s in merged.values()]
    log.info(
        "%s slot(s), %s deliveries due by %s; %s too late for a person to decide",
        len(out),
        sum(s.size for s in merged.values()),
        (now + horizon).isoformat(),
        len(too_late),
    )
    return out


def _take_on(session: Any, rows: list[Delivery], run_id: str, now: Any) -> list[Delivery]:
    """The rows this run sends: all overdue or stale ones, and the future ones no other run holds.

    A future delivery held by another run of the same DAG stays with it; once it is overdue by
    ``RESERVATION_GRACE`` (that run did not send it) the query in :func:`due_slots` returns it as
    overdue and every run may send it.
    """
    future = [d.id for d in rows if d.status == "planned" and d.due_at > now - RESERVATION_GRACE]
    if not future:
        return rows
    taken = deliveries.take_on(session, future, run_id)
    held = len(future) - len(taken)
    if held:
        log.info("%s future delivery(ies) are already taken on by another publishing run", held)
    return [d for d in rows if d.id in taken or not (d.status == "planned" and d.due_at > now - RESERVATION_GRACE)]


def report_slots(outcomes: list | None) -> dict:
    """``calendar_publish``'s end: the slots' outcomes, flattened, reported to the PR section."""
    from koho.config import load_config
    from koho.notify import city_name, pr_section

    config = load_config()
    flat = [o for slot in outcomes or [] if slot for o in slot]
    return report_outcomes(Ledger.from_airflow(), flat, to=pr_section(config), city_name=city_name(config))


def report_outcomes(ledger: Ledger, outcomes: list[dict[str, Any]], *, to: list[str], city_name: str) -> dict:
    """Alert and mail the PR section about failed deliveries (once per delivery)."""
    from koho.notify import AlertSpec, notify_pending, record_alerts

    failed = [o for o in outcomes if o and o.get("status") in ("failed", "sending")]
    specs = [
        AlertSpec(
            kind="delivery_failed",
            dedup_key=f"delivery_failed:{o['delivery_id']}:{o['status']}",
            subject=f"{o['account_id']}: '{o['entry_id']}' "
            + ("was not published" if o["status"] == "failed" else "may not have been published"),
            severity="critical" if o["status"] == "failed" else "warning",
            account_id=o["account_id"] if _in_registry(o["platform"]) else None,
            detail={
                "entry": o["entry_id"],
                "platform": o["platform"],
                "reason": o.get("error") or "",
                "due": o.get("due_at") or "",
            },
        )
        for o in failed
    ]
    with ledger.session() as session:
        new = record_alerts(session, specs)
    mailed = notify_pending(ledger, to=to, city_name=city_name, kinds=["delivery_failed"]) if new and to else 0
    published = [o for o in outcomes if o and o.get("status") == "published"]
    late = sorted(o["late_seconds"] for o in published if o.get("late_seconds") is not None)
    summary = {
        "published": len(published),
        "failed": len(failed),
        "mailed": mailed,
        "late_p50": late[len(late) // 2] if late else None,
    }
    log.info("publishing summary: %s", summary)
    return summary


def _in_registry(platform: str) -> bool:
    """Alerts name an account of accounts.yaml; a channel's pseudo-account is not one."""
    from koho.delivery.publishers import capabilities_of

    capabilities = capabilities_of(platform)
    return capabilities is None or capabilities.registry_account
