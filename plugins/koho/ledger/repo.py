"""What the workflows do with the ledger: small functions that take a Session.

The caller owns the transaction (``with ledger.session() as s: ...``); nothing here commits.

The delivery functions are the exactly-once state machine:

* ``awaiting_approval`` -> ``planned``: :func:`approve_deliveries`
* ``planned`` -> ``sending``: :func:`claim_for_sending` (exactly one caller wins)
* ``sending`` (stale) -> ``sending``: :func:`claim_for_sending` again, with ``maybe_sent_before``
* ``sending`` -> ``planned``: :func:`mark_failed` with ``retryable`` (surely not posted)
* ``sending`` / ``planned`` / ... -> ``failed``: :func:`mark_failed`
* ``sending`` / ``planned`` / ``failed`` -> ``needs_attention``: :func:`mark_needs_attention`
* ``planned`` / ``awaiting_approval`` / ``needs_attention`` -> ``cancelled``: :func:`cancel_deliveries`
* anything -> ``published``: :func:`mark_published` (the platform is the truth)

Every transition is one conditional ``UPDATE ... WHERE status = <expected>``: the database,
not the Python code, decides who wins a race, on Postgres (row locks, re-checked WHERE) and on
SQLite (``BEGIN IMMEDIATE`` serialises writers) alike. A delivery left in ``sending`` by a
worker that died can be claimed again only after ``stale_after``, and the claim then says
``maybe_sent_before``: the caller must ask the platform whether the post exists before posting.

Inserts that may race (planning, alerts, feedback, accounts) use ``INSERT ... ON CONFLICT DO
NOTHING`` so that a concurrent duplicate is a no-op instead of an error that would abort the
whole transaction on Postgres.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from koho import secrets
from koho.errors import KohoError, Problem, Where
from koho.ledger.models import (
    Account,
    AccountKind,
    AccountMetric,
    AccountStatus,
    Alert,
    AlertKind,
    AlertSeverity,
    CalendarEntry,
    Cursor,
    Delivery,
    DeliveryStatus,
    EntryOrigin,
    EntryStatus,
    FeedbackItem,
    PostMetric,
    utcnow,
)

log = logging.getLogger(__name__)

#: How long a delivery may sit in ``sending`` before another attempt may take it over. Longer
#: than any platform call with its retries (hooks give up well within a few minutes).
DEFAULT_STALE_AFTER = timedelta(minutes=15)
MAX_ERROR_CHARS = 4000

#: Namespace of delivery idempotency keys. Never change it: keys of planned deliveries would
#: change, and a retry would no longer be recognised by the platform as the same request.
IDEMPOTENCY_NAMESPACE = uuid.UUID("f5fb87b8-7a3a-437b-8330-7cc1cc7fb4d9")


class LedgerError(KohoError):
    """The ledger refused an operation (unknown record, impossible transition)."""


class UnknownRecord(LedgerError):
    """An id given to the ledger does not exist."""


class DuplicatePublish(LedgerError):
    """A delivery already recorded as published was reported published again under another id.

    That means the post exists twice on the platform: a person must delete one.
    """

    def __init__(self, delivery_id: int, recorded: str | None, reported: str):
        self.delivery_id = delivery_id
        self.recorded = recorded
        self.reported = reported
        super().__init__(
            f"delivery {delivery_id} is already published as {recorded!r} but was reported "
            f"published again as {reported!r}: the post probably exists twice"
        )


# ---------------------------------------------------------------------------------------------
# helpers


def _now(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise ValueError("'now' must be timezone-aware")
    return now.astimezone(UTC)


def _as_dict(obj: Any) -> dict[str, Any]:
    """Accept mappings, dataclasses and pydantic models alike (the callers use all three)."""
    if isinstance(obj, Mapping):
        return dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    raise TypeError(f"expected a mapping, a dataclass or a pydantic model, got {type(obj).__name__}")


def _clean_error(reason: str) -> str:
    """Error text as stored: secrets redacted (it ends up in reports and mails), bounded."""
    text = secrets.redact(str(reason)).strip()
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


def _redact_json(value: Any) -> Any:
    if isinstance(value, str):
        return secrets.redact(value)
    if isinstance(value, Mapping):
        return {str(k): _redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_json(v) for v in value]
    return value


def _insert_ignore(session: Session, table: Table, values: Mapping[str, Any]) -> bool:
    """Insert a row unless it collides with a unique key; True when it was inserted.

    ``ON CONFLICT DO NOTHING`` keeps the transaction usable after a collision (a plain
    IntegrityError would abort it on Postgres); other backends fall back to a savepoint.
    """
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        maker = pg_insert if dialect == "postgresql" else sqlite_insert
        result = session.execute(maker(table).values(**values).on_conflict_do_nothing())
        return result.rowcount == 1
    try:
        with session.begin_nested():
            session.execute(insert(table).values(**values))
    except IntegrityError:
        return False
    return True


def _orm_update(session: Session, statement: Any) -> int:
    """Run an ORM UPDATE and bring objects already loaded in this session up to date."""
    result = session.execute(statement, execution_options={"synchronize_session": "fetch"})
    return result.rowcount


def _json(value: Any, what: str) -> Any:
    """``value`` as it will come back from a JSON column (tuples become lists, keys strings),
    so that comparing it with what is stored tells real changes from representation ones."""
    try:
        return json.loads(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError) as exc:
        raise LedgerError(f"{what} is not JSON: {exc}") from None


def _reload(session: Session, model: type, ident: Any) -> Any:
    """The row as the database has it now (after a Core UPDATE the identity map is stale)."""
    obj = session.get(model, ident, populate_existing=True)
    if obj is None:
        raise UnknownRecord(f"{model.__tablename__} {ident!r} does not exist")
    return obj


def _check(value: str, allowed: type, what: str) -> str:
    values = {v.value for v in allowed}
    if value not in values:
        raise LedgerError(f"{what} {value!r} is not one of {sorted(values)}")
    return value


# ---------------------------------------------------------------------------------------------
# accounts

_ACCOUNT_REQUIRED = ("id", "platform", "handle", "display_name", "department")
_ACCOUNT_OPTIONAL: dict[str, Any] = {
    "kind": AccountKind.GENERAL.value,
    "topic": None,
    "status": AccountStatus.ACTIVE.value,
    "connection_id": None,
    "settings": None,  # -> {}
}
_ACCOUNT_FIELDS = (*_ACCOUNT_REQUIRED[1:], *_ACCOUNT_OPTIONAL)


@dataclass(frozen=True)
class UpsertResult:
    """Account ids by what happened to them; ``problems`` lists rows that were skipped."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    retired: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()


