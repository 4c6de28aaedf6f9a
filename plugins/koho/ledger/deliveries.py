"""Deliveries: the exactly-once state machine, and the questions the workflows ask about them.

The state machine is the only way to change a delivery's status:

* ``awaiting_approval`` -> ``planned``: :func:`approve_deliveries`
* ``planned`` -> ``sending``: :func:`claim_for_sending` (exactly one caller wins)
* ``sending`` (stale) -> ``sending``: :func:`claim_for_sending` again, with ``maybe_sent_before``
* ``sending`` -> ``planned``: :func:`mark_failed` with ``retryable`` (surely not posted)
* ``sending`` / ``planned`` / ... -> ``failed``: :func:`mark_failed`
* ``sending`` / ``planned`` / ``failed`` -> ``needs_attention``: :func:`mark_needs_attention`
* ``planned`` / ``awaiting_approval`` / ``needs_attention`` -> ``cancelled``: :func:`cancel_deliveries`
* anything -> ``published``: :func:`mark_published` (the platform is the truth)

Two writes change no status: :func:`take_on` marks planned deliveries as a publishing run's (so
overlapping runs do not wake twice for one slot) and :func:`renew_claim` keeps a live claim fresh.

Every transition is one conditional ``UPDATE ... WHERE status = <expected>``: the database,
not the Python code, decides who wins a race, on Postgres (row locks, re-checked WHERE) and on
SQLite (``BEGIN IMMEDIATE`` serialises writers) alike. A delivery left in ``sending`` by a
worker that died can be claimed again only after ``stale_after``, and the claim then says
``maybe_sent_before``: the caller must ask the platform whether the post exists before posting.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from koho.ledger._base import aware_now, clean_error, insert_ignore, reload
from koho.ledger.errors import DuplicatePublish
from koho.ledger.models import Account, CalendarEntry, Delivery, DeliveryStatus, EntryOrigin

log = logging.getLogger(__name__)

#: How long a delivery may sit in ``sending`` before another attempt may take it over. Longer
#: than any platform call with its retries (hooks give up well within a few minutes).
DEFAULT_STALE_AFTER = timedelta(minutes=15)

#: Namespace of delivery idempotency keys. Never change it: keys of planned deliveries would
#: change, and a retry would no longer be recognised by the platform as the same request.
IDEMPOTENCY_NAMESPACE = uuid.UUID("f5fb87b8-7a3a-437b-8330-7cc1cc7fb4d9")

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
    now = aware_now(now)
    key = idempotency_key(entry_id, account_id, revision, part_index)
    status = DeliveryStatus.AWAITING_APPROVAL if awaiting_approval else DeliveryStatus.PLANNED
    created = insert_ignore(
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
    """The delivery as the database has it now; :class:`UnknownRecord` when there is none."""
    return reload(session, Delivery, delivery_id)


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
    now = aware_now(now)
    table = Delivery.__table__
    claimed = {
        "status": DeliveryStatus.SENDING.value,
        "attempts": table.c.attempts + 1,
        "sending_since": now,
        "dag_run_id": dag_run_id,
        "updated_at": now,
    }
    if _transition(session, delivery_id, [DeliveryStatus.PLANNED.value], **claimed):
        return Claim(True, False, reload(session, Delivery, delivery_id))

    stale = session.execute(
        update(table)
        .where(
            table.c.id == delivery_id,
            table.c.status == DeliveryStatus.SENDING.value,
            or_(table.c.sending_since.is_(None), table.c.sending_since < now - stale_after),
        )
        .values(**claimed)
    )
    delivery = reload(session, Delivery, delivery_id)
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
    now = aware_now(now)
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
    now = aware_now(now)
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
        return reload(session, Delivery, delivery_id)
    delivery = reload(session, Delivery, delivery_id)
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
    now = aware_now(now)
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
        last_error=clean_error(reason),
        sending_since=None,
        updated_at=now,
    )
    delivery = reload(session, Delivery, delivery_id)
    if not done:
        log.warning("delivery %s is %s; failure not recorded: %s", delivery_id, delivery.status, clean_error(reason))
    return delivery


def mark_needs_attention(session: Session, delivery_id: int, reason: str, *, now: datetime | None = None) -> Delivery:
    """Park a delivery for a person: Koho cannot tell whether it was posted, or must not retry."""
    now = aware_now(now)
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
        last_error=clean_error(reason),
        sending_since=None,
        updated_at=now,
    )
    return reload(session, Delivery, delivery_id)


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
        .values(status=DeliveryStatus.PLANNED.value, updated_at=aware_now(now))
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
        updated_at=aware_now(now),
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
    values: dict[str, Any] = {"status": DeliveryStatus.CANCELLED.value, "updated_at": aware_now(now)}
    if reason:
        values["last_error"] = clean_error(f"cancelled: {reason}")
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
        reload(session, Delivery, delivery_id)
    return CancelResult(
        cancelled=cancelled_ids,
        in_flight=tuple(sorted(r.id for r in rest if r.status == DeliveryStatus.SENDING)),
        published=tuple(sorted(r.id for r in rest if r.status == DeliveryStatus.PUBLISHED)),
    )


def due_deliveries(
    session: Session,
    *,
    until: datetime,
    since: datetime | None = None,
    account_id: str | None = None,
    limit: int | None = None,
) -> list[Delivery]:
    """Planned deliveries due at or before ``until`` (and not before ``since``), earliest first."""
    query = select(Delivery).where(Delivery.status == DeliveryStatus.PLANNED.value, Delivery.due_at <= until)
    if since is not None:
        query = query.where(Delivery.due_at >= since)
    if account_id is not None:
        query = query.where(Delivery.account_id == account_id)
    query = query.order_by(Delivery.due_at, Delivery.id).limit(limit)
    return list(session.scalars(query))


def stale_sending(
    session: Session, *, older_than: timedelta = DEFAULT_STALE_AFTER, now: datetime | None = None
) -> list[Delivery]:
    """Deliveries stuck in ``sending`` longer than ``older_than`` (their worker likely died)."""
    cutoff = aware_now(now) - older_than
    query = select(Delivery).where(
        Delivery.status == DeliveryStatus.SENDING.value,
        or_(Delivery.sending_since.is_(None), Delivery.sending_since < cutoff),
    )
    return list(session.scalars(query.order_by(Delivery.sending_since, Delivery.id)))


def due_or_stale(session: Session, *, until: datetime, stale_before: datetime) -> list[Delivery]:
    """What a publishing run may send by ``until``: planned deliveries, and deliveries left
    ``sending`` since before ``stale_before`` (their worker died); earliest first."""
    query = select(Delivery).where(
        Delivery.due_at <= until,
        or_(
            Delivery.status == DeliveryStatus.PLANNED.value,
            (Delivery.status == DeliveryStatus.SENDING.value) & (Delivery.sending_since < stale_before),
        ),
    )
    return list(session.scalars(query.order_by(Delivery.due_at, Delivery.id)))


def overdue(session: Session, *, due_before: datetime) -> list[Delivery]:
    """Planned deliveries that were due before ``due_before`` and never went out."""
    query = select(Delivery).where(Delivery.status == DeliveryStatus.PLANNED.value, Delivery.due_at < due_before)
    return list(session.scalars(query.order_by(Delivery.due_at, Delivery.id)))


def take_on(session: Session, delivery_ids: Iterable[int], run_id: str) -> set[int]:
    """Mark planned deliveries as taken on by a publishing run (``dag_run_id``); returns those it got.

    A delivery is free when nobody took it on, this run did, or a run of another workflow did
    (``run_id`` is ``"<dag_id>/<run_id>"``: an ad-hoc run that tried and let go). Taking on is not
    a claim and leaves the status ``planned``: :func:`claim_for_sending` still decides who sends.
    """
    ids = list(delivery_ids)
    if not ids:
        return set()
    table = Delivery.__table__
    dag_prefix = run_id.split("/", 1)[0] + "/"
    free = or_(
        table.c.dag_run_id.is_(None),
        table.c.dag_run_id == run_id,
        ~table.c.dag_run_id.startswith(dag_prefix, autoescape=True),
    )
    taken = session.execute(
        update(table)
        .where(table.c.id.in_(ids), table.c.status == DeliveryStatus.PLANNED.value, free)
        .values(dag_run_id=run_id)
        .returning(table.c.id)
    ).scalars()
    return set(taken)


# ---------------------------------------------------------------------------------------------
# reads: what the workflows and views ask


#: Deliveries that count against caps and spacing: they went out, will, or may have.
COUNTING = (
    DeliveryStatus.PLANNED.value,
    DeliveryStatus.AWAITING_APPROVAL.value,
    DeliveryStatus.SENDING.value,
    DeliveryStatus.PUBLISHED.value,
    DeliveryStatus.NEEDS_ATTENTION.value,
)
#: How far before and after the times being judged planned posts matter: a daily cap looks at
#: the whole local day, spacing at hours; two days cover both whatever the time zone.
PLANNED_MARGIN = timedelta(days=2)


@dataclass(frozen=True)
class PlannedPost:
    """One post (the first part of a thread) already in the ledger, for the volume rules."""

    account_id: str
    due_at: datetime
    entry_id: str
    emergency: bool


def planned_slots(
    session: Session,
    *,
    since: datetime,
    until: datetime | None = None,
    exempt_accounts: Iterable[str] = (),
    exclude_entry: str | None = None,
) -> list[PlannedPost]:
    """The posts that count against caps and spacing around [since, until] (no end: all later).

    One rule for every caller: first parts only (a thread is one post), statuses in
    :data:`COUNTING`, due within :data:`PLANNED_MARGIN` of the window. ``exempt_accounts``
    (channels that are not social accounts, such as the website) never count;
    ``exclude_entry`` leaves out the entry being judged again.
    """
    query = (
        select(Delivery.account_id, Delivery.due_at, Delivery.entry_id, CalendarEntry.origin)
        .join(CalendarEntry, CalendarEntry.id == Delivery.entry_id)
        .where(
            Delivery.part_index == 0,
            Delivery.status.in_(COUNTING),
            Delivery.due_at >= since - PLANNED_MARGIN,
        )
    )
    if until is not None:
        query = query.where(Delivery.due_at <= until + PLANNED_MARGIN)
    exempt = sorted(set(exempt_accounts))
    if exempt:
        query = query.where(Delivery.account_id.not_in(exempt))
    if exclude_entry is not None:
        query = query.where(Delivery.entry_id != exclude_entry)
    rows = session.execute(query.order_by(Delivery.due_at, Delivery.id)).all()
    return [PlannedPost(r.account_id, r.due_at, r.entry_id, r.origin == EntryOrigin.EMERGENCY.value) for r in rows]


def for_entry(
    session: Session,
    entry_id: str,
    *,
    revision: int | None = None,
    status: str | None = None,
    last_part_first: bool = False,
) -> list[Delivery]:
    """An entry's deliveries (of one revision, in one status), by account then thread part."""
    query = _of_entry(select(Delivery), entry_id, revision, status, last_part_first)
    return list(session.scalars(query))


