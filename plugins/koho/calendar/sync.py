"""Mirror the posting calendar into the ledger: what ``calendar_sync`` does every five minutes.

One call of :func:`sync_calendar` reads every calendar file, validates it against the account
registry *and* what the ledger already plans (so caps count deliveries planned by earlier runs,
ad-hoc posts and emergencies), then brings the ledger in line with the files:

* a new entry is stored and its deliveries are planned (one per account and thread part, plus
  the website when its channels say so);
* an entry whose content changed gets a new revision: the old revision's unsent deliveries are
  cancelled and the new one is planned (new idempotency keys: a corrected post is a new post);
* an entry changed *after* it was published becomes ``changed_after_publish`` and a person is
  alerted; nothing is re-posted by itself, and deleting a post is an explicit action
  (the ``calendar_retract`` DAG);
* an entry set to ``status: cancelled`` or deleted from the files has its unsent deliveries
  cancelled;
* entries needing approval are listed so that the DAG can ask a PR approver (one
  ``calendar_approval`` run per entry revision).

Invalid entries are reported with file, line (or sheet cell) and field; valid entries beside them
go on. An entry that is present but invalid keeps what the ledger had planned for it (the mail
says so): a typo must not silently cancel a post, and the error names the place to fix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from koho.calendar.rules import PlannedSlot, existing_slots
from koho.calendar.schema import CalendarEntry as FileEntry
from koho.calendar.sources import SourceRead, calendar_files, read_source
from koho.calendar.validate import CalendarLoad, validate_sources
from koho.config.loader import KohoConfig, include_dir
from koho.errors import Problem, Where
from koho.ledger import accounts, deliveries, entries
from koho.ledger.db import Ledger
from koho.ledger.entries import EntrySummary
from koho.ledger.models import CalendarEntry as LedgerEntry
from koho.ledger.models import DeliveryStatus, EntryOrigin, EntryStatus
from koho.timeutil import to_local, utcnow

log = logging.getLogger(__name__)

CALENDAR_DIR_ENV = "KOHO_CALENDAR_DIR"
#: The entry fields whose change makes a new revision (a new post). Status is one of them:
#: cancelling, and un-cancelling, must reach deliveries already planned.
HASHED_FIELDS = (
    "title",
    "publish_at",
    "targets",
    "channels",
    "text",
    "overrides",
    "link",
    "images",
    "hashtags",
    "category",
    "approval",
    "status",
)
#: Ledger statuses meaning "something of this entry is out there".
PUBLISHED_STATUSES = frozenset(
    {EntryStatus.PUBLISHED.value, EntryStatus.PARTIALLY_PUBLISHED.value, EntryStatus.CHANGED_AFTER_PUBLISH.value}
)
#: Ledger statuses in which the entry still waits to go out (and may be re-planned).
OPEN_STATUSES = frozenset({EntryStatus.PLANNED.value, EntryStatus.AWAITING_APPROVAL.value, EntryStatus.APPROVED.value})
#: Prefix of the content hash of an entry cancelled because it left the files (see _handle_removed).
REMOVED_PREFIX = "removed:"
#: Deliveries planned within this much of "now" make the sync ask calendar_publish to run at once.
KICK_HORIZON = timedelta(minutes=6)


def calendar_dir() -> Path:
    """The calendar folder: ``$KOHO_CALENDAR_DIR``, else ``include/calendar``."""
    configured = os.environ.get(CALENDAR_DIR_ENV)
    return Path(configured) if configured else include_dir() / "calendar"


def content_hash(entry: FileEntry) -> str:
    """A digest of what a post *is* (text, time, targets as written, media, status...).

    Targets are hashed as written, not as resolved: an account retired or a cap reached later
    changes who an entry reaches, not what it says (that is reconciled without a new revision).
    """
    data = entry.model_dump(mode="json", include=set(HASHED_FIELDS))
    blob = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def approval_run_id(entry_id: str, revision: int) -> str:
    """The ``calendar_approval`` run of one entry revision: deterministic, so it is asked once."""
    return f"approval__{entry_id}__r{revision}"


@dataclass
class AlertOut:
    """An alert to raise (JSON-safe; the DAG's report task records and mails it)."""

    kind: str
    dedup_key: str
    subject: str
    severity: str = "warning"
    account_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyncReport:
    """What one sync did; JSON-safe (XCom, logs, tests)."""

    directory: str
    files: list[str] = field(default_factory=list)
    sheets: dict[str, str] = field(default_factory=dict)  # workbook -> the worksheet that was read
    entries: int = 0
    created: list[str] = field(default_factory=list)
    revised: list[str] = field(default_factory=list)
    unchanged: int = 0
    planned: dict[str, int] = field(default_factory=dict)  # entry -> deliveries newly planned
    cancelled: dict[str, list[int]] = field(default_factory=dict)  # entry -> delivery ids cancelled
    removed: list[str] = field(default_factory=list)  # entries deleted from the files
    changed_after_publish: list[str] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)  # approval runs to start
    plan_problems: dict[str, dict[str, str]] = field(default_factory=dict)  # entry -> account -> why
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    alerts: list[AlertOut] = field(default_factory=list)
    due_soon: int = 0  # deliveries planned now that are due within KICK_HORIZON

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# the sync