def _account_values(raw: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Normalise one registry row; unknown keys are ignored (the registry knows more)."""
    row = _as_dict(raw)
    where = Where(account=str(row.get("id") or "?"))
    problems = [Problem(where, f"'{key}' is required") for key in _ACCOUNT_REQUIRED if not row.get(key)]
    values = {key: row.get(key, default) for key, default in _ACCOUNT_OPTIONAL.items()}
    try:
        values["settings"] = _json(dict(values["settings"] or {}), "'settings'")
    except (LedgerError, TypeError, ValueError) as exc:
        problems.append(Problem(where, str(exc)))
    for key, allowed in (("kind", AccountKind), ("status", AccountStatus)):
        if values[key] not in {v.value for v in allowed}:
            problems.append(Problem(where, f"'{key}' is {values[key]!r}, expected one of {[v.value for v in allowed]}"))
    if problems:
        return None, problems
    values.update({key: str(row[key]) for key in _ACCOUNT_REQUIRED})
    return values, []


def upsert_accounts(
    session: Session,
    accounts: Iterable[Any],
    *,
    retire_missing: bool = False,
    now: datetime | None = None,
) -> UpsertResult:
    """Make the ``accounts`` table reflect the registry (accounts.yaml).

    Rows are mappings (or dataclasses / pydantic models) with ``id``, ``platform``,
    ``handle``, ``display_name``, ``department`` and optionally ``kind``, ``topic``,
    ``status``, ``connection_id``, ``settings``. An invalid row is skipped and reported in
    ``problems``; the others proceed. Accounts missing from the registry are kept (their
    history matters) and only marked ``retired`` with ``retire_missing=True``.
    """
    now = _now(now)
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    rows: dict[str, dict[str, Any]] = {}
    for raw in accounts:
        values, row_problems = _account_values(raw)
        raw_id = _as_dict(raw).get("id")
        if raw_id:
            seen.add(str(raw_id))
        if values is None:
            problems.extend(row_problems)
        else:
            rows[values["id"]] = values  # a later duplicate wins, as in a YAML mapping

    existing = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(list(rows))))}
    for account_id, values in rows.items():
        account = existing.get(account_id)
        if account is None:
            if _insert_ignore(session, Account.__table__, {**values, "created_at": now, "updated_at": now}):
                created.append(account_id)
                continue
            account = _reload(session, Account, account_id)  # a concurrent sync created it
        changes = {f: values[f] for f in _ACCOUNT_FIELDS if getattr(account, f) != values[f]}
        for name, value in changes.items():
            setattr(account, name, value)
        if changes:
            account.updated_at = now
        (updated if changes else unchanged).append(account_id)

    retired: list[str] = []
    if retire_missing:
        retired = _retire_missing(session, seen, now)
    session.flush()
    return UpsertResult(tuple(created), tuple(updated), tuple(unchanged), tuple(retired), tuple(problems))


def _retire_missing(session: Session, seen: set[str], now: datetime) -> list[str]:
    if not seen:
        raise LedgerError("refusing to retire every account: the registry given is empty")
    table = Account.__table__
    result = session.execute(
        update(table)
        .where(table.c.id.not_in(sorted(seen)), table.c.status != AccountStatus.RETIRED.value)
        .values(status=AccountStatus.RETIRED.value, updated_at=now)
        .returning(table.c.id)
    )
    retired = sorted(result.scalars())
    for account_id in retired:
        _reload(session, Account, account_id)
    return retired


def record_verification(
    session: Session,
    account_id: str,
    *,
    ok: bool,
    token_expires_at: datetime | None = None,
    error: str | None = None,
    now: datetime | None = None,
) -> Account:
    """Remember the outcome of a token check.

    A success records the expiry the platform reported (None: it reports none); a failure
    keeps the last known expiry and stores the error, redacted, for the alert and the report.
    """
    account = session.get(Account, account_id)
    if account is None:
        raise UnknownRecord(f"account {account_id!r} does not exist")
    account.last_verified_at = _now(now)
    if ok:
        account.verify_error = None
        account.token_expires_at = token_expires_at
    else:
        account.verify_error = _clean_error(error or "verification failed (no reason given)")
    session.flush()
    return account


# ---------------------------------------------------------------------------------------------
# calendar entries

_ENTRY_REQUIRED = ("id", "origin", "source", "title", "publish_at", "content_hash")
_ENTRY_FIELDS = ("origin", "source", "source_line", "title", "publish_at", "payload", "approval_required", "created_by")
_PUBLISHED_ENTRY = {
    EntryStatus.PUBLISHED.value,
    EntryStatus.PARTIALLY_PUBLISHED.value,
    EntryStatus.CHANGED_AFTER_PUBLISH.value,
}


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
    now = _now(now)
    values = _as_dict(entry)
    missing = [key for key in _ENTRY_REQUIRED if values.get(key) in (None, "")]
    if missing:
        raise LedgerError(f"calendar entry {values.get('id')!r} lacks {missing}")
    entry_id = str(values["id"])
    content_hash = str(values["content_hash"])
    fields = {f: values[f] for f in _ENTRY_FIELDS if f in values}
    fields["payload"] = _json(dict(fields.get("payload") or {}), f"payload of entry {entry_id!r}")
    _check(str(fields["origin"]), EntryOrigin, "entry origin")
    initial = values.get("status") or (
        EntryStatus.AWAITING_APPROVAL.value if fields.get("approval_required") else EntryStatus.PLANNED.value
    )
    _check(initial, EntryStatus, "entry status")
    row = {**fields, "id": entry_id, "content_hash": content_hash, "status": initial, "revision": 1}
    if _insert_ignore(session, CalendarEntry.__table__, {**row, "created_at": now, "updated_at": now}):
        return EntryResult(_reload(session, CalendarEntry, entry_id), True, False, True)

    current = _reload(session, CalendarEntry, entry_id)
    revised = False
    if current.content_hash != content_hash:
        revised = _revise_entry(session, current, content_hash, initial, now)
        current = _reload(session, CalendarEntry, entry_id)
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
    _check(status, EntryStatus, "entry status")
    entry = session.get(CalendarEntry, entry_id)
    if entry is None:
        raise UnknownRecord(f"calendar entry {entry_id!r} does not exist")
    if entry.status != status:
        entry.status = status
        entry.updated_at = _now(now)
    session.flush()
    return entry


def refresh_entry_status(session: Session, entry_id: str, *, now: datetime | None = None) -> str:
    """Derive the entry's status from its current revision's deliveries, once all are settled.

    All published -> ``published``; some published, the rest failed or cancelled ->
    ``partially_published``; none published and some failed -> ``failed``; all cancelled ->
    ``cancelled``. While any delivery is still pending nothing changes, and statuses a person
    set (rejected, cancelled, changed_after_publish) are left alone.
    """
    entry = _reload(session, CalendarEntry, entry_id)
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


# ---------------------------------------------------------------------------------------------
# deliveries: the exactly-once state machine

_CANCELLABLE = (
    DeliveryStatus.PLANNED.value,
    DeliveryStatus.AWAITING_APPROVAL.value,
    DeliveryStatus.NEEDS_ATTENTION.value,
)


def idempotency_key(entry_id: str, account_id: str, revision: int, part_index: int = 0) -> str:
    """The delivery's stable key: the same inputs give the same key in every process, forever.

    A UUID (version 5) because LINE's ``X-Line-Retry-Key`` must be one; Mastodon's
    ``Idempotency-Key`` takes it as is.
    """
    name = json.dumps([str(entry_id), str(account_id), int(revision), int(part_index)], ensure_ascii=False)
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, name))


@dataclass(frozen=True)
class PlanResult:
    delivery: Delivery
    created: bool  # False: it was planned before (by this or a concurrent run) and is returned as is


@dataclass(frozen=True)
class Claim:
    """The outcome of :func:`claim_for_sending`.

    ``ok``: this caller may publish now. ``maybe_sent_before``: an earlier attempt died after
    claiming, so the post may exist already; reconcile with the platform before posting.
    ``reason`` says why a claim was refused (for the task log).
    """

    ok: bool
    maybe_sent_before: bool
    delivery: Delivery
    reason: str = ""


@dataclass(frozen=True)
class CancelResult:
    cancelled: tuple[int, ...] = ()
    in_flight: tuple[int, ...] = ()  # being sent right now: may still end up published
    published: tuple[int, ...] = ()  # already out: deleting them is a separate, human decision


def plan_delivery(
    session: Session,
    *,
    entry_id: str,
    account_id: str,
    revision: int,
    due_at: datetime,
    text: str,
    part_index: int = 0,
    parent_delivery_id: int | None = None,
    planned_created_at: datetime | None = None,
    awaiting_approval: bool = False,
    now: datetime | None = None,
) -> PlanResult:
    """Plan one delivery unless it is planned already (same entry, account, revision, part).

    Planning twice (a re-run, two overlapping runs) returns the existing row untouched, so a
    post can never be planned twice. ``planned_created_at`` (default: ``due_at``) is fixed
    now so that every retry sends the same ``createdAt`` to platforms that reconcile by it.
    """
    now = _now(now)
    key = idempotency_key(entry_id, account_id, revision, part_index)
    status = DeliveryStatus.AWAITING_APPROVAL if awaiting_approval else DeliveryStatus.PLANNED
    created = _insert_ignore(
        session,
        Delivery.__table__,
        {
            "entry_id": entry_id,
            "account_id": account_id,
            "revision": revision,
            "idempotency_key": key,
            "part_index": part_index,
            "parent_delivery_id": parent_delivery_id,
            "due_at": due_at,
            "status": status.value,
            "text": text,
            "planned_created_at": planned_created_at or due_at,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        },
    )
    delivery = session.scalars(
        select(Delivery).where(Delivery.idempotency_key == key).execution_options(populate_existing=True)
    ).one()
    return PlanResult(delivery, created)


def get_delivery(session: Session, delivery_id: int) -> Delivery:
    return _reload(session, Delivery, delivery_id)


def _transition(session: Session, delivery_id: int, from_statuses: Sequence[str], **values: Any) -> bool:
    """One atomic state change: True when the row was in one of ``from_statuses``."""
    table = Delivery.__table__
    result = session.execute(
        update(table).where(table.c.id == delivery_id, table.c.status.in_(list(from_statuses))).values(**values)
    )
    return result.rowcount == 1


def claim_for_sending(
    session: Session,
    delivery_id: int,
    dag_run_id: str | None,
    *,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    now: datetime | None = None,
) -> Claim:
    """Take the right to publish a delivery: exactly one concurrent caller gets ``ok``.

    ``planned`` -> ``sending`` (attempts + 1). A delivery already ``sending`` is taken over
    only when its ``sending_since`` is older than ``stale_after`` (its worker died without
    recording an outcome), and then ``maybe_sent_before`` is set. Anything else is refused.
    Commit right after claiming: on Postgres a competing claim waits for this transaction.
    """
    now = _now(now)
    table = Delivery.__table__
    claimed = {
        "status": DeliveryStatus.SENDING.value,
        "attempts": table.c.attempts + 1,
        "sending_since": now,
        "dag_run_id": dag_run_id,
        "updated_at": now,
    }
    if _transition(session, delivery_id, [DeliveryStatus.PLANNED.value], **claimed):
        return Claim(True, False, _reload(session, Delivery, delivery_id))

    stale = session.execute(
        update(table)
        .where(
            table.c.id == delivery_id,
            table.c.status == DeliveryStatus.SENDING.value,
            or_(table.c.sending_since.is_(None), table.c.sending_since < now - stale_after),
        )
        .values(**claimed)
    )
    delivery = _reload(session, Delivery, delivery_id)
    if stale.rowcount == 1:
        log.warning(
            "delivery %s was left 'sending' by an earlier attempt; reconcile before posting again",
            delivery_id,
        )
        return Claim(True, True, delivery)
    return Claim(False, False, delivery, _refusal(delivery))


def renew_claim(session: Session, delivery_id: int, attempts: int, *, now: datetime | None = None) -> bool:
    """Keep a live claim from looking stale: ``sending_since`` = now, if the claim made on attempt
    ``attempts`` still holds (the delivery is ``sending`` and nobody has claimed it since).

    A worker waiting for a rate-limit window can hold a delivery longer than ``stale_after``;
    without renewal another run would take it over and both would post. A dead worker renews
    nothing, so its claim still goes stale.
    """
    now = _now(now)
    table = Delivery.__table__
    renewed = session.execute(
        update(table)
        .where(table.c.id == delivery_id, table.c.status == DeliveryStatus.SENDING.value, table.c.attempts == attempts)
        .values(sending_since=now, updated_at=now)
    )
    return renewed.rowcount == 1


def _refusal(delivery: Delivery) -> str:
    if delivery.status == DeliveryStatus.SENDING:
        since = delivery.sending_since.isoformat() if delivery.sending_since else "an unknown time"
        return f"another attempt (run {delivery.dag_run_id}) has been sending it since {since}"
    if delivery.status == DeliveryStatus.AWAITING_APPROVAL:
        return "it is awaiting approval"
    return f"it is {delivery.status}"


def mark_published(
    session: Session,
    delivery_id: int,
    remote_id: str,
    url: str | None,
    published_at: datetime | None = None,
    *,
    now: datetime | None = None,
) -> Delivery:
    """Record that the post exists on the platform, from whatever state the ledger thought.

    The platform is the truth: a post found by reconciliation after the delivery was marked
    failed or needs_attention is still recorded, or a later attempt would post it again.
    Repeating the same report is a no-op; a different remote id raises
    :class:`DuplicatePublish` (the post exists twice).
    """
    now = _now(now)
    others = [s.value for s in DeliveryStatus if s != DeliveryStatus.PUBLISHED]
    if _transition(
        session,
        delivery_id,
        others,
        status=DeliveryStatus.PUBLISHED.value,
        remote_id=remote_id,
        remote_url=url,
        published_at=published_at or now,
        sending_since=None,
        updated_at=now,
    ):
        return _reload(session, Delivery, delivery_id)
    delivery = _reload(session, Delivery, delivery_id)
    if delivery.remote_id != remote_id:
        raise DuplicatePublish(delivery_id, delivery.remote_id, remote_id)
    return delivery


def mark_failed(
    session: Session,
    delivery_id: int,
    reason: str,
    *,
    retryable: bool,
    now: datetime | None = None,
) -> Delivery:
    """Record a failed attempt; ``reason`` must tell a person what to do.

    ``retryable`` sends the delivery back to ``planned`` for another attempt; use it only
    when the platform surely did not publish (a definite rejection or a refused connection).
    When the outcome is unknown leave the delivery ``sending`` (the next claim after
    ``stale_after`` reconciles) or call :func:`mark_needs_attention`. A final failure is also
    allowed before any attempt (e.g. the image is missing). Returns the delivery as it is now:
    if it had meanwhile been published, it stays published.
    """
    now = _now(now)
    if retryable:
        sources, target = [DeliveryStatus.SENDING.value], DeliveryStatus.PLANNED.value
    else:
        sources = [
            DeliveryStatus.SENDING.value,
            DeliveryStatus.PLANNED.value,
            DeliveryStatus.AWAITING_APPROVAL.value,
            DeliveryStatus.NEEDS_ATTENTION.value,
        ]
        target = DeliveryStatus.FAILED.value
    done = _transition(
        session,
        delivery_id,
        sources,
        status=target,
        last_error=_clean_error(reason),
        sending_since=None,
        updated_at=now,
    )
    delivery = _reload(session, Delivery, delivery_id)
    if not done:
        log.warning("delivery %s is %s; failure not recorded: %s", delivery_id, delivery.status, _clean_error(reason))
    return delivery


def mark_needs_attention(session: Session, delivery_id: int, reason: str, *, now: datetime | None = None) -> Delivery:
    """Park a delivery for a person: Koho cannot tell whether it was posted, or must not retry."""
    now = _now(now)
    _transition(
        session,
        delivery_id,
        [
            DeliveryStatus.SENDING.value,
            DeliveryStatus.PLANNED.value,
            DeliveryStatus.AWAITING_APPROVAL.value,
            DeliveryStatus.FAILED.value,
        ],
        status=DeliveryStatus.NEEDS_ATTENTION.value,
        last_error=_clean_error(reason),
        sending_since=None,
        updated_at=now,
    )
    return _reload(session, Delivery, delivery_id)


def approve_deliveries(
    session: Session, entry_id: str, *, revision: int | None = None, now: datetime | None = None
) -> tuple[int, ...]:
    """Release an entry's deliveries that awaited approval (-> ``planned``); returns their ids."""
    table = Delivery.__table__
    conditions = [table.c.entry_id == entry_id, table.c.status == DeliveryStatus.AWAITING_APPROVAL.value]
    if revision is not None:
        conditions.append(table.c.revision == revision)
    result = session.execute(
        update(table)
        .where(*conditions)
        .values(status=DeliveryStatus.PLANNED.value, updated_at=_now(now))
        .returning(table.c.id)
    )
    return tuple(sorted(result.scalars()))


def reschedule_delivery(
    session: Session,
    delivery_id: int,
    due_at: datetime,
    *,
    planned_created_at: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """Move a delivery that has not gone out yet (planned or awaiting approval); False otherwise."""
    return _transition(
        session,
        delivery_id,
        [DeliveryStatus.PLANNED.value, DeliveryStatus.AWAITING_APPROVAL.value],
        due_at=due_at,
        planned_created_at=planned_created_at or due_at,
        updated_at=_now(now),
    )


def cancel_deliveries(
    session: Session,
    entry_id: str,
    *,
    reason: str | None = None,
    below_revision: int | None = None,
    account_ids: Iterable[str] | None = None,
    now: datetime | None = None,
) -> CancelResult:
    """Cancel an entry's deliveries that have not gone out (all, or older revisions only).

    Deliveries being sent are not touched (the worker decides their fate) and published ones
    cannot be un-published: both are returned so the caller can tell a person.
    """
    table = Delivery.__table__
    scope = [table.c.entry_id == entry_id]
    if below_revision is not None:
        scope.append(table.c.revision < below_revision)
    if account_ids is not None:
        scope.append(table.c.account_id.in_(list(account_ids)))
    values: dict[str, Any] = {"status": DeliveryStatus.CANCELLED.value, "updated_at": _now(now)}
    if reason:
        values["last_error"] = _clean_error(f"cancelled: {reason}")
    cancelled = session.execute(
        update(table).where(*scope, table.c.status.in_(_CANCELLABLE)).values(**values).returning(table.c.id)
    ).scalars()
    cancelled_ids = tuple(sorted(cancelled))
    rest = session.execute(
        select(table.c.id, table.c.status).where(
            *scope, table.c.status.in_([DeliveryStatus.SENDING.value, DeliveryStatus.PUBLISHED.value])
        )
    ).all()
    for delivery_id in cancelled_ids:
        _reload(session, Delivery, delivery_id)
    return CancelResult(
        cancelled=cancelled_ids,
        in_flight=tuple(sorted(r.id for r in rest if r.status == DeliveryStatus.SENDING)),
        published=tuple(sorted(r.id for r in rest if r.status == DeliveryStatus.PUBLISHED)),
    )


def due_deliveries(
    session: Session, *, until: datetime, account_id: str | None = None, limit: int | None = None
) -> list[Delivery]:
    """Planned deliveries due at or before ``until``, earliest first."""
    query = select(Delivery).where(Delivery.status == DeliveryStatus.PLANNED.value, Delivery.due_at <= until)
    if account_id is not None:
        query = query.where(Delivery.account_id == account_id)
    query = query.order_by(Delivery.due_at, Delivery.id).limit(limit)
    return list(session.scalars(query))


def stale_sending(
    session: Session, *, older_than: timedelta = DEFAULT_STALE_AFTER, now: datetime | None = None
) -> list[Delivery]:
    """Deliveries stuck in ``sending`` longer than ``older_than`` (their worker likely died)."""
    cutoff = _now(now) - older_than
    query = select(Delivery).where(
        Delivery.status == DeliveryStatus.SENDING.value,
        or_(Delivery.sending_since.is_(None), Delivery.sending_since < cutoff),
    )
    return list(session.scalars(query.order_by(Delivery.sending_since, Delivery.id)))


# ---------------------------------------------------------------------------------------------
# alerts


def raise_alert(
    session: Session,
    kind: str,
    dedup_key: str,
    subject: str,
    detail: Mapping[str, Any] | None = None,
    severity: str = AlertSeverity.WARNING.value,
    account_id: str | None = None,
    *,
    now: datetime | None = None,
) -> Alert | None:
    """Record an alert once: None when one with ``dedup_key`` exists already (even resolved).

    Put in ``dedup_key`` whatever makes a repeat a *new* alert (a date, a token expiry, a
    delivery id); subject and detail are redacted because alerts are mailed.
    """
    _check(kind, AlertKind, "alert kind")
    _check(severity, AlertSeverity, "alert severity")
    inserted = _insert_ignore(
        session,
        Alert.__table__,
        {
            "kind": kind,
            "severity": severity,
            "account_id": account_id,
            "subject": secrets.redact(subject),
            "detail": _redact_json(dict(detail or {})),
            "dedup_key": dedup_key,
            "created_at": _now(now),
        },
    )
    if not inserted:
        return None
    return session.scalars(select(Alert).where(Alert.dedup_key == dedup_key)).one()


def pending_alerts(session: Session, kinds: Iterable[str] | None = None) -> list[Alert]:
    """Alerts not yet notified (and not resolved meanwhile), oldest first."""
    query = select(Alert).where(Alert.notified_at.is_(None), Alert.resolved_at.is_(None))
    if kinds is not None:
        query = query.where(Alert.kind.in_(list(kinds)))
    return list(session.scalars(query.order_by(Alert.created_at, Alert.id)))


def mark_notified(session: Session, ids: Iterable[int], *, now: datetime | None = None) -> int:
    """Mark alerts as sent to people; returns how many were newly marked."""
    ids = list(ids)
    if not ids:
        return 0
    return _orm_update(
        session, update(Alert).where(Alert.id.in_(ids), Alert.notified_at.is_(None)).values(notified_at=_now(now))
    )


def resolve_alert(session: Session, dedup_key: str, *, now: datetime | None = None) -> bool:
    """Mark an alert resolved (e.g. the token works again); False when none is open."""
    statement = update(Alert).where(Alert.dedup_key == dedup_key, Alert.resolved_at.is_(None))
    return _orm_update(session, statement.values(resolved_at=_now(now))) == 1


# ---------------------------------------------------------------------------------------------
# collection: cursors, feedback, metrics


def get_cursor(session: Session, account_id: str, stream: str) -> str | None:
    """Where collection of ``stream`` (e.g. "comments", "mentions") for an account stopped."""
    row = session.get(Cursor, (account_id, stream), populate_existing=True)
    return row.cursor if row else None


def set_cursor(session: Session, account_id: str, stream: str, cursor: str, *, now: datetime | None = None) -> None:
    """Move a collection cursor (insert or update in one statement, safe against races)."""
    now = _now(now)
    table = Cursor.__table__
    values = {"account_id": account_id, "stream": stream, "cursor": cursor, "updated_at": now}
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        maker = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = maker(table).values(**values)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[table.c.account_id, table.c.stream],
                set_={"cursor": stmt.excluded.cursor, "updated_at": stmt.excluded.updated_at},
            )
        )
        return
    existing = session.get(Cursor, (account_id, stream))
    if existing is None:
        session.add(Cursor(**values))
    else:
        existing.cursor, existing.updated_at = cursor, now
    session.flush()