def with_accounts(
    session: Session,
    entry_id: str,
    *,
    revision: int | None = None,
    status: str | None = None,
    last_part_first: bool = False,
) -> list[tuple[Delivery, Account]]:
    """Like :func:`for_entry`, each delivery with its account."""
    query = select(Delivery, Account).join(Account, Account.id == Delivery.account_id)
    query = _of_entry(query, entry_id, revision, status, last_part_first)
    return [(d, a) for d, a in session.execute(query).all()]


def _of_entry(query: Any, entry_id: str, revision: int | None, status: str | None, last_part_first: bool) -> Any:
    """The filter and order :func:`for_entry` and :func:`with_accounts` share."""
    query = query.where(Delivery.entry_id == entry_id).execution_options(populate_existing=True)
    if revision is not None:
        query = query.where(Delivery.revision == revision)
    if status is not None:
        query = query.where(Delivery.status == status)
    part = Delivery.part_index.desc() if last_part_first else Delivery.part_index
    return query.order_by(Delivery.account_id, part)


def has_published(session: Session, entry_id: str) -> bool:
    """Whether any delivery of the entry (any revision) is out."""
    query = select(Delivery.id).where(Delivery.entry_id == entry_id, Delivery.status == DeliveryStatus.PUBLISHED.value)
    return session.scalar(query.limit(1)) is not None


