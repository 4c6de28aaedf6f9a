"""Calendar entries: what the calendar, an ad-hoc form or an emergency asked to publish, and
the entry's status derived from its deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from koho.ledger._base import as_dict, as_json, aware_now, check_value, insert_ignore, reload
from koho.ledger.errors import LedgerError, UnknownRecord
from koho.ledger.models import CalendarEntry, Delivery, DeliveryStatus, EntryOrigin, EntryStatus

_ENTRY_REQUIRED = ("id", "origin", "source", "title", "publish_at", "content_hash")
_ENTRY_FIELDS = ("origin", "source", "source_line", "title", "publish_at", "payload", "approval_required", "created_by")
_PUBLISHED_ENTRY = {
    EntryStatus.PUBLISHED.value,
    EntryStatus.PARTIALLY_PUBLISHED.value,
    EntryStatus.CHANGED_AFTER_PUBLISH.value,
}


@dataclass(frozen=True)
class EntrySummary:
    """What a sync needs to know of an entry the ledger holds, without loading its payload."""

    id: str
    status: str
    revision: int
    content_hash: str
    publish_at: datetime
    source: str
    origin: str


@dataclass(frozen=True)
class EntryResult:
    entry: CalendarEntry
    created: bool
    revised: bool  # the content changed: revision went up and new deliveries are needed
    changed: bool  # anything at all changed


def upsert_entry(session: Session, entry: Any, *, now: datetime | None = None) -> EntryResult:
    """Insert or update one calendar entry; a new ``content_hash`` bumps ``revision``.

    On a revision the status starts over (``awaiting_approval`` or ``planned``), except for an
    entry that was already published: it becomes ``changed_after_publish`` for a person to
    decide (correct, delete or leave). The bump is a conditional UPDATE, so two syncs racing
    on the same change bump it once. An optional ``status`` in ``entry`` overrides the starting
    status of a new or revised entry (an emergency may start ``approved``); otherwise status is
    left to the workflow (:func:`set_entry_status`, :func:`refresh_entry_status`).
    """
    now = aware_now(now)
    values = as_dict(entry)
    missing = [key for key in _ENTRY_REQUIRED if values.get(key) in (None, "")]
    if missing:
        raise LedgerError(f"calendar entry {values.get('id')!r} lacks {missing}")
    entry_id = str(values["id"])
    content_hash = str(values["content_hash"])
    fields = {f: values[f] for f in _ENTRY_FIELDS if f in values}
    fields["payload"] = as_json(dict(fields.get("payload") or {}), f"payload of entry {entry_id!r}")
    check_value(str(fields["origin"]), EntryOrigin, "entry origin")
    initial = values.get("status") or (
        EntryStatus.AWAITING_APPROVAL.value if fields.get("approval_required") else EntryStatus.PLANNED.value
    )
    check_value(initial, EntryStatus, "entry status")
    row = {**fields, "id": entry_id, "content_hash": content_hash, "status": initial, "revision": 1}
    if insert_ignore(session, CalendarEntry.__table__, {**row, "created_at": now, "updated_at": now}):
        return EntryResult(reload(session, CalendarEntry, entry_id), True, False, True)

    current = reload(session, CalendarEntry, entry_id)
    revised = False
    if current.content_hash != content_hash:
        revised = _revise_entry(session, current, content_hash, initial, now)
        current = reload(session, CalendarEntry, entry_id)
    changes = {f: v for f, v in fields.items() if getattr(current, f) != v}
    for name, value in changes.items():
        setattr(current, name, value)
    if changes:
        current.updated_at = now
    session.flush()
    return EntryResult(current, False, revised, revised or bool(changes))


def _revise_entry(session: Session, current: CalendarEntry, content_hash: str, initial: str, now: datetime) -> bool:
    table = CalendarEntry.__table__
    status = EntryStatus.CHANGED_AFTER_PUBLISH.value if current.status in _PUBLISHED_ENTRY else initial
    result = session.execute(
        update(table)
        .where(table.c.id == current.id, table.c.content_hash != content_hash)
        .values(revision=table.c.revision + 1, content_hash=content_hash, status=status, updated_at=now)
    )
    return result.rowcount == 1


def set_entry_status(session: Session, entry_id: str, status: str, *, now: datetime | None = None) -> CalendarEntry:
    """Set an entry's status (approval decided, rejected, cancelled by a person...)."""
    check_value(status, EntryStatus, "entry status")
    entry = session.get(CalendarEntry, entry_id)
    if entry is None:
        raise UnknownRecord(f"calendar entry {entry_id!r} does not exist")
    if entry.status != status:
        entry.status = status
        entry.updated_at = aware_now(now)
    session.flush()
    return entry