_FEEDBACK_REQUIRED = ("account_id", "platform", "remote_id", "author", "text")
_FEEDBACK_OPTIONAL = ("post_remote_id", "url", "created_at", "collected_at", "department", "route_reason", "hostile")


def add_feedback(session: Session, items: Iterable[Any], *, now: datetime | None = None) -> int:
    """Store collected comments; ones already stored (same platform, account, remote id) are
    ignored, so overlapping collection windows are harmless. Returns how many were new.

    Each item has ``account_id``, ``platform``, ``remote_id``, ``author``, ``text`` and
    optionally ``post_remote_id``, ``url``, ``created_at`` (default: ``collected_at``),
    ``collected_at`` (default: now), ``department``, ``route_reason``, ``hostile``.
    """
    now = _now(now)
    inserted = 0
    for raw in items:
        item = _as_dict(raw)
        # An empty text is a real comment (an image, a sticker); a missing one is a bug.
        missing = [key for key in _FEEDBACK_REQUIRED if item.get(key) in (None, "") and key != "text"]
        if item.get("text") is None:
            missing.append("text")
        if missing:
            raise LedgerError(f"feedback item {item.get('remote_id')!r} lacks {missing}")
        values = {key: item[key] for key in _FEEDBACK_REQUIRED}
        values.update({key: item.get(key) for key in _FEEDBACK_OPTIONAL})
        values["collected_at"] = values["collected_at"] or now
        values["created_at"] = values["created_at"] or values["collected_at"]
        values["hostile"] = bool(values["hostile"])
        inserted += _insert_ignore(session, FeedbackItem.__table__, values)
    return inserted