def sync_calendar(
    ledger: Ledger,
    config: KohoConfig,
    directory: Path | None = None,
    *,
    now: datetime | None = None,
    media_dir: Path | None = None,
    approval_lead: timedelta | None = None,
) -> SyncReport:
    """Validate the calendar in ``directory`` and bring the ledger in line with it (see module doc)."""
    from koho.accounts.sync import registry_rows
    from koho.calendar.approval import approval_deadline, deadline_lead
    from koho.channels.registry import channel_accounts

    now = now or utcnow()
    directory = Path(directory or calendar_dir())
    lead = deadline_lead() if approval_lead is None else approval_lead
    report = SyncReport(directory=str(directory))
    limits = config.policy.limits if config.policy else None
    reads = [read_source(path, limits=limits) for path in calendar_files(directory)]
    report.files = [r.file for r in reads]
    report.sheets = {r.file: r.sheet for r in reads if r.sheet}

    with ledger.session() as session:
        # The registry first, so that a newly added account can be planned right away.
        accounts.upsert_accounts(session, registry_rows(config) + channel_accounts(config))
        existing = _existing_slots(session, now)
        known = entries.entry_summaries(session)
        past = {e.id for e in known.values() if e.publish_at <= now}

    load = validate_sources(reads, config, now=now, existing=existing, media_dir=media_dir, published=past)
    report.entries = len(load.entries)
    loaded = {e.id for e in load.entries}
    kept = {i: k.status for i, k in known.items() if i not in loaded}
    named = _entry_namer(reads, kept)
    for problem in load.problems:
        (report.errors if problem.severity == "error" else report.warnings).append(named(problem))

    limits = config.policy.platform_limits if config.policy else {}
    for entry in load.entries:
        with ledger.session() as session:
            _sync_entry(session, entry, known.get(entry.id), report, now=now, limits=limits)

    _handle_removed(ledger, reads, load, known, report, now=now)
    if not reads:
        report.warnings.append(
            str(Problem(Where(file=str(directory)), "no calendar file found; nothing was planned or cancelled"))
        )
    report.approvals = _approval_requests(ledger, now=now, lead=lead, deadline=approval_deadline)
    report.due_soon = _due_soon(ledger, report, now=now)
    if report.errors:
        report.alerts.append(_problems_alert(report.errors, now=now))
    return report


def _entry_namer(reads: list[SourceRead], kept: dict[str, str]):
    """A function giving ``problem`` as text, followed by ``[entry '<id>']`` when the entry's id can be read.

    Validation messages name the place (file, line, field); staff also want the entry's id. An
    error about an entry the ledger already holds (``kept``: id -> status) also says that the
    entry is not planned from the broken content and keeps what it had.
    """
    starts: dict[str, list[tuple[int, str]]] = {}
    for read in reads:
        for raw in read.entries:
            place = raw.where(())
            entry_id = raw.data.get("id")
            if place.line and isinstance(entry_id, str | int) and str(entry_id).strip():
                starts.setdefault(place.file or read.file, []).append((place.line, str(entry_id).strip()))
    for items in starts.values():
        items.sort()

    def name(problem: Problem) -> str:
        where = problem.where
        found = None
        for line, entry_id in starts.get(where.file or "", []):
            if where.line and line <= where.line:
                found = entry_id
        if not found:
            return str(problem)
        if problem.severity == "error" and found in kept:
            return (
                f"{problem} [entry '{found}']; not planned from this content: the entry keeps what the "
                f"ledger had ({kept[found]}) until the file is corrected"
            )
        return f"{problem} [entry '{found}']"

    return name


def _existing_slots(session: Session, now: datetime) -> list[PlannedSlot]:
    """Deliveries the ledger already counts against caps: first parts, on accounts that count."""
    from koho.channels.registry import exempt_from_caps

    return existing_slots(deliveries.planned_slots(session, since=now, exempt_accounts=exempt_from_caps()))


def _source_parts(label: str | None) -> tuple[str, int | None]:
    """``demo.yaml:12`` -> (``demo.yaml``, 12)."""
    label = label or "?"
    name, sep, line = label.rpartition(":")
    if sep and line.isdigit():
        return name, int(line)
    return label, None


