"""Approval of calendar entries marked ``approval: true`` by a PR approver, before they go out.

``calendar_sync`` starts one ``calendar_approval`` run per entry revision. Its task shows the
approver each account's text exactly as it will be posted (fitted, threads split into parts)
through Airflow's human-in-the-loop approval (Required Actions in the UI, or the REST API), and:

* **Approve** releases the revision's deliveries (``awaiting_approval`` -> ``planned``);
  ``calendar_publish`` then sends them at their time;
* **Reject** marks the entry ``rejected`` and cancels its deliveries;
* **no answer by the deadline** (by default 10 minutes before the publish time,
  ``$KOHO_APPROVAL_DEADLINE_MINUTES``) leaves the post unpublished: its deliveries are parked as
  ``needs_attention`` and an ``approval_timeout`` alert is mailed to the PR section.

A revision that was superseded meanwhile (the entry changed again) is never released: the new
revision has its own approval run.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from koho.ledger import alerts, deliveries, entries
from koho.ledger.db import Ledger
from koho.ledger.models import DeliveryStatus, EntryStatus
from koho.timeutil import to_local, utcnow

log = logging.getLogger(__name__)

DEADLINE_ENV = "KOHO_APPROVAL_DEADLINE_MINUTES"
DEFAULT_DEADLINE_LEAD = timedelta(minutes=10)
#: Airflow Variable holding the approvers (user ids, or {"id", "name"} objects) as a JSON list.
#: Unset: anyone allowed to act on this DAG's required actions may answer (the PR section's role).
APPROVERS_VARIABLE = "koho_approvers"


def deadline_lead() -> timedelta:
    """How long before the publish time the approval must have come (``$KOHO_APPROVAL_DEADLINE_MINUTES``)."""
    raw = os.environ.get(DEADLINE_ENV)
    if not raw:
        return DEFAULT_DEADLINE_LEAD
    try:
        minutes = float(raw)
    except ValueError:
        raise ValueError(f"{DEADLINE_ENV} must be a number of minutes, got {raw!r}") from None
    if minutes < 0:
        raise ValueError(f"{DEADLINE_ENV} must not be negative, got {raw!r}")
    return timedelta(minutes=minutes)


def approval_deadline(publish_at: datetime, lead: timedelta | None = None) -> datetime:
    return publish_at - (deadline_lead() if lead is None else lead)


@dataclass
class Part:
    account_id: str
    account_name: str
    platform: str
    part_index: int
    text: str


@dataclass
class ApprovalRequest:
    """What the approver is asked about: one entry revision and its fitted texts."""

    entry_id: str
    revision: int
    title: str
    publish_at: datetime
    source: str
    link: str | None
    images: list[str]
    parts: list[Part] = field(default_factory=list)
    current: bool = True  # False: the entry changed (or was decided) since the request was made
    reason: str = ""

    @property
    def subject(self) -> str:
        return f"承認依頼 / Approve post: {self.title} ({to_local(self.publish_at):%m/%d %H:%M} JST)"

    @property
    def body(self) -> str:
        """Markdown: the entry, then each account's text as it will be posted."""
        lines = [
            f"**{self.title}** — publish at **{to_local(self.publish_at):%Y-%m-%d %H:%M} JST**",
            "",
            f"Entry `{self.entry_id}` revision {self.revision}, from `{self.source}`.",
        ]
        if self.link:
            lines.append(f"Link: {self.link}")
        if self.images:
            lines.append("Images: " + ", ".join(self.images))
        lines += ["", "Approve to publish on every account below at that time; Reject to cancel it.", ""]
        by_account: dict[str, list[Part]] = {}
        for part in self.parts:
            by_account.setdefault(part.account_id, []).append(part)
        for account_id, parts in by_account.items():
            first = parts[0]
            thread = f" — thread of {len(parts)} posts" if len(parts) > 1 else ""
            lines.append(f"#### {first.account_name} (`{account_id}`, {first.platform}){thread}")
            for part in parts:
                if len(parts) > 1:
                    lines.append(f"*{part.part_index + 1}/{len(parts)}*")
                lines += [f"> {line}" if line else ">" for line in part.text.splitlines()]
                lines.append("")
        return "\n".join(lines)


def approval_request(ledger: Ledger, entry_id: str, revision: int) -> ApprovalRequest | None:
    """The request for one entry revision, or None when the entry does not exist."""
    with ledger.session(readonly=True) as session:
        entry = entries.get_entry(session, entry_id)
        if entry is None:
            return None
        rows = deliveries.with_accounts(
            session, entry_id, revision=revision, status=DeliveryStatus.AWAITING_APPROVAL.value
        )
        payload = entry.payload or {}
        request = ApprovalRequest(
            entry_id=entry.id,
            revision=revision,
            title=entry.title,
            publish_at=entry.publish_at,
            source=f"{entry.source}:{entry.source_line}" if entry.source_line else entry.source,
            link=payload.get("link"),
            images=list(payload.get("images") or []),
            parts=[Part(a.id, a.display_name, a.platform, d.part_index, d.text) for d, a in rows],
        )
        if entry.revision != revision:
            request.current, request.reason = False, f"the entry is at revision {entry.revision} now"
        elif entry.status != EntryStatus.AWAITING_APPROVAL.value:
            request.current, request.reason = False, f"the entry is {entry.status}"
        elif not rows:
            request.current, request.reason = False, "no delivery awaits approval"
    return request


