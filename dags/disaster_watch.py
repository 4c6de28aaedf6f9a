"""
### Disaster-information watcher (防災情報の監視)

Two DAGs in one workflow:

* **disaster_watch** runs all the time (`@continuous`, one run at a time): its **watch** task
  waits on the triggerer — no worker held — polling the Japan Meteorological Agency's feed
  (`include/config/emergency.yaml`: feed, the city's area codes, the warning kinds it posts
  about) for up to 30 minutes. When the feed lists a new warning for the city it drafts a post
  from the city's template, records the draft once in the ledger (a bulletin listed twice, or met
  again later, never makes a second draft) and starts one **disaster_draft** run per draft; the
  next watch starts at once.
* **disaster_draft** asks a crisis officer (Required actions, role KohoCrisis) to approve the
  draft — its text is shown and can be corrected — within the configured time. Approved, it
  triggers **emergency_broadcast** with the text; rejected or unanswered, nothing is posted (an
  unanswered draft alerts the crisis and PR addresses).

Nothing is ever posted without a person's approval.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task

from koho.access import WATCH_ACCESS
from koho.config.emergency import approval_timeout_for_parse
from koho.dag_defaults import DEFAULT_ARGS, START_DATE
from koho.emergency.watch import DraftApprovalOperator, JmaWatchOperator


@dag(
    dag_id="disaster_watch",
    dag_display_name="防災情報の監視 / Disaster-information watcher",
    schedule="@continuous",
    max_active_runs=1,
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    access_control=WATCH_ACCESS,
    tags=["koho", "emergency", "watcher"],
    doc_md=__doc__,
)
def disaster_watch():
    watch = JmaWatchOperator(task_id="watch", retries=2, retry_delay=timedelta(seconds=30))

    @task
    def review_requests(drafts: list | None) -> list[dict]:
        from koho.emergency.watch import review_requests

        return review_requests(drafts)

    TriggerDagRunOperator.partial(
        task_id="request_review",
        trigger_dag_id="disaster_draft",
        skip_when_already_exists=True,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(review_requests(watch.output))


disaster_watch()


@dag(
    dag_id="disaster_draft",
    dag_display_name="防災情報の下書き承認 / Approve a disaster-information draft",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=16,
    default_args=DEFAULT_ARGS,
    params={
        "entry_id": Param("", type="string", title="Draft entry"),
        "key": Param("", type="string", title="Draft key"),
        "message": Param("", type="string", format="multiline", title="Draft text"),
        "link": Param(None, type=["null", "string"], title="Link"),
        "severity": Param("high", type="string", enum=["critical", "high", "advisory"], title="Severity"),
        "document": Param(None, type=["null", "string"], title="Source bulletin"),
    },
    access_control=WATCH_ACCESS,
    tags=["koho", "emergency", "watcher"],
    doc_md=__doc__,
)
def disaster_draft():
    approve = DraftApprovalOperator(
        task_id="approve",
        subject="緊急投稿の下書きを承認 / Approve an emergency draft ({{ params.severity }})",
        params={"message": Param("", type="string", format="multiline", title="配信する本文 / Text to broadcast")},
        response_timeout=approval_timeout_for_parse(),
        retries=0,
    )

    @task
    def broadcast_conf() -> dict:
        from koho.emergency.watch import broadcast_conf

        context = get_current_context()
        return broadcast_conf(context["params"], context["ti"].xcom_pull(task_ids="approve"))

    conf = broadcast_conf()
    broadcast = TriggerDagRunOperator(
        task_id="broadcast",
        trigger_dag_id="emergency_broadcast",
        conf=conf,
        trigger_run_id="{{ run_id }}",
        skip_when_already_exists=True,
    )

    @task(trigger_rule="all_done")
    def settle() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from koho.emergency.watch import settle_draft
        from koho.ledger.db import Ledger

        context = get_current_context()
        result = settle_draft(
            Ledger.from_airflow(),
            context["params"],
            context["ti"].xcom_pull(task_ids="approve"),
            timeout=approval_timeout_for_parse(),
        )
        if result["status"] == "cancelled":
            raise AirflowFailException(f"draft {result['entry_id']} was not approved in time; nothing was posted")
        return result

    approve >> conf >> broadcast >> settle()


disaster_draft()
