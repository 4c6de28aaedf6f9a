"""SendSlotOperator's one decision of its own: defer on the triggerer, or wait in the worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.sdk.exceptions import TaskDeferred

from koho.delivery.operators import SendSlotOperator
from koho.timeutil import utcnow


def operator(seconds_ahead: float, sent: list) -> SendSlotOperator:
    slot = {"at": (utcnow() + timedelta(seconds=seconds_ahead)).isoformat(), "chains": [[1]]}
    op = SendSlotOperator(task_id="send_slot", slot=slot, lead_seconds=20, min_defer_seconds=60)
    op._send = lambda slot, context: sent.append(slot.at) or []  # type: ignore[method-assign]
    return op


def test_a_slot_minutes_away_is_waited_for_on_the_triggerer():
    sent: list = []
    with pytest.raises(TaskDeferred) as deferred:
        operator(300, sent).execute({})
    wake = deferred.value.trigger.moment
    assert timedelta(seconds=270) < wake - utcnow() <= timedelta(seconds=280)  # 20 s of lead before the slot
    assert deferred.value.method_name == "execute_complete"
    assert sent == []


def test_a_slot_seconds_away_is_waited_for_in_the_worker():
    """Deferring for a few seconds would race Airflow's scheduler (apache/airflow#72716)."""
    sent: list = []
    op = operator(0, sent)
    op.execute({})
    assert len(sent) == 1


def test_the_threshold_counts_from_the_wake_up_not_the_slot():
    sent: list = []
    operator(75, sent).execute({})  # wakes in 55 s: not worth a deferral
    assert len(sent) == 1
    with pytest.raises(TaskDeferred):
        operator(90, []).execute({})  # wakes in 70 s
