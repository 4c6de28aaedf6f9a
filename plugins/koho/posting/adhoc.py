"""The ad-hoc post in the ledger: record and plan it in one transaction, release it after
approval, and settle the run (published, rejected, or timed out and alerted).

The entry goes into the same ledger as the calendar's (origin ``adhoc``) and its deliveries
through the same exactly-once machinery, so the calendar view shows it and **calendar_publish**
would send it too if this run could not: whichever claims a delivery first sends it, once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from koho.calendar.rules import PlannedSlot, volume_problems
from koho.calendar.rules import existing_slots as counted_slots
from koho.calendar.timeparse import parse_publish_at
from koho.config.loader import KohoConfig
from koho.config.posting import PostingSettings
from koho.delivery.slots import Slot, group_into_slots
from koho.errors import InputError, Problem, Where
from koho.ledger import accounts as ledger_accounts
from koho.ledger import deliveries, entries
from koho.ledger.db import Ledger
from koho.ledger.models import Delivery
from koho.posting.form import AdhocCheck, validate_adhoc
from koho.timeutil import utcnow

log = logging.getLogger(__name__)


def existing_slots(session, *, around: datetime, exclude_entry: str | None = None) -> list[PlannedSlot]:
    """The ledger's posts around ``around`` (one per thread), for the volume rules."""
    from koho.channels.registry import exempt_from_caps

    posts = deliveries.planned_slots(
        session, since=around, until=around, exempt_accounts=exempt_from_caps(), exclude_entry=exclude_entry
    )
    return counted_slots(posts)


def sync_accounts(session, config: KohoConfig, account_ids: list[str]) -> None:
    """Mirror the registry rows of ``account_ids`` into the ledger (what accounts_sync does daily),
    so that posting never depends on that sync having run first."""
    from koho.accounts.sync import registry_rows

    rows = [row for row in registry_rows(config) if row["id"] in set(account_ids)]
    if rows:
        ledger_accounts.upsert_accounts(session, rows)


def submit(
    ledger: Ledger,
    form: Mapping[str, Any],
    config: KohoConfig,
    settings: PostingSettings,
    *,
    now: datetime,
    entry_id: str,
    triggered_by: str | None,
    media_dir: Path | None = None,
) -> tuple[AdhocCheck, dict[str, Any] | None]:
    """Check the form against what the ledger holds and, for a valid real run, record and plan it.

    Returns the check and what :func:`record` wrote; nothing is written for a dry run or a form
    with errors (the caller reports those). The volume rules are judged around the requested
    time, not now, so a post for next week is checked against next week's posts.
    """
    around = now
    if form.get("when") == "at" and isinstance(form.get("publish_at"), str):
        try:
            around = parse_publish_at(form["publish_at"])
        except ValueError:
            pass  # reported by the validation
    with ledger.session(readonly=True) as session:
        existing = existing_slots(session, around=around, exclude_entry=entry_id)
    check = validate_adhoc(
        dict(form),
        config,
        settings,
        now=now,
        entry_id=entry_id,
        triggered_by=triggered_by,
        existing=existing,
        media_dir=media_dir,
    )
    if check.dry_run or not check.ok:
        return check, None
    return check, record(ledger, check, config)


def record(ledger: Ledger, check: AdhocCheck, config: KohoConfig) -> dict[str, Any]:
    """Write the entry and plan its deliveries, all or nothing; returns what later tasks need.

    The volume rules are judged again inside the transaction against what the ledger holds now:
    another ad-hoc post may have taken the slot since the form was checked.
    """
    from koho.delivery.planner import plan_entry

    if not check.ok or check.entry is None:
        raise InputError(check.errors or [Problem(Where(field="form"), "the form was not valid")])
    entry = check.entry
    limits = dict(config.policy.platform_limits) if config.policy else {}
    with ledger.session() as session:
        sync_accounts(session, config, entry.accounts)
        slots = existing_slots(session, around=entry.publish_at, exclude_entry=entry.id)
        slots += [PlannedSlot(a, entry.publish_at, entry.id, where=Where(field="publish_at")) for a in entry.accounts]
        caps = {a.id: config.caps_for(a) for a in config.accounts}
        allowed_quiet = any("allowed: allow_quiet_hours" in p.message for p in check.warnings)
        late = [v for v in volume_problems(slots, caps) if not (v.rule == "quiet_hours" and allowed_quiet)]
        if late:
            raise InputError([v.to_problem() for v in late])
        result = entries.upsert_entry(
            session,
            {
                "id": entry.id,
                "origin": "adhoc",
                "source": "adhoc_post form",
                "title": entry.title,
                "publish_at": entry.publish_at,
                "payload": check.payload(),
                "approval_required": check.needs_approval,
                "content_hash": check.content_hash(),
                "created_by": _created_by(check),
            },
        )
        row = result.entry
        if result.revised:  # a retried task checked the form again at a later "now": one post, not two
            deliveries.cancel_deliveries(session, row.id, below_revision=row.revision, reason="superseded by a retry")
        accounts = ledger_accounts.accounts_by_id(session, entry.accounts)
        outcome = plan_entry(
            session, row, accounts, mode="adapt", limits=limits, awaiting_approval=check.needs_approval
        )
        if outcome.problems:  # cannot happen after validation; if it does, nothing is kept
            raise InputError([Problem(Where(field="text", account=a), r) for a, r in outcome.problems.items()])
        recorded = {
            "entry_id": row.id,
            "revision": row.revision,
            "deliveries": outcome.deliveries,
            "needs_approval": check.needs_approval,
            "publish_now": check.publish_now,
            "publish_at": entry.publish_at.isoformat(),
            "accounts": list(entry.accounts),
            "requested_by": check.requested_by,
            "triggered_by": check.triggered_by,
        }
    log.info(
        "entry %s recorded (revision %s), %s deliveries %s",
        recorded["entry_id"],
        recorded["revision"],
        len(recorded["deliveries"]),
        "awaiting approval" if check.needs_approval else "planned",
    )
    return recorded