def feedback_for_digest(session: Session, department: str | None = None) -> list[FeedbackItem]:
    """Feedback not yet sent in a digest (for one department, or all), oldest first."""
    query = select(FeedbackItem).where(FeedbackItem.digest_sent_at.is_(None))
    if department is not None:
        query = query.where(FeedbackItem.department == department)
    return list(session.scalars(query.order_by(FeedbackItem.created_at, FeedbackItem.id)))


def mark_digest_sent(session: Session, ids: Iterable[int], *, now: datetime | None = None) -> int:
    ids = list(ids)
    if not ids:
        return 0
    statement = update(FeedbackItem).where(FeedbackItem.id.in_(ids), FeedbackItem.digest_sent_at.is_(None))
    return _orm_update(session, statement.values(digest_sent_at=_now(now)))


_POST_METRIC_FIELDS = ("impressions", "likes", "reposts", "replies", "quotes", "clicks")


def add_post_metrics(
    session: Session, account_id: str, metrics: Iterable[Any], *, collected_at: datetime | None = None
) -> int:
    """Append one snapshot per post (``PostMetrics`` values or mappings); returns the count.

    Each snapshot is linked to the delivery that published the post, when the ledger has one.
    """
    collected_at = _now(collected_at)
    rows = [_as_dict(m) for m in metrics]
    if not rows:
        return 0
    remote_ids = sorted({str(r["remote_id"]) for r in rows})
    delivery_ids = dict(
        session.execute(
            select(Delivery.remote_id, func.min(Delivery.id))
            .where(and_(Delivery.account_id == account_id, Delivery.remote_id.in_(remote_ids)))
            .group_by(Delivery.remote_id)
        ).all()
    )
    for row in rows:
        remote_id = str(row["remote_id"])
        values = {f: row.get(f) for f in _POST_METRIC_FIELDS}
        for counter in ("likes", "reposts", "replies", "quotes"):
            values[counter] = values[counter] or 0
        session.add(
            PostMetric(
                account_id=account_id,
                delivery_id=row.get("delivery_id") or delivery_ids.get(remote_id),
                remote_id=remote_id,
                collected_at=collected_at,
                extra=dict(row.get("extra") or {}),
                **values,
            )
        )
    session.flush()
    return len(rows)


