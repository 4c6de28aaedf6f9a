"""
### Ad-hoc post (臨時投稿)

Staff of any department post something outside the calendar: press **Trigger**, fill in the
form (accounts or groups, text, optional link and images, now or at a time in JST).

1. **check_and_record** checks everything at once — accounts and groups against the registry,
   the text fitted to every platform by the platform's own count, images, link, time, and the
   daily caps, spacing and quiet hours against what is already planned. Every problem is listed
   with its field and reason, and **if anything is wrong nothing is posted anywhere**. With
   *dry run* it only shows, per account, exactly the text(s) that would be posted with their
   length and limit, and which rules the post would break (the task's return value and log).
   Otherwise it records the post in the ledger (origin *adhoc*: the Koho calendar shows it).
2. Whoever triggered the run decides whether a **PR approver** must approve: the PR section's
   users (`include/config/posting.yaml`) need no approval; anyone else's post waits in
   **approve** (Required actions) and is dropped, and the PR section alerted, if nobody answers
   in time.
3. **release** / **send** publish it at its time, exactly once per account (the same ledger and
   sender as the calendar), and **settle** reports per account: link, or the reason it failed.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import dag, get_current_context, task

from koho.access import ADHOC_ACCESS
from koho.config.posting import settings_for_parse
from koho.dag_defaults import DEFAULT_ARGS, START_DATE
from koho.delivery.operators import SendSlotOperator
from koho.posting.params import adhoc_params


@dag(
    dag_id="adhoc_post",
    dag_display_name="臨時投稿 / Ad-hoc post",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    params=adhoc_params(),
    access_control=ADHOC_ACCESS,
    tags=["koho", "publishing", "forms"],
    doc_md=__doc__,
)
def adhoc_post():
    @task(retries=2, retry_delay=timedelta(seconds=10))
    def check_and_record() -> dict:
        from koho.posting import tasks
        from koho.posting.params import param_values

        context = get_current_context()
        dag_run = context["dag_run"]
        return tasks.check_and_record(
            param_values(context["params"]),
            run_id=context["run_id"],
            run_after=getattr(dag_run, "run_after", None),
            triggered_by=tasks.triggering_user(context),
        )

    @task.branch
    def gate(checked: dict) -> list[str]:
        from koho.posting import tasks

        return tasks.gate(checked)

    checked = check_and_record()
    route = gate(checked)

    approve = ApprovalOperator(
        task_id="approve",
        subject="臨時投稿の承認 / Approve an ad-hoc post: "
        "{{ ti.xcom_pull(task_ids='check_and_record')['check']['title'] }}",
        body="{{ ti.xcom_pull(task_ids='check_and_record')['check']['approval_body'] }}",
        response_timeout=timedelta(minutes=settings_for_parse().approval_timeout_minutes),
        retries=0,  # a second attempt would ask again; a timeout is an answer ("not approved")
    )

    @task(trigger_rule="none_failed_min_one_success")
    def release(checked: dict) -> dict:
        from koho.posting import tasks

        approval = get_current_context()["ti"].xcom_pull(task_ids="approve")
        return tasks.release(checked, approval)

    slot = release(checked)
    send = SendSlotOperator(
        task_id="send", slot=slot, pool="koho_publish", retries=3, retry_delay=timedelta(seconds=15)
    )

    @task(trigger_rule="all_done")
    def settle() -> dict:
        from koho.posting import tasks

        ti = get_current_context()["ti"]
        return tasks.settle(
            ti.xcom_pull(task_ids="check_and_record"), ti.xcom_pull(task_ids="approve"), ti.xcom_pull(task_ids="send")
        )

    route >> [approve, slot]
    approve >> slot
    send >> settle()


adhoc_post()
