"""Deliveries due at the same instant go out together, on time, from one task.

A city's 9:00 post goes to a dozen accounts at once. Resuming one deferred task per delivery
is serialised through the scheduler (about 2 s late at p50 for 30 tasks due together), so
Koho defers once per *time slot*, wakes a little early, waits the last seconds in-process and
then sends every delivery of the slot in parallel. Parts of a thread are sent one after the
other on their account (each answers the previous one); accounts are independent.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from koho.delivery.sender import DeliveryOutcome, Sender
from koho.ledger import deliveries
from koho.ledger.models import Delivery
from koho.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """Deliveries due at ``at``; ``chains`` lists each account's delivery ids in thread order."""

    at: datetime
    chains: tuple[tuple[int, ...], ...]

    def as_dict(self) -> dict:
        return {"at": self.at.isoformat(), "chains": [list(c) for c in self.chains]}

    @classmethod
    def from_dict(cls, data: dict) -> Slot:
        return cls(datetime.fromisoformat(data["at"]), tuple(tuple(c) for c in data["chains"]))

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.chains)


def group_into_slots(deliveries: Iterable[Delivery]) -> list[Slot]:
    """Group deliveries by due time (to the second); chain thread parts behind their first part."""
    by_account: dict[tuple[datetime, str, str, int], list[Delivery]] = defaultdict(list)
    for d in deliveries:
        due = d.due_at.replace(microsecond=0)
        by_account[(due, d.entry_id, d.account_id, d.revision)].append(d)
    slots: dict[datetime, list[tuple[int, ...]]] = defaultdict(list)
    for (due, *_), parts in sorted(by_account.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        slots[due].append(tuple(p.id for p in sorted(parts, key=lambda p: p.part_index)))
    return [Slot(at, tuple(chains)) for at, chains in sorted(slots.items())]


def due_chains(session, *, until: datetime, since: datetime | None = None) -> list[Slot]:
    """Slots of deliveries not yet sent that are due by ``until`` (whole threads, even if a part went out)."""
    return group_into_slots(deliveries.due_deliveries(session, until=until, since=since))


def wait_until(
    moment: datetime, *, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], datetime] = utcnow
) -> None:
    """Sleep until ``moment``; called only for the last seconds before a slot (the trigger did the rest)."""
    remaining = (moment - clock()).total_seconds()
    if remaining > 0:
        sleep(remaining)


def send_slot(sender: Sender, slot: Slot, *, max_workers: int = 16, wait: bool = True) -> list[DeliveryOutcome]:
    """Send every chain of ``slot`` in parallel at ``slot.at``; returns one outcome per delivery tried."""
    if wait:
        wait_until(slot.at)

    def run_chain(chain: tuple[int, ...]) -> list[DeliveryOutcome]:
        outcomes = []
        for delivery_id in chain:
            try:
                outcome = sender.send(delivery_id)
            except Exception:  # a bug or the ledger down: report it, keep the other accounts going
                log.exception("delivery %s: unexpected error", delivery_id)
                raise
            outcomes.append(outcome)
            if outcome.status != "published":
                break  # the next part would answer a post that does not exist
        return outcomes

    results: list[DeliveryOutcome] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(slot.chains)))) as pool:
        for future in [pool.submit(run_chain, chain) for chain in slot.chains]:
            try:
                results.extend(future.result())
            except Exception as exc:
                errors.append(exc)
    if errors:
        raise errors[0]
    return results