def entry_values(entry: FileEntry, *, status: str | None = None) -> dict[str, Any]:
    """The ledger row for a validated calendar entry."""
    source, line = _source_parts(entry.source)
    values = {
        "id": entry.id,
        "origin": EntryOrigin.CALENDAR.value,
        "source": source[:255],
        "source_line": line,
        "title": entry.title,
        "publish_at": entry.publish_at,
        "payload": entry.model_dump(mode="json"),
        "approval_required": entry.approval,
        "content_hash": content_hash(entry),
    }
    if status:
        values["status"] = status
    return values


def _sync_entry(
    session: Session,
    entry: FileEntry,
    known: EntrySummary | None,
    report: SyncReport,
    *,
    now: datetime,
    limits: dict[str, int],
) -> None:
    digest = content_hash(entry)
    cancelled = entry.status == "cancelled"
    if known is not None and known.origin != EntryOrigin.CALENDAR.value:
        report.errors.append(
            str(
                Problem(
                    Where(file=entry.source),
                    f"id '{entry.id}' is already used by an {known.origin} post; give the calendar entry another id",
                )
            )
        )
        return
    if known is not None and known.content_hash != digest:
        published = known.status in PUBLISHED_STATUSES or deliveries.has_published(session, entry.id)
        if not published and not cancelled and entry.publish_at <= now:
            # Changed, but its time has passed: planning it now would post it late and unasked.
            report.warnings.append(
                str(
                    Problem(
                        Where(file=entry.source, field="publish_at"),
                        f"entry '{entry.id}' was changed but its time "
                        f"({to_local(entry.publish_at):%Y-%m-%d %H:%M} JST) has passed; it is "
                        "not posted. Set a future publish_at to post it",
                    )
                )
            )
            return
    result = entries.upsert_entry(session, entry_values(entry, status="cancelled" if cancelled else None), now=now)
    row = result.entry
    if result.created:
        report.created.append(entry.id)
    elif result.revised:
        report.revised.append(entry.id)
    else:
        report.unchanged += 1

    if result.revised:
        old = deliveries.cancel_deliveries(
            session,
            entry.id,
            below_revision=row.revision,
            reason=f"replaced by revision {row.revision} of the calendar entry",
            now=now,
        )
        _note_cancelled(report, entry.id, old.cancelled)
        if old.in_flight:
            report.warnings.append(
                f"entry '{entry.id}': {len(old.in_flight)} delivery(ies) of the previous revision "
                "were being sent while it changed; check the accounts for the old text"
            )
    if row.status == EntryStatus.CHANGED_AFTER_PUBLISH.value:
        if result.revised:
            report.changed_after_publish.append(entry.id)
            report.alerts.append(_changed_after_publish_alert(session, row, cancelled=cancelled))
        return
    if cancelled:
        gone = deliveries.cancel_deliveries(session, entry.id, reason="cancelled in the calendar", now=now)
        _note_cancelled(report, entry.id, gone.cancelled)
        if row.status != EntryStatus.CANCELLED.value and row.status not in PUBLISHED_STATUSES:
            entries.set_entry_status(session, entry.id, EntryStatus.CANCELLED.value, now=now)
        return
    if result.changed and row.status in OPEN_STATUSES and row.publish_at > now:
        # Only when something changed (new, revised, or whom it reaches): planning is idempotent,
        # but a large calendar would otherwise re-plan every entry every five minutes.
        _plan(session, row, entry, report, now=now, limits=limits)


def _plan(
    session: Session, row: LedgerEntry, entry: FileEntry, report: SyncReport, *, now: datetime, limits: dict[str, int]
) -> None:
    """Plan the current revision for every target; cancel deliveries of targets no longer reached."""
    from koho.channels.registry import channels_in
    from koho.delivery.planner import plan_entry

    waiting = row.approval_required and row.status != EntryStatus.APPROVED.value
    outcome = plan_entry(session, row, accounts.accounts_by_id(session), limits=limits, awaiting_approval=waiting)
    if outcome.created:
        report.planned[entry.id] = outcome.created
    if outcome.problems:
        report.plan_problems[entry.id] = dict(outcome.problems)
        for account_id, reason in outcome.problems.items():
            report.errors.append(
                str(
                    Problem(
                        Where(file=entry.source, account=account_id),
                        f"entry '{entry.id}' is not planned for this account: {reason}",
                    )
                )
            )
    targets = set(entry.accounts) | set(channels_in(entry.channels))
    stale = {d.account_id for d in deliveries.for_entry(session, entry.id, revision=row.revision)} - targets
    if stale:
        reasons = {a: entry.excluded_accounts.get(a, "no longer a target of the entry") for a in stale}
        gone = deliveries.cancel_deliveries(
            session,
            entry.id,
            account_ids=sorted(stale),
            now=now,
            reason="; ".join(f"{a}: {r}" for a, r in sorted(reasons.items())),
        )
        _note_cancelled(report, entry.id, gone.cancelled)


