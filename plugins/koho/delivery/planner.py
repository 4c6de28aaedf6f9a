"""Turn a stored entry into deliveries: one per target account and thread part, text already fitted.

Planning writes the rows *before* anything is sent, each with its stable idempotency key; that
is what lets the sender publish exactly once whatever fails later. Re-planning the same entry
revision is a no-op (the ledger refuses duplicates), so overlapping runs are harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from koho.channels.registry import channels_in
from koho.delivery.publishers import capabilities_of
from koho.errors import KohoError
from koho.ledger import deliveries as ledger_deliveries
from koho.ledger.models import Account, CalendarEntry, Delivery
from koho.text.fitting import fit
from koho.text.rules import rules_for

log = logging.getLogger(__name__)


@dataclass
class PlanOutcome:
    entry_id: str
    revision: int
    deliveries: list[int] = field(default_factory=list)  # ids of every delivery of this revision
    created: int = 0
    problems: dict[str, str] = field(default_factory=dict)  # account id -> why nothing was planned


def supports_replies(platform: str) -> bool:
    capabilities = capabilities_of(platform)
    return bool(capabilities and capabilities.replies)


def fitted_parts(
    platform: str,
    text: str,
    *,
    link: str | None,
    hashtags: Iterable[str],
    mode: str,
    more_url: str | None,
    limits: Mapping[str, int] | None,
) -> list[str]:
    """The text as it will be posted on ``platform``: one part, or a thread's parts."""
    capabilities = capabilities_of(platform)
    if capabilities is not None and not capabilities.needs_fitting:
        return [text]
    rule = rules_for(platform, limits)
    return fit(
        platform,
        text,
        link=link,
        hashtags=() if mode == "emergency" else hashtags,
        more_url=more_url,
        mode=mode,
        allow_thread=supports_replies(platform),
        rule=rule,
    ).parts


def plan_entry(
    session: Session,
    entry: CalendarEntry,
    accounts: Mapping[str, Account],
    *,
    mode: str = "adapt",
    more_url: str | None = None,
    limits: Mapping[str, int] | None = None,
    awaiting_approval: bool | None = None,
) -> PlanOutcome:
    """Plan the entry's current revision for every account in its payload.

    ``payload`` is the validated entry (``koho.calendar.schema.CalendarEntry`` as JSON): its
    ``accounts`` are the targets that passed validation; ``channels`` may add channels Koho writes
    itself (the website), each planned for its pseudo-account.
    An account whose text cannot be fitted gets no delivery and a problem saying why (the
    others are planned). ``mode="emergency"`` never rewords: the same text everywhere, split
    only where a limit forces it.
    """
    payload: dict[str, Any] = entry.payload or {}
    outcome = PlanOutcome(entry.id, entry.revision)
    waiting = entry.approval_required if awaiting_approval is None else awaiting_approval
    targets = list(payload.get("accounts") or [])
    targets += [c for c in channels_in(payload.get("channels") or ()) if c not in targets]
    overrides: dict[str, str] = payload.get("overrides") or {}
    for account_id in targets:
        account = accounts.get(account_id)
        if account is None:
            outcome.problems[account_id] = "not in the ledger's account registry (run accounts_sync)"
            continue
        text = overrides.get(account_id) or overrides.get(account.platform) or payload.get("text") or ""
        if mode == "emergency":
            text = payload.get("text") or ""  # accuracy first: no per-medium rewording
        try:
            parts = fitted_parts(
                account.platform,
                text,
                link=payload.get("link"),
                hashtags=payload.get("hashtags") or (),
                mode=mode,
                more_url=more_url,
                limits=limits,
            )
        except KohoError as exc:
            outcome.problems[account_id] = str(exc)
            continue
        parent: Delivery | None = None
        for index, part in enumerate(parts):
            result = ledger_deliveries.plan_delivery(
                session,
                entry_id=entry.id,
                account_id=account_id,
                revision=entry.revision,
                due_at=entry.publish_at,
                text=part,
                part_index=index,
                parent_delivery_id=parent.id if parent else None,
                awaiting_approval=waiting,
            )
            parent = result.delivery
            outcome.deliveries.append(result.delivery.id)
            outcome.created += result.created
    for account_id, reason in outcome.problems.items():
        log.warning("entry %s: nothing planned for %s: %s", entry.id, account_id, reason)
    return outcome
