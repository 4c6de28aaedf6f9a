"""The named questions the workflows ask the ledger, and the writes that are not status changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from koho.ledger import accounts, deliveries, entries
from koho.ledger.db import Ledger
from koho.ledger.deliveries import PLANNED_MARGIN, PlannedPost
from koho.ledger.models import Delivery
from tests.unit.ledger.ledger_factories import T0, account_row, entry_row

HOUR = timedelta(hours=1)


def plan(session, entry_id: str, account_id: str = "city_x", due_at=T0, part_index: int = 0) -> Delivery:
    return deliveries.plan_delivery(
        session, entry_id=entry_id, account_id=account_id, revision=1, due_at=due_at, text="t", part_index=part_index
    ).delivery


def test_planned_slots_is_one_rule_for_every_caller(ledger: Ledger) -> None:
    with ledger.session() as s:
        accounts.upsert_accounts(s, [account_row("city_x"), account_row("website", platform="website")])
        for entry_id in ("cal", "thread", "emg", "failed", "attention", "web", "early", "late", "self"):
            origin = "emergency" if entry_id == "emg" else "calendar"
            entries.upsert_entry(s, entry_row(entry_id, origin=origin))
        plan(s, "cal")
        plan(s, "thread", due_at=T0 + HOUR)
        plan(s, "thread", due_at=T0 + HOUR, part_index=1)  # a thread is one post
        plan(s, "emg", due_at=T0 + 2 * HOUR)
        deliveries.mark_failed(s, plan(s, "failed").id, "rejected", retryable=False)
        deliveries.mark_needs_attention(s, plan(s, "attention").id, "outcome unknown")
        plan(s, "web", account_id="website")
        plan(s, "early", due_at=T0 - PLANNED_MARGIN - timedelta(seconds=1))
        plan(s, "late", due_at=T0 + PLANNED_MARGIN + timedelta(seconds=1))
        plan(s, "self")

    with ledger.session(readonly=True) as s:
        around = deliveries.planned_slots(s, since=T0, until=T0, exempt_accounts={"website"}, exclude_entry="self")
        onwards = deliveries.planned_slots(s, since=T0)
    assert sorted(around, key=lambda p: (p.due_at, p.entry_id)) == [
        PlannedPost("city_x", T0, "attention", False),  # may have gone out: it counts
        PlannedPost("city_x", T0, "cal", False),
        PlannedPost("city_x", T0 + HOUR, "thread", False),
        PlannedPost("city_x", T0 + 2 * HOUR, "emg", True),
    ]
    assert {p.entry_id for p in onwards} == {"attention", "cal", "thread", "emg", "web", "late", "self"}


def test_taking_on_leaves_what_another_run_of_the_same_workflow_holds(ledger: Ledger, seeded) -> None:
    seeded(entries=("e1", "e2", "e3", "e4"))
    with ledger.session() as s:
        free, ours, theirs, adhoc = (plan(s, e).id for e in ("e1", "e2", "e3", "e4"))
        sent = plan(s, "e4", account_id="city_x", part_index=1).id
        deliveries.claim_for_sending(s, sent, "adhoc_post/run")
        assert deliveries.take_on(s, [ours], "calendar_publish/run-1") == {ours}
        assert deliveries.take_on(s, [theirs], "calendar_publish/run-2") == {theirs}
        assert deliveries.take_on(s, [adhoc], "adhoc_post/run") == {adhoc}
    with ledger.session() as s:
        taken = deliveries.take_on(s, [free, ours, theirs, adhoc, sent], "calendar_publish/run-1")
        assert deliveries.take_on(s, [], "calendar_publish/run-1") == set()
    assert taken == {free, ours, adhoc}  # not run-2's, not one being sent
    with ledger.session(readonly=True) as s:
        held = {d.id: (d.status, d.dag_run_id) for d in deliveries.for_entry(s, "e3")}
    assert held == {theirs: ("planned", "calendar_publish/run-2")}


def test_due_or_stale_and_overdue(ledger: Ledger, seeded) -> None:
    seeded(entries=("e1", "e2", "e3", "e4"))
    with ledger.session() as s:
        soon = plan(s, "e1", due_at=T0 + 5 * timedelta(minutes=1)).id
        plan(s, "e2", due_at=T0 + 2 * HOUR)  # beyond the horizon
        stuck = plan(s, "e3", due_at=T0 - HOUR).id
        busy = plan(s, "e4", due_at=T0).id
        deliveries.claim_for_sending(s, stuck, "run", now=T0 - HOUR)
        deliveries.claim_for_sending(s, busy, "run", now=T0)
    with ledger.session(readonly=True) as s:
        due = deliveries.due_or_stale(s, until=T0 + HOUR, stale_before=T0 - timedelta(minutes=15))
        late = deliveries.overdue(s, due_before=T0 + HOUR)
    assert [d.id for d in due] == [stuck, soon]  # the live claim is left to its worker
    assert [d.id for d in late] == [soon]


def test_an_entry_removed_from_the_files_cannot_match_its_old_content(ledger: Ledger, seeded) -> None:
    seeded()
    with ledger.session() as s:
        entries.forget_content(s, "e1", "removed:")
        entries.forget_content(s, "e1", "removed:")  # once is enough
        assert entries.get_entry(s, "e1").content_hash == "removed:h1"
        again = entries.upsert_entry(s, entry_row("e1"))
    assert again.revised and again.entry.revision == 2


def test_entries_awaiting_approval_are_those_with_waiting_deliveries(
    ledger: Ledger, seeded: Callable[..., None]
) -> None:
    seeded(entries=())
    with ledger.session() as s:
        for entry_id, at in (("b", T0 + 2 * HOUR), ("a", T0 + HOUR), ("past", T0 - HOUR), ("none", T0 + HOUR)):
            entries.upsert_entry(s, entry_row(entry_id, publish_at=at, approval_required=True))
            if entry_id != "none":
                deliveries.plan_delivery(
                    s, entry_id=entry_id, account_id="city_x", revision=1, due_at=at, text="t", awaiting_approval=True
                )
    with ledger.session(readonly=True) as s:
        assert [e.id for e in entries.awaiting_approval(s, after=T0)] == ["a", "b"]
        assert [e.id for e in entries.due_between(s, T0, T0 + 3 * HOUR, unplanned=True)] == ["none"]
