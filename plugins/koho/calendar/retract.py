"""Retracting a published calendar post: an explicit, confirmed action (the ``calendar_retract`` DAG).

Koho never deletes a post because a calendar file changed: a person decides. This module finds the
published deliveries of an entry (all revisions, optionally some accounts only), deletes each on
its platform where the API allows it (the same semantics as ``DeletePostOperator``), and says
exactly what to delete by hand where it does not (Instagram, LINE broadcasts, the website page).
Replies of a thread are deleted before the post they answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from koho.config import KohoConfig
from koho.ledger import deliveries, entries
from koho.ledger.db import Ledger
from koho.ledger.models import DeliveryStatus, EntryStatus
from koho.platforms.errors import NotSupported, PlatformError
from koho.timeutil import utcnow

log = logging.getLogger(__name__)

HookFactory = Callable[[str, str], Any]


class RetractError(ValueError):
    """The retraction request cannot be carried out as given (says why)."""


def retract_targets(ledger: Ledger, entry_id: str, accounts: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The published posts of ``entry_id`` to delete (replies first); raises when there is none."""
    wanted = {a.strip() for a in accounts if a and a.strip()}
    with ledger.session(readonly=True) as session:
        entry = entries.get_entry(session, entry_id)
        if entry is None:
            raise RetractError(f"no calendar entry '{entry_id}' in the ledger (check the id in the calendar view)")
        rows = deliveries.with_accounts(session, entry_id, status=DeliveryStatus.PUBLISHED.value, last_part_first=True)
    found = {a.id for _, a in rows}
    unknown = sorted(wanted - found)
    if unknown:
        raise RetractError(
            f"entry '{entry_id}' has no published post on {', '.join(unknown)} "
            f"(published on: {', '.join(sorted(found)) or 'none'})"
        )
    targets = [
        {
            "delivery_id": d.id,
            "entry_id": entry_id,
            "account_id": a.id,
            "platform": a.platform,
            "conn_id": a.connection_id or "",
            "remote_id": d.remote_id,
            "url": d.remote_url,
            "part_index": d.part_index,
            "revision": d.revision,
        }
        for d, a in rows
        if not wanted or a.id in wanted
    ]
    if not targets:
        raise RetractError(f"entry '{entry_id}' has no published post to delete")
    return targets


def delete_one(
    target: dict[str, Any], hook_factory: HookFactory | None = None, *, config: KohoConfig | None = None
) -> dict[str, Any]:
    """Delete one post (or a channel's publication); never raises for the platform's answer, it
    reports it. ``config``: what a channel adapter publishes with (default: include/config)."""
    from koho.delivery.publishers import Publisher, publisher_for

    out = {**target, "status": "failed", "instruction": ""}
    where = target.get("url") or target.get("remote_id")
    if hook_factory is None:
        from koho.platforms.registry import hook_for as hook_factory
    publisher: Publisher | None = None
    try:
        publisher = publisher_for(target["platform"], target["conn_id"], config=config, hook_factory=hook_factory)
        if not publisher.capabilities.delete:
            raise NotSupported(f"{target['platform']} cannot delete posts through its API", platform=target["platform"])
        publisher.delete(target["remote_id"])
    except NotSupported as exc:
        by_hand = (
            publisher.removal_by_hand(where, target["account_id"]) if publisher else f"delete {where} by hand: {exc}"
        )
        out.update(status="manual", instruction=by_hand)
    except PlatformError as exc:
        out.update(error=str(exc), instruction=f"delete {where} by hand, or run calendar_retract again: {exc}")
    else:
        out.update(status="deleted")
    log.info("%s %s on %s: %s", out["status"], where, target["account_id"], out["instruction"] or "done")
    return out


def finish(ledger: Ledger, entry_id: str, results: list[dict[str, Any]], *, by: str | None = None) -> dict[str, Any]:
    """Record the retraction: the entry is cancelled and nothing more of it is sent."""
    results = [r for r in results if r]
    with ledger.session() as session:
        gone = deliveries.cancel_deliveries(session, entry_id, reason=f"retracted{' by ' + by if by else ''}")
        if any(r["status"] in ("deleted", "manual") for r in results):
            entries.set_entry_status(session, entry_id, EntryStatus.CANCELLED.value)
    summary = {
        "entry_id": entry_id,
        "deleted": [r for r in results if r["status"] == "deleted"],
        "manual": [r for r in results if r["status"] == "manual"],
        "failed": [r for r in results if r["status"] == "failed"],
        "unsent_cancelled": list(gone.cancelled),
        "at": utcnow().isoformat(),
    }
    for item in summary["manual"] + summary["failed"]:
        log.warning("to do by hand: %s", item["instruction"])
    return summary
