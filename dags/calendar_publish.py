"""
### Calendar publishing

Every five minutes, around the clock (holidays included): finds the deliveries due in the next
few minutes — one per account and thread part, planned by **calendar_sync**, **adhoc_post** or
after an approval — and sends each time slot exactly on time.

* **due_slots** groups due deliveries by their time. Overdue ones (Airflow was down) go out at
  once within a grace period; older ones are parked for a person (`needs_attention`).
* **send_slot** (one mapped task per time slot) defers on the triggerer until just before the
  slot — no worker is held while waiting — then sends every account of the slot in parallel.
  Each delivery is claimed in the ledger first and published with a stable idempotency key, so a
  retry, a killed worker or an overlapping run never posts twice.
* **report** mails the PR section about anything that failed, with the reason and what to do.

See the **Koho calendar** view (Browse menu) for what is planned, published and failed.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from koho.dag_defaults import DEFAULT_ARGS, START_DATE
from koho.delivery.operators import SendSlotOperator

INTERVAL = timedelta(minutes=5)


@dag(
    dag_id="calendar_publish",
    schedule=INTERVAL,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=3,  # a run waiting on its last slot must not hold back the next one
    default_args=DEFAULT_ARGS,
    tags=["koho", "calendar", "publishing"],
    doc_md=__doc__,
)
def calendar_publish():
    @task(retries=3, retry_delay=timedelta(seconds=10))
    def due_slots(**context) -> list[dict]:
        from koho.delivery.tasks import due_slots as find
        from koho.ledger.db import Ledger

        # The run takes on the future slots it returns, so overlapping runs never wake twice for one slot.
        run = f"{context['dag'].dag_id}/{context['run_id']}"
        return find(Ledger.from_airflow(), horizon=INTERVAL + timedelta(minutes=1), run_id=run)

    send = SendSlotOperator.partial(
        task_id="send_slot",
        pool="koho_publish",
        retries=3,
        retry_delay=timedelta(seconds=15),
        map_index_template="{{ task.slot['at'] }}",
    ).expand(slot=due_slots())

    @task(trigger_rule="all_done")
    def report(outcomes: list) -> dict:
        from koho.delivery.tasks import report_slots

        return report_slots(outcomes)

    report(send.output)


calendar_publish()
