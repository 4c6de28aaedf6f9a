"""
### Calendar approval

Started by **calendar_sync**, once per revision of an entry marked `approval: true`
(run id `approval__<entry>__r<revision>`). Nothing of the entry is sent before this run says so.

* **approve_post** shows a PR approver each account's text exactly as it will be posted (fitted
  per platform, threads split into parts) under **Required Actions**, and mails the PR section
  that an approval is waiting. Approvers: the users in the Variable `koho_approvers` (JSON list
  of user ids) if set, otherwise anyone allowed to act on this DAG.
  * **Approve** releases the deliveries; **calendar_publish** sends them at their time.
  * **Reject** marks the entry rejected and cancels its deliveries.
  * **No answer** by the deadline (10 minutes before the publish time unless
    `KOHO_APPROVAL_DEADLINE_MINUTES` says otherwise): the post is not published, an
    `approval_timeout` alert is mailed and the task fails. To ask again, set a new time in the
    calendar (a new revision starts a new approval run).
* **kick_publish** (after an approval) starts **calendar_publish** so a post approved shortly
  before its time still goes out on time.

A revision superseded before the answer (the entry changed again) is skipped: its successor has
its own approval run.
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag

from koho.access import PR_ROLE
from koho.calendar.operators import EntryApprovalOperator
from koho.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="calendar_approval",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=64,  # one per entry waiting for a decision
    default_args=DEFAULT_ARGS,
    tags=["koho", "calendar", "approval"],
    doc_md=__doc__,
    # PR approvers answer the requests: editing this DAG is what lets a role answer its Required
    # Actions under the FAB auth manager (roles from scripts/koho_auth.py).
    access_control={PR_ROLE: {"DAGs": {"can_read", "can_edit"}, "DAG Runs": {"can_read"}}},
    params={
        "entry_id": Param("", type="string", title="Entry id", description="The calendar entry to approve."),
        "revision": Param(
            1,
            type="integer",
            minimum=1,
            title="Revision",
            description="The entry revision the approval is for (see the calendar view).",
        ),
    },
)
def calendar_approval():
    approve = EntryApprovalOperator(
        task_id="approve_post",
        entry_id="{{ params.entry_id }}",
        revision="{{ params.revision }}",
        retries=0,  # a human answer cannot be asked twice; a crash is visible and re-triggered by hand
    )
    kick_publish = TriggerDagRunOperator(
        task_id="kick_publish",
        trigger_dag_id="calendar_publish",
        trigger_run_id="kick__approval__{{ params.entry_id }}__r{{ params.revision }}",
        skip_when_already_exists=True,
    )
    approve >> kick_publish


calendar_approval()
