"""Time slots: deliveries due at one instant go out together, threads in order, accounts in parallel,
on time; and which slots ``due_slots`` hands to the publishing DAG."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import select

from koho.delivery.sender import DeliveryOutcome
from koho.delivery.slots import Slot, group_into_slots, send_slot, wait_until
from koho.delivery.tasks import LATE_GRACE, due_slots
from koho.ledger import accounts as ledger_accounts
from koho.ledger import deliveries as ledger_deliveries
from koho.ledger.models import Delivery
from koho.timeutil import utcnow
from tests.unit.delivery.delivery_helpers import T0, account_row, add_entry, plan


def row(id_, due, entry="e1", account="a", part=0, revision=1):
    return SimpleNamespace(id=id_, due_at=due, entry_id=entry, account_id=account, part_index=part, revision=revision)


def test_grouping_by_instant_with_threads_chained():
    later = T0 + timedelta(minutes=30)
    slots = group_into_slots(
        [
            row(3, T0, account="b", part=1),
            row(1, T0 + timedelta(microseconds=400), account="a"),
            row(2, T0, account="b", part=0),
            row(4, later, account="a", entry="e2"),
            row(5, T0, account="c", entry="e3"),
        ]
    )
    assert [s.at for s in slots] == [T0, later]  # microseconds do not split a slot
    assert slots[0].chains == ((1,), (2, 3), (5,))  # b's thread in part order, one chain per account
    assert slots[1].chains == ((4,),) and slots[0].size == 4
    assert Slot.from_dict(slots[0].as_dict()) == slots[0]


class FakeSender:
    """Records calls; each send takes ``delay`` seconds; ``fail`` lists deliveries that do not publish."""

    def __init__(self, delay: float = 0.0, fail: frozenset[int] = frozenset()):
        self.delay, self.fail, self.calls = delay, fail, []
        self.lock = threading.Lock()

    def send(self, delivery_id: int) -> DeliveryOutcome:
        started = time.monotonic()
        time.sleep(self.delay)  # stands for a platform call
        with self.lock:
            self.calls.append((delivery_id, started))
        status = "failed" if delivery_id in self.fail else "published"
        return DeliveryOutcome(delivery_id, "e", "a", "x", 0, status)


def test_accounts_go_in_parallel_and_a_chain_stops_at_a_failed_part():
    sender = FakeSender(delay=0.2, fail=frozenset({11}))
    slot = Slot(utcnow(), (*tuple((i,) for i in range(1, 9)), (11, 12, 13)))
    started = time.monotonic()
    outcomes = send_slot(sender, slot, wait=False)
    took = time.monotonic() - started
    assert took < 0.2 * 3  # nine chains of 0.2 s each, in parallel
    sent = [d for d, _ in sender.calls]
    assert 12 not in sent and 13 not in sent  # part 2 would answer a post that does not exist
    assert sorted(o.delivery_id for o in outcomes) == [*range(1, 9), 11]


def test_parts_of_a_thread_go_one_after_the_other():
    sender = FakeSender(delay=0.05)
    send_slot(sender, Slot(utcnow(), ((1, 2, 3),)), wait=False)
    starts = dict(sender.calls)
    assert starts[1] < starts[2] < starts[3] and starts[3] - starts[1] >= 0.1


def test_wait_until_sleeps_exactly_the_remaining_time():
    clock = [datetime(2026, 4, 1, tzinfo=UTC)]
    slept: list[float] = []
    wait_until(clock[0] + timedelta(seconds=2.5), sleep=slept.append, clock=lambda: clock[0])
    wait_until(clock[0] - timedelta(seconds=1), sleep=slept.append, clock=lambda: clock[0])
    assert slept == [2.5]

    target = utcnow() + timedelta(seconds=0.3)
    wait_until(target)
    assert abs((utcnow() - target).total_seconds()) < 0.05


def test_send_slot_waits_for_its_instant():
    sent_at: list[datetime] = []

    class Clocked(FakeSender):
        def send(self, delivery_id: int) -> DeliveryOutcome:
            sent_at.append(utcnow())
            return super().send(delivery_id)

    at = utcnow() + timedelta(seconds=0.4)
    send_slot(Clocked(), Slot(at, ((1,), (2,))))
    assert len(sent_at) == 2
    assert all(0 <= (moment - at).total_seconds() < 0.05 for moment in sent_at)


# -- due_slots ----------------------------------------------------------------------------------


def _planned(ledger, entry_id: str, due: datetime, accounts=("a",)) -> list[int]:
    add_entry(ledger, entry_id, accounts=list(accounts), text=f"{entry_id} のお知らせです。", due=due)
    return plan(ledger, entry_id).deliveries


def _status(ledger, delivery_id: int) -> Delivery:
    with ledger.session(readonly=True) as session:
        return session.get(Delivery, delivery_id)


def test_due_slots_picks_what_is_due_within_the_horizon(ledger):
    with ledger.session() as session:
        ledger_accounts.upsert_accounts(session, [account_row("a", "x"), account_row("b", "mastodon")])
    now = utcnow()
    soon_ids = _planned(ledger, "soon", now + timedelta(minutes=2), accounts=("a", "b"))
    _planned(ledger, "later", now + timedelta(minutes=30))
    add_entry(ledger, "waiting", accounts=["a"], text="承認待ちです。", due=now + timedelta(minutes=1), approval=True)
    plan(ledger, "waiting")

    slots = due_slots(ledger, horizon=timedelta(minutes=6))

    assert len(slots) == 1
    assert sorted(i for chain in slots[0]["chains"] for i in chain) == sorted(soon_ids)  # never awaiting approval


def test_overdue_within_grace_goes_now_and_beyond_grace_waits_for_a_person(ledger):
    with ledger.session() as session:
        ledger_accounts.upsert_accounts(session, [account_row("a", "x")])
    now = utcnow()
    [late] = _planned(ledger, "late", now - timedelta(minutes=20))
    [stale] = _planned(ledger, "stale", now - LATE_GRACE - timedelta(minutes=1))

    slots = due_slots(ledger, horizon=timedelta(minutes=6))

    [slot] = slots
    assert slot["chains"] == [[late]]
    at = datetime.fromisoformat(slot["at"])
    assert abs((at - now).total_seconds()) < 5  # sent at once, not at its old time
    parked = _status(ledger, stale)
    assert parked.status == "needs_attention" and "re-plan or cancel" in parked.last_error


def test_deliveries_left_sending_are_reclaimed_only_once_stale(ledger):
    with ledger.session() as session:
        ledger_accounts.upsert_accounts(session, [account_row("a", "x"), account_row("b", "x")])
    now = utcnow()
    [dead] = _planned(ledger, "dead", now - timedelta(minutes=30))
    [busy] = _planned(ledger, "busy", now - timedelta(minutes=1), accounts=("b",))
    with ledger.session() as session:
        ledger_deliveries.claim_for_sending(session, dead, "calendar_publish/r1", now=now - timedelta(minutes=20))
        ledger_deliveries.claim_for_sending(session, busy, "calendar_publish/r2", now=now - timedelta(seconds=30))

    slots = due_slots(ledger, horizon=timedelta(minutes=6), stale_after=timedelta(minutes=15))

    chains = [c for s in slots for c in s["chains"]]
    assert chains == [[dead]]  # the one being sent right now is left to its sender
    with ledger.session(readonly=True) as session:
        assert {d.id: d.status for d in session.scalars(select(Delivery))} == {dead: "sending", busy: "sending"}


def test_overlapping_runs_never_take_the_same_future_slot(ledger):
    with ledger.session() as session:
        ledger_accounts.upsert_accounts(session, [account_row("a", "x"), account_row("b", "x")])
    now = utcnow()
    ids = _planned(ledger, "soon", now + timedelta(minutes=2), accounts=("a", "b"))
    [overdue] = _planned(ledger, "overdue", now - timedelta(minutes=10))

    first = due_slots(ledger, horizon=timedelta(minutes=6), run_id="calendar_publish/scheduled-1")
    second = due_slots(ledger, horizon=timedelta(minutes=6), run_id="calendar_publish/kick-1")
    again = due_slots(ledger, horizon=timedelta(minutes=6), run_id="calendar_publish/scheduled-1")

    def ids_of(slots):
        return sorted(i for s in slots for chain in s["chains"] for i in chain)

    assert ids_of(first) == sorted([*ids, overdue])
    assert ids_of(second) == [overdue]  # overdue ones: anyone; the future slot stays with its run
    assert ids_of(again) == sorted([*ids, overdue])  # a retry of the same run still sees its own
    assert {_status(ledger, i).dag_run_id for i in ids} == {"calendar_publish/scheduled-1"}
    assert {_status(ledger, i).status for i in ids} == {"planned"}
    # An ad-hoc run's mark does not hold a delivery back from calendar_publish.
    with ledger.session() as session:
        session.execute(Delivery.__table__.update().where(Delivery.id == ids[0]).values(dag_run_id="adhoc_post/r1"))
    assert ids[0] in ids_of(due_slots(ledger, horizon=timedelta(minutes=6), run_id="calendar_publish/kick-2"))