def refresh_entry_status(session: Session, entry_id: str, *, now: datetime | None = None) -> str:
    """Derive the entry's status from its current revision's deliveries, once all are settled.

    All published -> ``published``; some published, the rest failed or cancelled ->
    ``partially_published``; none published and some failed -> ``failed``; all cancelled ->
    ``cancelled``. While any delivery is still pending nothing changes, and statuses a person
    set (rejected, cancelled, changed_after_publish) are left alone.
    """
    entry = reload(session, CalendarEntry, entry_id)
    if entry.status in (EntryStatus.REJECTED, EntryStatus.CANCELLED, EntryStatus.CHANGED_AFTER_PUBLISH):
        return entry.status
    statuses = set(
        session.scalars(
            select(Delivery.status).where(Delivery.entry_id == entry_id, Delivery.revision == entry.revision)
        )
    )
    settled = {DeliveryStatus.PUBLISHED, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED}
    if not statuses or not statuses <= settled:
        return entry.status
    if statuses == {DeliveryStatus.PUBLISHED}:
        new = EntryStatus.PUBLISHED
    elif DeliveryStatus.PUBLISHED in statuses:
        new = EntryStatus.PARTIALLY_PUBLISHED
    elif DeliveryStatus.FAILED in statuses:
        new = EntryStatus.FAILED
    else:
        new = EntryStatus.CANCELLED
    return set_entry_status(session, entry_id, new.value, now=now).status


def forget_content(session: Session, entry_id: str, prefix: str) -> None:
    """Prefix the entry's content hash so that no file can match it: should the entry come back
    (a file moved in two steps, restored from a backup), it is a new revision and planned again."""
    table = CalendarEntry.__table__
    session.execute(
        update(table)
        .where(table.c.id == entry_id, table.c.content_hash.not_like(f"{prefix}%"))
        .values(content_hash=func.substr(prefix + table.c.content_hash, 1, 128))
    )
    reload(session, CalendarEntry, entry_id)


# ---------------------------------------------------------------------------------------------
# reads


def get_entry(session: Session, entry_id: str) -> CalendarEntry | None:
    """The entry, or None when the ledger has none with this id."""
    return session.get(CalendarEntry, entry_id)


def entry_summaries(session: Session) -> dict[str, EntrySummary]:
    """Every entry's identity, status and content hash, by id."""
    rows = session.execute(
        select(
            CalendarEntry.id,
            CalendarEntry.status,
            CalendarEntry.revision,
            CalendarEntry.content_hash,
            CalendarEntry.publish_at,
            CalendarEntry.source,
            CalendarEntry.origin,
        )
    ).all()
    return {r.id: EntrySummary(*r) for r in rows}


def awaiting_approval(session: Session, *, after: datetime) -> list[CalendarEntry]:
    """Entries due after ``after`` whose current revision has deliveries waiting for approval,
    soonest first."""
    waiting = (
        select(Delivery.id)
        .where(
            Delivery.entry_id == CalendarEntry.id,
            Delivery.revision == CalendarEntry.revision,
            Delivery.status == DeliveryStatus.AWAITING_APPROVAL.value,
        )
        .exists()
    )
    query = select(CalendarEntry).where(
        CalendarEntry.status == EntryStatus.AWAITING_APPROVAL.value, CalendarEntry.publish_at > after, waiting
    )
    return list(session.scalars(query.order_by(CalendarEntry.publish_at, CalendarEntry.id)))


def due_between(session: Session, start: datetime, end: datetime, *, unplanned: bool = False) -> list[CalendarEntry]:
    """Entries whose ``publish_at`` is in [start, end), earliest first; with ``unplanned`` only
    those without any delivery (newsletter-only entries, or not planned yet)."""
    query = select(CalendarEntry).where(CalendarEntry.publish_at >= start, CalendarEntry.publish_at < end)
    if unplanned:
        query = query.where(~exists().where(Delivery.entry_id == CalendarEntry.id))
    return list(session.scalars(query.order_by(CalendarEntry.publish_at, CalendarEntry.id)))


def created_since(session: Session, *, source: str, since: datetime) -> list[CalendarEntry]:
    """Entries from ``source`` (e.g. the disaster feed's drafts) created at or after ``since``."""
    query = select(CalendarEntry).where(CalendarEntry.source == source, CalendarEntry.created_at >= since)
    return list(session.scalars(query.order_by(CalendarEntry.created_at, CalendarEntry.id)))
