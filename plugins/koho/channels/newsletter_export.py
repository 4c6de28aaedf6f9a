"""The monthly newsletter export (``newsletter_export`` DAG): last month's newsletter items, for the editors.

Which entries: calendar entries whose channels include ``newsletter``. An entry that also went
to social media or the website belongs to the month it was first published (what the ledger
says went out, see :func:`koho.channels.newsletter.month_rows`); a newsletter-only entry has no
delivery, so it belongs to the month of its ``publish_at``. Cancelled and rejected entries, and
entries that never went out, are left out.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from koho.channels.newsletter import export_month, month_bounds, month_rows
from koho.config.loader import KohoConfig
from koho.ledger import entries
from koho.ledger.db import Ledger
from koho.ledger.models import EntryStatus
from koho.timeutil import to_local, utcnow

log = logging.getLogger(__name__)

NEWSLETTER = "newsletter"
_NOT_OUT = frozenset({EntryStatus.CANCELLED.value, EntryStatus.REJECTED.value})


def previous_month(moment: datetime) -> tuple[int, int]:
    """The month before ``moment``'s month, in Japan time (a run at 06:00 JST on 1 May -> April)."""
    local = to_local(moment)
    return (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)


def newsletter_rows(session: Any, year: int, month: int) -> list[dict[str, Any]]:
    """Rows for :func:`export_month`: published newsletter entries plus newsletter-only ones."""
    rows = [r for r in month_rows(session, year, month) if _wants_newsletter(session, r["entry_id"])]
    seen = {r["entry_id"] for r in rows}
    start, end = month_bounds(year, month)
    only = entries.due_between(session, start, end)
    for entry in only:
        channels = (entry.payload or {}).get("channels") or []
        if entry.id in seen or channels != [NEWSLETTER] or entry.status in _NOT_OUT:
            continue
        payload = entry.payload or {}
        rows.append(
            {
                "entry_id": entry.id,
                "title": entry.title,
                "text": payload.get("text") or "",
                "category": payload.get("category"),
                "origin": entry.origin,
                "published_at": entry.publish_at,
                "accounts": [],
            }
        )
    return sorted(rows, key=lambda r: (r["published_at"], r["entry_id"]))


def _wants_newsletter(session: Any, entry_id: str) -> bool:
    entry = entries.get_entry(session, entry_id)
    return (
        entry is not None
        and entry.status not in _NOT_OUT
        and NEWSLETTER in ((entry.payload or {}).get("channels") or [])
    )


def export(ledger: Ledger, config: KohoConfig, year: int, month: int) -> dict[str, Any]:
    """Write the month's export; returns where it is and how many items it holds (JSON-safe)."""
    if not config.policy:
        raise ValueError("policy.yaml did not load: the newsletter settings (channels.newsletter) are unknown")
    with ledger.session(readonly=True) as session:
        rows = newsletter_rows(session, year, month)
    path = export_month(rows, year, month, config.policy.channels.newsletter)
    result = {
        "year": year,
        "month": month,
        "items": len(rows),
        "xlsx": str(path),
        "csv": str(path.with_suffix(".csv")),
        "html": str(path.with_suffix(".html")),
        "entries": [r["entry_id"] for r in rows],
    }
    log.info("newsletter %04d-%02d: %d item(s) -> %s", year, month, len(rows), path)
    return result


def mail_editors(result: dict[str, Any], config: KohoConfig, ledger: Ledger) -> bool:
    """Send the editors (the PR section) the export, CSV and Excel attached; False when no address
    is configured. The same export is mailed once, however often the task is retried."""
    from koho.notify import Attachment, Message, city_name, content_id, max_message_bytes, pr_section, send

    to = pr_section(config)
    if not to:
        log.error(
            "no PR section mail address (policy.pr_department in departments.yaml); the export is at %s", result["xlsx"]
        )
        return False
    city = city_name(config)
    files = tuple(Attachment.from_path(result[kind]) for kind in ("xlsx", "csv"))
    message = Message(
        id=content_id(f"newsletter:{result['year']}-{result['month']:02d}", [f.data for f in files]),
        to=tuple(to),
        subject=f"[Koho] {city}: 広報紙用データ {result['year']}年{result['month']}月 ({result['items']} item(s))",
        template="mail/newsletter_export.html.j2",
        context={"result": result, "city_name": city},
        attachments=files,
    )
    send(message, ledger=ledger, max_bytes=max_message_bytes(config))
    return True


def run_export(
    params: dict[str, Any],
    logical_date: datetime | None,
    *,
    ledger: Ledger | None = None,
    config: KohoConfig | None = None,
) -> dict[str, Any]:
    """The newsletter_export task: the month the form names (``year``, ``month``), else the one
    before the run; the export is written and the editors are mailed."""
    from koho.config import load_config

    year, month = params.get("year"), params.get("month")
    if not (year and month):
        year, month = previous_month(logical_date or utcnow())
    config = config or load_config()
    ledger = ledger or Ledger.from_airflow()
    result = export(ledger, config, int(year), int(month))
    result["mailed"] = mail_editors(result, config, ledger)
    return result
