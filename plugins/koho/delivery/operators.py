"""The operator that sends one time slot: it defers until just before the slot, then sends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from koho.timeutil import utcnow

# The slot and sender modules are imported when the task runs, not when the DAG file is parsed:
# they pull in text fitting (twitter-text compiles large regexes, over a second) and the ledger.


class SendSlotOperator(BaseOperator):
    """Send every delivery of one slot at its time, without holding a worker while waiting.

    The task defers on a ``DateTimeTrigger`` set ``lead_seconds`` before the slot, then waits the
    rest in-process and sends all accounts of the slot in parallel. Returns one outcome per
    delivery (JSON, no secrets).

    Why 20 seconds of lead: resuming a deferred task means starting a task process, about a
    second on an idle machine, but it competes for the CPU with whatever else starts at that
    moment — on a two-core machine a publishing run starting its thirty slot tasks delayed a
    resume by 11 s (``bench/lateness.py``). Waking early puts that cost well before the slot;
    what remains at the slot itself (a sleeping thread waking up, a few HTTP calls) is cheap. The
    price is a worker process idle for the lead time per slot.

    Why a wait shorter than ``min_defer_seconds`` is not deferred: when a trigger fires within
    seconds of the deferral, Airflow's scheduler may read the deferring process's exit ("success")
    only after the resumed try has started, and fail that try as changed externally
    (apache/airflow#72716, open in 3.3). The retry costs seconds, and once sending had begun a
    minute more before it may take the deliveries over. A slot this close is waited for in the
    worker instead.
    """

    template_fields: Sequence[str] = ("slot",)
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        slot: dict[str, Any],
        lead_seconds: float = 20.0,
        min_defer_seconds: float = 60.0,
        max_workers: int = 16,
        stale_after: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.slot = slot
        self.lead_seconds = lead_seconds
        self.min_defer_seconds = min_defer_seconds
        self.max_workers = max_workers
        self.stale_after = stale_after  # None: $KOHO_STALE_AFTER_SECONDS or 15 minutes, read when sending

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        from koho.delivery.slots import Slot

        slot = Slot.from_dict(self.slot)
        wake = slot.at - timedelta(seconds=self.lead_seconds)
        if (wake - utcnow()).total_seconds() > self.min_defer_seconds:
            self.defer(trigger=DateTimeTrigger(moment=wake), method_name="execute_complete")
        return self._send(slot, context)

    def execute_complete(self, context: Any, event: Any = None) -> list[dict[str, Any]]:
        from koho.delivery.slots import Slot

        return self._send(Slot.from_dict(self.slot), context)

    def _send(self, slot: Any, context: Any) -> list[dict[str, Any]]:
        from koho.delivery.sender import Sender
        from koho.delivery.slots import send_slot
        from koho.ledger.db import Ledger

        run_id = f"{context['dag'].dag_id}/{context['run_id']}" if context else None
        ti = context.get("ti") if context else None
        retry = bool(ti is not None and (getattr(ti, "try_number", 1) or 1) > 1)
        sender = Sender(Ledger.from_airflow(), dag_run_id=run_id, stale_after=self.stale_after, reclaim_own=retry)
        outcomes = send_slot(sender, slot, max_workers=self.max_workers)
        published = sum(o.status == "published" for o in outcomes)
        self.log.info("slot %s: %s of %s deliveries published", slot.at.isoformat(), published, len(outcomes))
        return [o.as_dict() for o in outcomes]