def _created_by(check: AdhocCheck) -> str:
    who = check.triggered_by or "unknown user"
    return f"{who} (for {check.requested_by})"[:255] if check.requested_by else who


def release(
    ledger: Ledger, recorded: Mapping[str, Any], *, approved_by: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Approved (or needing no approval): the deliveries become ``planned``; a "now" post is due now.

    Returns the time slot for the sending task (``Slot.as_dict()``).
    """
    now = now or utcnow()
    entry_id = recorded["entry_id"]
    with ledger.session() as session:
        if recorded.get("needs_approval"):
            released = deliveries.approve_deliveries(session, entry_id, revision=recorded["revision"])
            entries.set_entry_status(session, entry_id, "approved")
            log.info("entry %s approved by %s: %s deliveries released", entry_id, approved_by or "?", len(released))
        rows = deliveries.for_entry(session, entry_id, revision=recorded["revision"])
        if recorded.get("publish_now"):
            for delivery in rows:
                if delivery.due_at < now:
                    deliveries.reschedule_delivery(session, delivery.id, now)
            rows = deliveries.for_entry(session, entry_id, revision=recorded["revision"])
        slots = group_into_slots(rows)
    if not slots:
        raise InputError([Problem(Where(field="accounts"), f"entry {entry_id} has no deliveries to send")])
    at = max(s.at for s in slots)
    return Slot(at, tuple(chain for s in slots for chain in s.chains)).as_dict()


def deliveries_table(ledger: Ledger, entry_id: str) -> list[dict[str, Any]]:
    """One row per account of the entry's current revision: status, link or reason."""
    with ledger.session(readonly=True) as session:
        entry = entries.get_entry(session, entry_id)
        if entry is None:
            return []
        rows = deliveries.with_accounts(session, entry_id, revision=entry.revision)
    by_account: dict[str, list[tuple[Delivery, str]]] = {}
    for delivery, account in rows:
        by_account.setdefault(delivery.account_id, []).append((delivery, account.platform))
    out = []
    for account_id, parts in by_account.items():
        statuses = [d.status for d, _ in parts]
        if all(s == "published" for s in statuses):
            status = "published"
        elif any(s == "failed" for s in statuses):
            status = "failed"
        elif all(s == "cancelled" for s in statuses):
            status = "cancelled"
        elif any(s == "needs_attention" for s in statuses):
            status = "needs_attention"
        else:
            status = statuses[0] if len(set(statuses)) == 1 else "pending"
        first = parts[0][0]
        error = next((d.last_error for d, _ in parts if d.last_error and d.status != "published"), None)
        out.append(
            {
                "account_id": account_id,
                "platform": parts[0][1],
                "status": status,
                "parts": len(parts),
                "url": first.remote_url if status == "published" else None,
                "remote_id": first.remote_id,
                "error": error,
            }
        )
    return out


def drop(ledger: Ledger, recorded: Mapping[str, Any], *, status: str, reason: str) -> list[int]:
    """Not approved: cancel every delivery (nothing goes out) and mark the entry."""
    with ledger.session() as session:
        cancelled = deliveries.cancel_deliveries(session, recorded["entry_id"], reason=reason)
        entries.set_entry_status(session, recorded["entry_id"], status)
    log.warning(
        "entry %s %s: %s; %s deliveries cancelled", recorded["entry_id"], status, reason, len(cancelled.cancelled)
    )
    return list(cancelled.cancelled)


def alert_timeout(
    ledger: Ledger, recorded: Mapping[str, Any], *, to: list[str], city_name: str, waited: timedelta
) -> int:
    """Raise (once) and mail the approval-timeout alert; returns how many alerts were mailed."""
    from koho.notify import AlertSpec, notify_pending, record_alerts

    spec = AlertSpec(
        kind="approval_timeout",
        dedup_key=f"approval_timeout:{recorded['entry_id']}",
        subject=f"ad-hoc post {recorded['entry_id']} was not approved within {waited} and was not posted",
        severity="warning",
        detail={
            "entry": recorded["entry_id"],
            "requested_by": recorded.get("requested_by") or "",
            "triggered_by": recorded.get("triggered_by") or "",
            "accounts": ", ".join(recorded["accounts"]),
            "what to do": "trigger adhoc_post again if it is still wanted",
        },
    )
    with ledger.session() as session:
        new = record_alerts(session, [spec])
    if new and to:
        return notify_pending(ledger, to=to, city_name=city_name, kinds=["approval_timeout"])
    return 0