def count_due(session: Session, entry_ids: Iterable[str], *, until: datetime) -> int:
    """How many planned deliveries of these entries are due by ``until``."""
    ids = list(entry_ids)
    if not ids:
        return 0
    query = select(func.count(Delivery.id)).where(
        Delivery.entry_id.in_(ids), Delivery.status == DeliveryStatus.PLANNED.value, Delivery.due_at <= until
    )
    return int(session.scalar(query) or 0)


def in_window(
    session: Session, start: datetime, end: datetime, *, account_id: str | None = None
) -> list[tuple[Delivery, CalendarEntry, Account]]:
    """Deliveries due in [start, end) with their entry and account (the calendar view's rows),
    ordered by entry, account, revision and part."""
    query = (
        select(Delivery, CalendarEntry, Account)
        .join(CalendarEntry, CalendarEntry.id == Delivery.entry_id)
        .join(Account, Account.id == Delivery.account_id)
        .where(Delivery.due_at >= start, Delivery.due_at < end)
    )
    if account_id:
        query = query.where(Delivery.account_id == account_id)
    query = query.order_by(Delivery.entry_id, Delivery.account_id, Delivery.revision, Delivery.part_index)
    return [(d, e, a) for d, e, a in session.execute(query).all()]


def first_published_between(session: Session, start: datetime, end: datetime) -> list[tuple[CalendarEntry, datetime]]:
    """Entries whose first published delivery went out in [start, end), with that instant, in
    the order they first went out."""
    first = (
        select(Delivery.entry_id, func.min(Delivery.published_at).label("first_published"))
        .where(Delivery.status == DeliveryStatus.PUBLISHED.value, Delivery.published_at.is_not(None))
        .group_by(Delivery.entry_id)
        .subquery()
    )
    query = (
        select(CalendarEntry, first.c.first_published)
        .join(first, first.c.entry_id == CalendarEntry.id)
        .where(first.c.first_published >= start, first.c.first_published < end)
        .order_by(first.c.first_published, CalendarEntry.id)
    )
    return [(e, at) for e, at in session.execute(query).all()]


def published_with_accounts(session: Session, entry_ids: Iterable[str]) -> list[tuple[Delivery, Account]]:
    """The published deliveries of these entries with their accounts, in the order they went out."""
    ids = list(entry_ids)
    if not ids:
        return []
    query = (
        select(Delivery, Account)
        .join(Account, Account.id == Delivery.account_id)
        .where(Delivery.entry_id.in_(ids), Delivery.status == DeliveryStatus.PUBLISHED.value)
        .order_by(Delivery.published_at, Delivery.account_id, Delivery.part_index)
    )
    return [(d, a) for d, a in session.execute(query).all()]
