"""The operator that sends one time slot: it defers until just before the slot, then sends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from koho.delivery.slots import Slot, send_slot
from koho.timeutil import utcnow


class SendSlotOperator(BaseOperator):
    """Send every delivery of one slot at its time, without holding a worker while waiting.

    The task defers on a ``DateTimeTrigger`` set ``lead_seconds`` before the slot (resuming a
    deferred task takes about a second), then waits the rest in-process and sends all accounts
    of the slot in parallel. Returns one outcome per delivery (JSON, no secrets).
    """

    template_fields: Sequence[str] = ("slot",)
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        slot: dict[str, Any],
        lead_seconds: float = 3.0,
        max_workers: int = 16,
        stale_after: timedelta = timedelta(minutes=15),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.slot = slot
        self.lead_seconds = lead_seconds
        self.max_workers = max_workers
        self.stale_after = stale_after

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        slot = Slot.from_dict(self.slot)
        wake = slot.at - timedelta(seconds=self.lead_seconds)
        if wake > utcnow():
            self.defer(trigger=DateTimeTrigger(moment=wake), method_name="execute_complete")
        return self._send(slot, context)

    def execute_complete(self, context: Any, event: Any = None) -> list[dict[str, Any]]:
        return self._send(Slot.from_dict(self.slot), context)

    def _send(self, slot: Slot, context: Any) -> list[dict[str, Any]]:
        from koho.delivery.sender import Sender
        from koho.ledger.db import Ledger

        run_id = f"{context['dag'].dag_id}/{context['run_id']}" if context else None
        sender = Sender(Ledger.from_airflow(), dag_run_id=run_id, stale_after=self.stale_after)
        outcomes = send_slot(sender, slot, max_workers=self.max_workers)
        published = sum(o.status == "published" for o in outcomes)
        self.log.info("slot %s: %s of %s deliveries published", slot.at.isoformat(), published, len(outcomes))
        return [o.as_dict() for o in outcomes]
