"""Send one delivery exactly once: claim it in the ledger, publish through its account's publisher
(the platform's hook, or the adapter of a channel such as the website), record.

The order is what makes "exactly once" hold across killed workers and retries:

1. the ledger claim (``planned`` -> ``sending``) lets exactly one process send; a claim on a
   row left ``sending`` by a dead worker says ``maybe_sent_before``;
2. the publisher's ``publish_once`` reconciles first in that case, then publishes with the
   delivery's stable idempotency key;
3. the outcome is recorded: published (remote id, URL), failed with a reason a person can act
   on, back to planned when the platform surely did not publish, or left ``sending`` when the
   outcome is unknown (the next claim reconciles).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from koho.config import KohoConfig, load_config
from koho.delivery.publishers import Publication, Publisher, publisher_for
from koho.ledger import accounts, deliveries, entries
from koho.ledger.db import Ledger
from koho.ledger.models import Account, CalendarEntry, Delivery
from koho.platforms.errors import (
    AuthExpired,
    NotSupported,
    PermanentlyRejected,
    PlatformError,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from koho.platforms.registry import hook_for
from koho.timeutil import utcnow

log = logging.getLogger(__name__)

#: ``factory(platform, conn_id, **options)`` -> a hook; ``options`` carry the account's settings from
#: the configuration (today ``write_budget``, only when the account has one).
HookFactory = Callable[..., Any]
#: ``$KOHO_STALE_AFTER_SECONDS``: how long a delivery may stay 'sending' before another attempt
#: reconciles and takes it over (default 15 minutes; longer than any platform call with retries).
STALE_AFTER_ENV = "KOHO_STALE_AFTER_SECONDS"


def default_stale_after() -> timedelta:
    raw = os.environ.get(STALE_AFTER_ENV)
    if not raw:
        return timedelta(minutes=15)
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{STALE_AFTER_ENV} must be a number of seconds, got {raw!r}") from None
    if seconds < 60:
        raise ValueError(f"{STALE_AFTER_ENV} must be at least 60 seconds (a platform call with its retries)")
    return timedelta(seconds=seconds)


#: A retry takes over deliveries its own earlier try left 'sending' once they are this old: long
#: enough for a request the dead process had in flight to have landed (or failed) on the platform,
#: so that reconciling sees it (a slow request landing after the takeover's reconciliation would
#: be a second post on a platform without an idempotency key).
OWN_RECLAIM_AFTER = timedelta(seconds=60)
#: Statuses of a thread's previous part in which it may still be published.
_PARENT_MAY_STILL_GO = frozenset({"planned", "sending", "awaiting_approval"})


@dataclass
class DeliveryOutcome:
    """What happened to one delivery; JSON-safe for XCom and reports (no secrets)."""

    delivery_id: int
    entry_id: str
    account_id: str
    platform: str
    part_index: int
    status: str  # published, failed, planned (retry later), sending (unknown), skipped
    remote_id: str | None = None
    url: str | None = None
    error: str | None = None
    due_at: str | None = None
    sent_at: str | None = None  # when the platform call started
    published_at: str | None = None
    late_seconds: float | None = None  # call start minus due time
    call_seconds: float | None = None  # duration of the platform call
    reconciled: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _advice(exc: PlatformError) -> str:
    """The error plus what a person should do about it."""
    if isinstance(exc, AuthExpired):
        return f"{exc} — renew the account's token in its Airflow connection, then re-run"
    if isinstance(exc, PermanentlyRejected):
        hints = {
            "duplicate": "the platform says this text was already posted; check the account",
            "too_long": "shorten the text or add a per-platform override",
            "bad_media": "check the image (format, size, public URL)",
            "forbidden": "the token lacks a permission; check the app's permissions",
        }
        return f"{exc} — {hints.get(exc.kind, 'correct the entry and plan it again')}"
    if isinstance(exc, NotSupported):
        return f"{exc} — post it by hand on the platform"
    return str(exc)


class Sender:
    """Sends deliveries for one task; holds the ledger, config and publishers it reuses across them."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        dag_run_id: str | None = None,
        hook_factory: HookFactory = hook_for,
        config: KohoConfig | None = None,
        stale_after: timedelta | None = None,
        reclaim_own: bool = False,
    ) -> None:
        self.ledger = ledger
        self.dag_run_id = dag_run_id
        self.hook_factory = hook_factory
        self.config = config or load_config()
        self.stale_after = default_stale_after() if stale_after is None else stale_after
        #: This is a retry of a task whose earlier try died (or failed) while sending: deliveries that
        #: try left 'sending' under the same DAG run are taken over at once (and reconciled first)
        #: instead of after ``stale_after``. Airflow runs one try of a task at a time.
        self.reclaim_own = reclaim_own
        self._publishers: dict[str, Publisher] = {}
        self._hook_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_lock = threading.Lock()

    def publisher(self, account: Account) -> Publisher:
        """One publisher per account for the whole task, shared by the slot's threads (one login
        each); accounts do not wait for each other's.

        This is where every publishing path (calendar slots, ad-hoc posts, emergency broadcasts)
        gets its publisher — the platform's hook or the channel's adapter — so the account's
        settings from the configuration are applied here once: its posting budget
        (``caps.write_budget``, else the policy's default for the platform). The budget lives in
        the hook, so it spans the task's deliveries for the account.
        """
        with self._locks_lock:
            lock = self._hook_locks[account.id]
        with lock:
            if account.id not in self._publishers:
                self._publishers[account.id] = publisher_for(
                    account.platform,
                    account.connection_id or "",
                    config=self.config,
                    hook_factory=self.hook_factory,
                    **self.hook_options(account.id),
                )
            return self._publishers[account.id]

    def hook(self, account: Account) -> Any:
        """The platform hook behind a platform account's publisher."""
        return self.publisher(account).hook

    def hook_options(self, account_id: str) -> dict[str, Any]:
        """The hook arguments the configuration gives this account (none when it sets nothing)."""
        budget = self.config.write_budget_for(account_id)
        if budget is None:
            return {}
        from koho.platforms.base import WriteBudget  # imports Airflow: only when a hook is made

        return {"write_budget": WriteBudget(budget.posts, budget.per_seconds)}

    def send(self, delivery_id: int) -> DeliveryOutcome:
        with self.ledger.session() as session:
            claim = deliveries.claim_for_sending(session, delivery_id, self.dag_run_id, stale_after=self.stale_after)
            if not claim.ok and self._left_by_earlier_try(claim.delivery):
                claim = deliveries.claim_for_sending(
                    session, delivery_id, self.dag_run_id, stale_after=OWN_RECLAIM_AFTER
                )
            delivery = claim.delivery
            account = accounts.get_account(session, delivery.account_id)
            entry = entries.get_entry(session, delivery.entry_id)
            parent = (
                deliveries.get_delivery(session, delivery.parent_delivery_id) if delivery.parent_delivery_id else None
            )
            snapshot = _Snapshot.of(delivery, account, entry, parent)
        outcome = snapshot.outcome("skipped")
        if not claim.ok:
            outcome.error = claim.reason
            if delivery.status == "published":
                outcome.status, outcome.remote_id, outcome.url = "published", delivery.remote_id, delivery.remote_url
            return outcome
        if snapshot.account_status != "active":
            return self._fail(
                snapshot, f"account {snapshot.account_id} is {snapshot.account_status}; not posted", retryable=False
            )
        if snapshot.parent_id is not None and not snapshot.parent_remote_id:
            if snapshot.parent_status in _PARENT_MAY_STILL_GO:
                # The previous part is still on its way (e.g. its outcome is being reconciled):
                # nothing was sent, so this part goes back to wait for it.
                return self._fail(
                    snapshot,
                    f"waiting for part {snapshot.part_index} of this thread (it is {snapshot.parent_status})",
                    retryable=True,
                )
            return self._fail(
                snapshot,
                "the previous part of this thread was not published, so this part cannot answer it",
                retryable=False,
            )
        started = utcnow()
        outcome.sent_at = started.isoformat()
        outcome.late_seconds = (started - snapshot.due_at).total_seconds()
        try:
            with self._claim_kept(delivery_id, snapshot.attempts):
                published = self.publisher(snapshot.account).publish_once(
                    snapshot.publication(),
                    idempotency_key=snapshot.key,
                    maybe_sent_before=claim.maybe_sent_before,
                    since=snapshot.planned_created_at - timedelta(minutes=10),
                )
        except (PermanentlyRejected, AuthExpired, NotSupported) as exc:
            return self._fail(snapshot, _advice(exc), retryable=False, started=started)
        except UnknownOutcome as exc:
            return self._unknown(snapshot, exc, started)
        except (RateLimited, TransientError) as exc:  # surely not applied: back to planned
            return self._fail(snapshot, f"{exc} — will be tried again", retryable=True, started=started)
        finished = utcnow()
        with self.ledger.session() as session:
            deliveries.mark_published(session, delivery_id, published.remote_id, published.url, finished)
            entries.refresh_entry_status(session, snapshot.entry_id)
        outcome.status, outcome.remote_id, outcome.url = "published", published.remote_id, published.url
        outcome.published_at = finished.isoformat()
        outcome.call_seconds = (finished - started).total_seconds()
        outcome.reconciled = bool(getattr(published, "reconciled", False))
        log.info(
            "delivery %s (%s part %s) published: %s",
            delivery_id,
            snapshot.account_id,
            snapshot.part_index,
            published.url or published.remote_id,
        )
        return outcome

    @contextmanager
    def _claim_kept(self, delivery_id: int, attempts: int) -> Iterator[None]:
        """Renew the claim every third of ``stale_after`` while the platform call runs: waits for
        rate-limit windows, budgets and unanswered requests can outlast ``stale_after``."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.stale_after.total_seconds() / 3):
                try:
                    with self.ledger.session() as session:
                        if not deliveries.renew_claim(session, delivery_id, attempts):
                            log.warning("delivery %s: the claim was lost while sending", delivery_id)
                            return
                except Exception:  # the ledger briefly unreachable: try again at the next beat
                    log.exception("delivery %s: could not renew the claim", delivery_id)

        keeper = threading.Thread(target=renew, name=f"claim-{delivery_id}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def _left_by_earlier_try(self, delivery: Delivery) -> bool:
        return (
            self.reclaim_own
            and delivery.status == "sending"
            and self.dag_run_id is not None
            and delivery.dag_run_id == self.dag_run_id
        )

    def _fail(
        self, snapshot: _Snapshot, reason: str, *, retryable: bool, started: datetime | None = None
    ) -> DeliveryOutcome:
        with self.ledger.session() as session:
            row = deliveries.mark_failed(session, snapshot.delivery_id, reason, retryable=retryable)
            if not retryable:
                entries.refresh_entry_status(session, snapshot.entry_id)
            status = row.status
        log.warning("delivery %s (%s): %s", snapshot.delivery_id, snapshot.account_id, reason)
        outcome = snapshot.outcome(status, error=reason)
        if started:
            outcome.sent_at = started.isoformat()
        return outcome

    def _unknown(self, snapshot: _Snapshot, exc: PlatformError, started: datetime) -> DeliveryOutcome:
        """Leave the delivery 'sending': the next claim (after stale_after) reconciles before posting."""
        reason = f"{exc} — Koho will check the account before trying again"
        log.warning("delivery %s (%s): outcome unknown: %s", snapshot.delivery_id, snapshot.account_id, exc)
        outcome = snapshot.outcome("sending", error=reason)
        outcome.sent_at = started.isoformat()
        return outcome


@dataclass
class _Snapshot:
    """What the sender needs from the ledger rows, read once inside the claim's transaction."""

    delivery_id: int
    entry_id: str
    origin: str
    account_id: str
    account: Account
    account_status: str
    platform: str
    part_index: int
    key: str
    attempts: int  # identifies this claim: a takeover by another run counts one more
    text: str
    due_at: datetime
    planned_created_at: datetime
    payload: dict[str, Any]
    parent_id: int | None
    parent_remote_id: str | None
    parent_status: str | None

    @classmethod
    def of(cls, delivery: Delivery, account: Account, entry: CalendarEntry, parent: Delivery | None) -> _Snapshot:
        return cls(
            delivery_id=delivery.id,
            entry_id=delivery.entry_id,
            origin=entry.origin,
            account_id=account.id,
            account=_detached(account),
            account_status=account.status,
            platform=account.platform,
            part_index=delivery.part_index,
            key=delivery.idempotency_key,
            attempts=delivery.attempts,
            text=delivery.text,
            due_at=delivery.due_at,
            planned_created_at=delivery.planned_created_at,
            payload={**(entry.payload or {}), "title": entry.title},
            parent_id=delivery.parent_delivery_id,
            parent_remote_id=parent.remote_id if parent is not None and parent.status == "published" else None,
            parent_status=parent.status if parent is not None else None,
        )

    def publication(self) -> Publication:
        return Publication(
            entry_id=self.entry_id,
            origin=self.origin,
            title=self.payload.get("title") or "",
            text=self.text,
            payload=self.payload,
            due_at=self.due_at,
            part_index=self.part_index,
            reply_to=self.parent_remote_id,
            created_at=self.planned_created_at,
        )

    def outcome(self, status: str, *, error: str | None = None) -> DeliveryOutcome:
        return DeliveryOutcome(
            delivery_id=self.delivery_id,
            entry_id=self.entry_id,
            account_id=self.account_id,
            platform=self.platform,
            part_index=self.part_index,
            status=status,
            error=error,
            due_at=self.due_at.isoformat(),
        )


def _detached(account: Account) -> Account:
    """A plain copy of the account row, usable after its session closed."""
    return Account(
        id=account.id,
        platform=account.platform,
        handle=account.handle,
        connection_id=account.connection_id,
        status=account.status,
    )
