"""The exactly-once delivery state machine, on SQLite and Postgres, including real races."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from koho import secrets
from koho.ledger import deliveries, entries
from koho.ledger.db import Ledger
from koho.ledger.errors import DuplicatePublish, UnknownRecord
from koho.ledger.models import Delivery
from tests.unit.ledger.ledger_factories import T0, entry_row

STALE = timedelta(minutes=15)


def plan(session: Session, entry_id: str = "e1", account_id: str = "city_x", **kwargs) -> Delivery:
    kwargs.setdefault("revision", 1)
    kwargs.setdefault("due_at", T0)
    kwargs.setdefault("text", "桜まつりを開催します")
    return deliveries.plan_delivery(session, entry_id=entry_id, account_id=account_id, now=T0, **kwargs).delivery


def planned_id(ledger: Ledger, seeded: Callable[..., None], **kwargs) -> int:
    seeded()
    with ledger.session() as s:
        return plan(s, **kwargs).id


# --- planning ---------------------------------------------------------------------------------


def test_idempotency_key_is_a_stable_uuid() -> None:
    key = deliveries.idempotency_key("e1", "city_x", 1, 0)
    assert key == deliveries.idempotency_key("e1", "city_x", 1, 0)
    assert uuid.UUID(key).version == 5  # LINE's X-Line-Retry-Key must be a UUID
    others = {
        deliveries.idempotency_key("e1", "city_x", 2, 0),
        deliveries.idempotency_key("e1", "city_x", 1, 1),
        deliveries.idempotency_key("e1", "city_y", 1, 0),
        deliveries.idempotency_key("e2", "city_x", 1, 0),
        deliveries.idempotency_key('e1", "city_x', "", 1, 0),  # no ambiguity from quoting
    }
    assert key not in others and len(others) == 5
    assert key == "5d009d9d-0210-55d6-9121-2865c2b8086c"  # pinned: changing it re-keys planned posts


def test_planning_twice_returns_the_first(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    with ledger.session() as s:
        first = deliveries.plan_delivery(s, entry_id="e1", account_id="city_x", revision=1, due_at=T0, text="a")
    with ledger.session() as s:
        again = deliveries.plan_delivery(
            s, entry_id="e1", account_id="city_x", revision=1, due_at=T0 + timedelta(hours=1), text="b"
        )
    assert first.created and not again.created
    assert again.delivery.id == first.delivery.id
    assert (again.delivery.text, again.delivery.due_at) == ("a", T0)
    d = first.delivery
    assert (d.status, d.attempts, d.part_index, d.planned_created_at) == ("planned", 0, 0, T0)
    assert d.idempotency_key == deliveries.idempotency_key("e1", "city_x", 1, 0)


def test_threads_and_revisions_are_separate_deliveries(session: Session, seeded: Callable[..., None]) -> None:
    seeded()
    head = plan(session)
    reply = plan(session, part_index=1, parent_delivery_id=head.id, text="続き")
    revised = plan(session, revision=2)
    assert len({head.id, reply.id, revised.id}) == 3
    assert reply.parent_delivery_id == head.id


def test_unique_key_prevents_double_planning(ledger: Ledger, seeded: Callable[..., None]) -> None:
    planned_id(ledger, seeded)
    with pytest.raises(IntegrityError), ledger.session() as s:  # same slot, different key
        s.add(
            Delivery(
                entry_id="e1",
                account_id="city_x",
                revision=1,
                part_index=0,
                idempotency_key="another-key",
                due_at=T0,
                text="x",
                planned_created_at=T0,
            )
        )
    with pytest.raises(IntegrityError), ledger.session() as s:  # same key, another slot
        s.add(
            Delivery(
                entry_id="e1",
                account_id="city_x",
                revision=9,
                idempotency_key=deliveries.idempotency_key("e1", "city_x", 1, 0),
                due_at=T0,
                text="x",
                planned_created_at=T0,
            )
        )


def test_concurrent_planning_plans_once(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    results = race(
        ledger,
        lambda s: (
            deliveries.plan_delivery(s, entry_id="e1", account_id="city_x", revision=1, due_at=T0, text="x").created
        ),
    )
    assert sorted(results) == [False] * (WORKERS - 1) + [True]


# --- claiming ---------------------------------------------------------------------------------


def test_claim_publish_lifecycle(ledger: Ledger, seeded: Callable[..., None]) -> None:
    delivery_id = planned_id(ledger, seeded)
    with ledger.session() as s:
        claim = deliveries.claim_for_sending(s, delivery_id, "run-1", now=T0)
    assert (claim.ok, claim.maybe_sent_before) == (True, False)
    d = claim.delivery
    assert (d.status, d.attempts, d.sending_since, d.dag_run_id) == ("sending", 1, T0, "run-1")

    with ledger.session() as s:
        refused = deliveries.claim_for_sending(s, delivery_id, "run-2", now=T0 + timedelta(minutes=1))
    assert not refused.ok and "run-1" in refused.reason and refused.delivery.attempts == 1

    with ledger.session() as s:
        d = deliveries.mark_published(s, delivery_id, "1234", "https://x.com/city/status/1234", now=T0)
    assert (d.status, d.remote_id, d.remote_url, d.published_at, d.sending_since) == (
        "published",
        "1234",
        "https://x.com/city/status/1234",
        T0,
        None,
    )
    with ledger.session() as s:
        assert deliveries.mark_published(s, delivery_id, "1234", None).remote_url == "https://x.com/city/status/1234"
        late = deliveries.claim_for_sending(s, delivery_id, "run-3", now=T0 + timedelta(days=1))
    assert not late.ok and late.reason == "it is published"

    with pytest.raises(DuplicatePublish, match="exists twice"), ledger.session() as s:
        deliveries.mark_published(s, delivery_id, "9999", None)


def test_retryable_failure_goes_back_to_planned(ledger: Ledger, seeded: Callable[..., None]) -> None:
    delivery_id = planned_id(ledger, seeded)
    secrets.register("tok-failure-secret-789")
    with ledger.session() as s:
        deliveries.claim_for_sending(s, delivery_id, "run-1", now=T0)
        d = deliveries.mark_failed(s, delivery_id, "503 from api (token tok-failure-secret-789)", retryable=True)
    assert (d.status, d.sending_since) == ("planned", None)
    assert "503" in d.last_error and "tok-failure-secret-789" not in d.last_error
    with ledger.session() as s:
        again = deliveries.claim_for_sending(s, delivery_id, "run-1", now=T0 + timedelta(minutes=1))
    assert (again.ok, again.maybe_sent_before, again.delivery.attempts) == (True, False, 2)


def test_final_failure_is_terminal(ledger: Ledger, seeded: Callable[..., None]) -> None:
    delivery_id = planned_id(ledger, seeded)
    with ledger.session() as s:
        deliveries.claim_for_sending(s, delivery_id, "run-1", now=T0)
        d = deliveries.mark_failed(s, delivery_id, "text too long for X: shorten the entry", retryable=False)
        assert d.status == "failed"
        assert not deliveries.claim_for_sending(s, delivery_id, "run-2").ok
        # a retryable failure cannot resurrect it
        assert deliveries.mark_failed(s, delivery_id, "later", retryable=True).status == "failed"
        # ...but the platform is the truth: found later by reconciliation, it is recorded
        assert deliveries.mark_published(s, delivery_id, "77", None).status == "published"
        assert deliveries.mark_failed(s, delivery_id, "too late", retryable=False).status == "published"


def test_stale_sending_is_reclaimed_with_a_warning(ledger: Ledger, seeded: Callable[..., None]) -> None:
    delivery_id = planned_id(ledger, seeded)
    with ledger.session() as s:
        assert deliveries.claim_for_sending(s, delivery_id, "run-1", now=T0).ok  # ...and the worker dies
    with ledger.session() as s:
        early = deliveries.claim_for_sending(s, delivery_id, "run-2", stale_after=STALE, now=T0 + timedelta(minutes=14))
        assert not early.ok and not early.maybe_sent_before
        assert deliveries.stale_sending(s, older_than=STALE, now=T0 + timedelta(minutes=14)) == []
        assert [d.id for d in deliveries.stale_sending(s, older_than=STALE, now=T0 + timedelta(minutes=16))] == [
            delivery_id
        ]
    with ledger.session() as s:
        later = T0 + timedelta(minutes=16)
        claim = deliveries.claim_for_sending(s, delivery_id, "run-2", stale_after=STALE, now=later)
    assert (claim.ok, claim.maybe_sent_before) == (True, True)
    assert (claim.delivery.attempts, claim.delivery.sending_since, claim.delivery.dag_run_id) == (2, later, "run-2")


def test_a_renewed_claim_does_not_go_stale_and_a_taken_over_one_cannot_be_renewed(
    ledger: Ledger, seeded: Callable[..., None]
) -> None:
    delivery_id = planned_id(ledger, seeded)
    with ledger.session() as s:
        first = deliveries.claim_for_sending(s, delivery_id, "run-1", now=T0)
    with ledger.session() as s:  # run-1 is alive, waiting for a rate-limit window, and renews
        assert deliveries.renew_claim(s, delivery_id, first.delivery.attempts, now=T0 + timedelta(minutes=10))
    with ledger.session() as s:
        assert not deliveries.claim_for_sending(
            s, delivery_id, "run-2", stale_after=STALE, now=T0 + timedelta(minutes=16)
        ).ok
    with ledger.session() as s:  # run-1 died after renewing: the claim goes stale from the renewal
        taken = deliveries.claim_for_sending(s, delivery_id, "run-2", stale_after=STALE, now=T0 + timedelta(minutes=26))
    assert taken.ok and taken.maybe_sent_before
    with ledger.session() as s:
        assert not deliveries.renew_claim(s, delivery_id, first.delivery.attempts, now=T0 + timedelta(minutes=27))
        assert deliveries.renew_claim(s, delivery_id, taken.delivery.attempts, now=T0 + timedelta(minutes=27))
        deliveries.mark_published(s, delivery_id, "1", None)
        assert not deliveries.renew_claim(s, delivery_id, taken.delivery.attempts, now=T0 + timedelta(minutes=28))


def test_awaiting_approval_is_not_claimable_until_approved(ledger: Ledger, seeded: Callable[..., None]) -> None:
    delivery_id = planned_id(ledger, seeded, awaiting_approval=True)
    with ledger.session() as s:
        claim = deliveries.claim_for_sending(s, delivery_id, "run-1")
        assert not claim.ok and claim.reason == "it is awaiting approval"
        assert deliveries.approve_deliveries(s, "e1") == (delivery_id,)
        assert deliveries.approve_deliveries(s, "e1") == ()
        assert deliveries.claim_for_sending(s, delivery_id, "run-1").ok


def test_unknown_delivery(session: Session) -> None:
    with pytest.raises(UnknownRecord):
        deliveries.claim_for_sending(session, 424242, "run-1")
    with pytest.raises(UnknownRecord):
        deliveries.mark_published(session, 424242, "1", None)


def test_needs_attention(ledger: Ledger, seeded: Callable[..., None]) -> None:
    delivery_id = planned_id(ledger, seeded)
    with ledger.session() as s:
        deliveries.claim_for_sending(s, delivery_id, "run-1", now=T0)
        d = deliveries.mark_needs_attention(s, delivery_id, "X timed out and its timeline is unreadable; check by hand")
        assert (d.status, d.sending_since) == ("needs_attention", None)
        assert not deliveries.claim_for_sending(s, delivery_id, "run-2", now=T0 + timedelta(days=1)).ok
        assert deliveries.mark_published(s, delivery_id, "55", None).status == "published"


# --- cancelling, rescheduling, listing ---------------------------------------------------------


def test_cancel_reports_what_it_could_not_cancel(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded(accounts=("a", "b", "c", "d"))
    with ledger.session() as s:
        ids = {acc: plan(s, account_id=acc).id for acc in ("a", "b", "c", "d")}
        deliveries.claim_for_sending(s, ids["b"], "run-1")
        deliveries.claim_for_sending(s, ids["c"], "run-1")
        deliveries.mark_published(s, ids["c"], "r-c", None)
        newer = plan(s, account_id="a", revision=2).id
    with ledger.session() as s:
        result = deliveries.cancel_deliveries(s, "e1", reason="event cancelled (rain)", below_revision=2)
        assert result == deliveries.CancelResult(
            cancelled=(ids["a"], ids["d"]), in_flight=(ids["b"],), published=(ids["c"],)
        )
        assert deliveries.get_delivery(s, ids["a"]).last_error == "cancelled: event cancelled (rain)"
        assert deliveries.get_delivery(s, newer).status == "planned"
        assert not deliveries.claim_for_sending(s, ids["a"], "run-2").ok
        only_a = deliveries.cancel_deliveries(s, "e1", account_ids=["a"])
        assert only_a.cancelled == (newer,)


def test_reschedule_only_before_sending(ledger: Ledger, seeded: Callable[..., None]) -> None:
    delivery_id = planned_id(ledger, seeded)
    later = T0 + timedelta(hours=2)
    with ledger.session() as s:
        assert deliveries.reschedule_delivery(s, delivery_id, later)
        d = deliveries.get_delivery(s, delivery_id)
        assert (d.due_at, d.planned_created_at) == (later, later)
        deliveries.claim_for_sending(s, delivery_id, "run-1")
        assert not deliveries.reschedule_delivery(s, delivery_id, T0)


def test_due_deliveries(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded(accounts=("a", "b"))
    with ledger.session() as s:
        soon = plan(s, account_id="a", due_at=T0 + timedelta(minutes=1)).id
        now_ = plan(s, account_id="b", due_at=T0).id
        plan(s, account_id="a", revision=2, due_at=T0 + timedelta(hours=1))
        plan(s, account_id="b", revision=2, due_at=T0, awaiting_approval=True)
    with ledger.session(readonly=True) as s:
        assert [d.id for d in deliveries.due_deliveries(s, until=T0 + timedelta(minutes=5))] == [now_, soon]
        assert [d.id for d in deliveries.due_deliveries(s, until=T0 + timedelta(minutes=5), account_id="a")] == [soon]
        assert [d.id for d in deliveries.due_deliveries(s, until=T0 + timedelta(minutes=5), limit=1)] == [now_]


def test_entry_status_follows_its_deliveries(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded(accounts=("a", "b"))
    with ledger.session() as s:
        a, b = plan(s, account_id="a").id, plan(s, account_id="b").id
        deliveries.claim_for_sending(s, a, "r")
        deliveries.mark_published(s, a, "1", None)
        assert entries.refresh_entry_status(s, "e1") == "planned"  # b is still pending
        deliveries.mark_failed(s, b, "account suspended by the platform", retryable=False)
        assert entries.refresh_entry_status(s, "e1") == "partially_published"
        entries.upsert_entry(s, entry_row("e1", content_hash="h2"))
        assert entries.refresh_entry_status(s, "e1") == "changed_after_publish"


# --- races: two workers, two connections -------------------------------------------------------

WORKERS = 4


def race(ledger: Ledger, action: Callable[[Session], object]) -> list[object]:
    """Run ``action`` in WORKERS threads, each in its own session, released at the same instant."""
    barrier = threading.Barrier(WORKERS)
    results: list[object] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            with ledger.session() as s:
                outcome = action(s)
            with lock:
                results.append(outcome)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    return results


def test_concurrent_claims_exactly_one_wins(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded(accounts=tuple(f"acc{i}" for i in range(8)))
    with ledger.session() as s:
        ids = [plan(s, account_id=f"acc{i}").id for i in range(8)]

    def claim_directly(s: Session, delivery_id: int) -> bool:
        return deliveries.claim_for_sending(s, delivery_id, "run").ok

    def read_then_claim(s: Session, delivery_id: int) -> bool:
        # What a task does: look at the delivery, then claim it. On SQLite a transaction that
        # read before writing fails with "database is locked" unless it began IMMEDIATE.
        deliveries.get_delivery(s, delivery_id)
        return deliveries.claim_for_sending(s, delivery_id, "run").ok

    for n, delivery_id in enumerate(ids):
        action = claim_directly if n % 2 else read_then_claim
        outcomes = race(ledger, lambda s, d=delivery_id, act=action: act(s, d))
        assert sorted(outcomes) == [False] * (WORKERS - 1) + [True]
        with ledger.session(readonly=True) as s:
            assert deliveries.get_delivery(s, delivery_id).attempts == 1


def test_claim_waits_for_an_open_competitor(ledger: Ledger, seeded: Callable[..., None]) -> None:
    """A claim made while another transaction holds its uncommitted claim must lose, not win."""
    delivery_id = planned_id(ledger, seeded)
    claimed, competing = threading.Event(), threading.Event()
    outcome: dict[str, float | bool] = {}

    def slow_winner() -> None:
        with ledger.session() as s:
            outcome["first"] = deliveries.claim_for_sending(s, delivery_id, "run-1").ok
            claimed.set()
            assert competing.wait(timeout=10)
            time.sleep(0.3)  # keeps the claim uncommitted while the competitor's claim is under way
            outcome["committing"] = time.monotonic()

    thread = threading.Thread(target=slow_winner)
    thread.start()
    assert claimed.wait(timeout=10)
    with ledger.session() as s:
        competing.set()
        second = deliveries.claim_for_sending(s, delivery_id, "run-2")
        returned = time.monotonic()
    thread.join()
    assert outcome["first"] is True and second.ok is False
    # it waited for the first transaction to end instead of deciding on what it saw before
    assert returned >= outcome["committing"]


def test_concurrent_stale_reclaims_exactly_one_wins(ledger: Ledger, seeded: Callable[..., None]) -> None:
    delivery_id = planned_id(ledger, seeded)
    with ledger.session() as s:
        deliveries.claim_for_sending(s, delivery_id, "dead-run", now=T0)
    later = T0 + timedelta(hours=1)
    outcomes = race(ledger, lambda s: deliveries.claim_for_sending(s, delivery_id, "run", stale_after=STALE, now=later))
    winners = [c for c in outcomes if c.ok]
    assert len(winners) == 1 and winners[0].maybe_sent_before
    with ledger.session(readonly=True) as s:
        assert deliveries.get_delivery(s, delivery_id).attempts == 2