def add_account_metrics(
    session: Session, account_id: str, metrics: Any, *, collected_at: datetime | None = None
) -> AccountMetric:
    """Append one snapshot of an account's figures (an ``AccountMetrics`` value or mapping)."""
    values = _as_dict(metrics)
    row = AccountMetric(
        account_id=account_id,
        collected_at=_now(collected_at),
        followers=values.get("followers"),
        posts=values.get("posts"),
        views=values.get("views"),
        extra=dict(values.get("extra") or {}),
    )
    session.add(row)
    session.flush()
    return row


__all__ = [
    "DEFAULT_STALE_AFTER",
    "CancelResult",
    "Claim",
    "DuplicatePublish",
    "EntryResult",
    "LedgerError",
    "PlanResult",
    "UnknownRecord",
    "UpsertResult",
    "add_account_metrics",
    "add_feedback",
    "add_post_metrics",
    "approve_deliveries",
    "cancel_deliveries",
    "claim_for_sending",
    "due_deliveries",
    "feedback_for_digest",
    "get_cursor",
    "get_delivery",
    "idempotency_key",
    "mark_digest_sent",
    "mark_failed",
    "mark_needs_attention",
    "mark_notified",
    "mark_published",
    "pending_alerts",
    "plan_delivery",
    "raise_alert",
    "record_verification",
    "refresh_entry_status",
    "reschedule_delivery",
    "resolve_alert",
    "set_cursor",
    "set_entry_status",
    "stale_sending",
    "upsert_accounts",
    "upsert_entry",
]