def apply_decision(
    ledger: Ledger, entry_id: str, revision: int, *, approved: bool, by: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Release (approve) or cancel (reject) one entry revision; a superseded revision is left alone."""
    now = now or utcnow()
    who = by or "an approver"
    with ledger.session() as session:
        entry = entries.get_entry(session, entry_id)
        if entry is None or entry.revision != revision:
            current = entry.revision if entry else None
            log.warning("approval of %s r%s ignored: the entry is at revision %s now", entry_id, revision, current)
            return {"entry_id": entry_id, "revision": revision, "decision": "superseded", "deliveries": []}
        if approved:
            ids = deliveries.approve_deliveries(session, entry_id, revision=revision, now=now)
            entries.set_entry_status(session, entry_id, EntryStatus.APPROVED.value, now=now)
            log.info("%s r%s approved by %s: %d delivery(ies) released", entry_id, revision, who, len(ids))
            return {
                "entry_id": entry_id,
                "revision": revision,
                "decision": "approved",
                "by": by,
                "deliveries": list(ids),
            }
        entries.set_entry_status(session, entry_id, EntryStatus.REJECTED.value, now=now)
        gone = deliveries.cancel_deliveries(session, entry_id, reason=f"rejected by {who}", now=now)
        log.info("%s r%s rejected by %s: %d delivery(ies) cancelled", entry_id, revision, who, len(gone.cancelled))
        return {
            "entry_id": entry_id,
            "revision": revision,
            "decision": "rejected",
            "by": by,
            "deliveries": list(gone.cancelled),
        }


def handle_timeout(
    ledger: Ledger,
    entry_id: str,
    revision: int,
    *,
    deadline: datetime,
    to: Sequence[str],
    city_name: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """No decision came in time: keep the post unpublished, alert and mail the PR section."""
    from koho.notify import notify_pending

    now = now or utcnow()
    with ledger.session() as session:
        entry = entries.get_entry(session, entry_id)
        if entry is None or entry.revision != revision or entry.status != EntryStatus.AWAITING_APPROVAL.value:
            return {"entry_id": entry_id, "revision": revision, "decision": "superseded", "deliveries": []}
        waiting = deliveries.for_entry(
            session, entry_id, revision=revision, status=DeliveryStatus.AWAITING_APPROVAL.value
        )
        reason = (
            f"approval did not come by {to_local(deadline):%Y-%m-%d %H:%M} JST; not published. "
            "Set a new publish_at in the calendar to ask again"
        )
        for delivery in waiting:
            deliveries.mark_needs_attention(session, delivery.id, reason, now=now)
        accounts = sorted({d.account_id for d in waiting})
        alerts.raise_alert(
            session,
            "approval_timeout",
            f"approval_timeout:{entry_id}:r{revision}",
            f"'{entry.title}' ({entry_id}) was not approved in time and was not published",
            {
                "entry": entry_id,
                "revision": revision,
                "publish_at": f"{to_local(entry.publish_at):%Y-%m-%d %H:%M} JST",
                "deadline": f"{to_local(deadline):%Y-%m-%d %H:%M} JST",
                "accounts": ", ".join(accounts),
                "what to do": "set a new publish_at in the calendar to ask for approval again",
            },
            severity="critical",
            now=now,
        )
    mailed = notify_pending(ledger, to=to, city_name=city_name, kinds=["approval_timeout"]) if to else 0
    log.warning(
        "%s r%s: no approval by %s; %d delivery(ies) parked, %d alert(s) mailed",
        entry_id,
        revision,
        deadline.isoformat(),
        len(waiting),
        mailed,
    )
    return {
        "entry_id": entry_id,
        "revision": revision,
        "decision": "timeout",
        "deliveries": sorted(d.id for d in waiting),
        "mailed": mailed,
    }


def approvers(raw: str | None) -> list[dict[str, str]] | None:
    """The assigned users for the approval task, from the ``koho_approvers`` Variable's JSON."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = [v.strip() for v in raw.split(",") if v.strip()]
    users = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) and item.get("id"):
            users.append({"id": str(item["id"]), "name": str(item.get("name") or item["id"])})
        elif isinstance(item, str | int) and str(item).strip():
            users.append({"id": str(item).strip(), "name": str(item).strip()})
    return users or None


def request_dict(request: ApprovalRequest) -> dict[str, Any]:
    data = asdict(request)
    data["publish_at"] = request.publish_at.isoformat()
    return data