def _note_cancelled(report: SyncReport, entry_id: str, ids: Iterable[int]) -> None:
    ids = list(ids)
    if ids:
        report.cancelled.setdefault(entry_id, []).extend(ids)


def _handle_removed(
    ledger: Ledger,
    reads: list[SourceRead],
    load: CalendarLoad,
    known: dict[str, EntrySummary],
    report: SyncReport,
    *,
    now: datetime,
) -> None:
    """Cancel what is still to be sent for entries deleted from the files.

    Only when the files could be read: a file with a syntax error (or no file at all) hides its
    entries, and that must never look like "delete them all".
    """
    if not reads:
        return
    in_files = {str(raw.data.get("id")).strip() for read in reads for raw in read.entries if raw.data.get("id")}
    unreadable = {read.file for read in reads if any(p.severity == "error" for p in read.problems)}
    for entry_id, entry in known.items():
        if entry.origin != EntryOrigin.CALENDAR.value or entry_id in in_files or entry.source in unreadable:
            continue
        if entry.status not in OPEN_STATUSES and entry.status not in PUBLISHED_STATUSES:
            continue
        with ledger.session() as session:
            gone = deliveries.cancel_deliveries(session, entry_id, reason="removed from the calendar files", now=now)
            if entry.status in OPEN_STATUSES:
                entries.set_entry_status(session, entry_id, EntryStatus.CANCELLED.value, now=now)
                # Should the entry come back (a file moved in two steps, restored from a backup),
                # it must be planned again: a content hash it cannot match makes that a new revision.
                entries.forget_content(session, entry_id, REMOVED_PREFIX)
        if gone.cancelled or entry.status in OPEN_STATUSES:
            report.removed.append(entry_id)
            _note_cancelled(report, entry_id, gone.cancelled)
            log.info(
                "entry %s was removed from the calendar: %d delivery(ies) cancelled", entry_id, len(gone.cancelled)
            )


def _approval_requests(ledger: Ledger, *, now: datetime, lead: timedelta, deadline: Any) -> list[dict[str, Any]]:
    """One request per entry revision whose deliveries await approval and whose time is ahead."""
    with ledger.session(readonly=True) as session:
        rows = entries.awaiting_approval(session, after=now)
    return [
        {
            "entry_id": r.id,
            "revision": r.revision,
            "run_id": approval_run_id(r.id, r.revision),
            "publish_at": r.publish_at.isoformat(),
            "deadline": deadline(r.publish_at, lead).isoformat(),
            "title": r.title,
        }
        for r in rows
    ]


def _due_soon(ledger: Ledger, report: SyncReport, *, now: datetime) -> int:
    if not report.planned:
        return 0
    with ledger.session(readonly=True) as session:
        return deliveries.count_due(session, report.planned, until=now + KICK_HORIZON)


# ---------------------------------------------------------------------------------------------
# alerts for people

_NOW_IN_MESSAGE = re.compile(r"\(now [^)]*\)")


def _problems_alert(problems: list[str], *, now: datetime) -> AlertOut:
    """One alert listing every invalid entry; raised again only when the list changes (or next day)."""
    stable = "\n".join(sorted(_NOW_IN_MESSAGE.sub("", p) for p in problems))
    digest = hashlib.sha256(stable.encode("utf-8")).hexdigest()[:16]
    day = to_local(now).date().isoformat()
    return AlertOut(
        kind="config_error",
        dedup_key=f"calendar_problems:{day}:{digest}",
        subject=f"{len(problems)} problem(s) in the posting calendar; the entries named are not (or not fully) "
        "planned, the others are",
        severity="warning",
        detail={"problems": list(problems)},
    )


def _changed_after_publish_alert(session: Session, row: LedgerEntry, *, cancelled: bool) -> AlertOut:
    posts = deliveries.for_entry(session, row.id, status=DeliveryStatus.PUBLISHED.value)
    where = ", ".join(f"{p.account_id} ({p.remote_url or p.remote_id})" for p in posts) or "(see the calendar view)"
    what = "was cancelled in the calendar" if cancelled else "was changed in the calendar"
    return AlertOut(
        kind="config_error",
        dedup_key=f"changed_after_publish:{row.id}:r{row.revision}",
        subject=f"'{row.id}' {what} after it was published; nothing was re-posted or deleted",
        severity="warning",
        detail={
            "entry": row.id,
            "source": f"{row.source}:{row.source_line}" if row.source_line else row.source,
            "published on": where,
            "what to do": "correct the posts by hand, or delete them with the calendar_retract DAG "
            "(entry id, accounts, confirm); then make the calendar say what should stay",
        },
    )
