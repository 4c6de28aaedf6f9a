"""
### Calendar sync

Every five minutes (and on demand) brings Koho's ledger in line with the posting calendar in
`include/calendar/` (YAML, CSV or Excel):

1. **sync_calendar** validates every entry — against the account registry and against what is
   already planned, so daily caps and spacing count earlier posts — and plans the deliveries of
   new and changed entries (one per account and thread part, plus the website). A changed entry
   gets a new revision and its old unsent deliveries are cancelled; an entry deleted from the
   files or set to `status: cancelled` has its unsent deliveries cancelled. An entry changed
   *after* it was published is never re-posted: it becomes `changed_after_publish` and the PR
   section is alerted (delete a post with **calendar_retract**).
2. **request_approval** starts one **calendar_approval** run per entry revision marked
   `approval: true` (a deterministic run id: asked once).
3. **kick_publish** starts **calendar_publish** at once when something was planned within its
   look-ahead, so a post added shortly before its time still goes out on time.
4. **report** raises alerts and mails the PR section; invalid entries are listed with file,
   line or sheet cell and field. The run then fails so it shows red — after every valid entry
   was synced.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from koho.access import PR_ROLE
from koho.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="calendar_sync",
    schedule="*/5 * * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["koho", "calendar"],
    doc_md=__doc__,
    # The PR section may run it on demand (FAB auth manager; roles from scripts/koho_auth.py).
    access_control={PR_ROLE: {"DAGs": {"can_read", "can_edit"}, "DAG Runs": {"can_read", "can_create"}}},
)
def calendar_sync():
    @task(retries=2, retry_delay=timedelta(seconds=20), multiple_outputs=False)
    def sync_calendar() -> dict:
        from koho.calendar import tasks

        return tasks.sync()

    @task
    def approval_runs(report: dict) -> list[dict]:
        from koho.calendar import tasks

        return tasks.approval_runs(report)

    @task
    def publish_kick(report: dict) -> list[dict]:
        from koho.calendar import tasks

        return tasks.publish_kick(report)

    @task(trigger_rule="all_done", multiple_outputs=False)
    def report(report: dict) -> dict:
        from koho.calendar import tasks

        return tasks.report(report)

    synced = sync_calendar()
    approvals = TriggerDagRunOperator.partial(
        task_id="request_approval",
        trigger_dag_id="calendar_approval",
        skip_when_already_exists=True,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(approval_runs(synced))
    kick = TriggerDagRunOperator.partial(
        task_id="kick_publish",
        trigger_dag_id="calendar_publish",
        skip_when_already_exists=True,
    ).expand_kwargs(publish_kick(synced))
    done = report(synced)
    [approvals, kick] >> done


calendar_sync()
