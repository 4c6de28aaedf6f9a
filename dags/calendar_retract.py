"""
### Retract a published calendar post

Koho never deletes a post because a calendar file changed; a person decides, here. Trigger
with the **entry id**, optionally the **accounts** (all published ones when empty), and tick
**confirm**.

* **plan** lists the entry's published posts (every revision; thread replies first).
* **delete_post** (one per post) deletes it through the platform's API (the city website's
  page and feed entry, by Koho itself). Where the API cannot delete (Instagram, LINE
  messages), it writes a *delete by hand* instruction naming the post.
* **report** marks the entry cancelled (nothing more of it is sent), mails the PR section the
  list — deleted, to delete by hand, failed — and fails if any deletion failed.

Also change the calendar file (`status: cancelled` or remove the entry) so it says what stays.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from koho.access import PR_ROLE
from koho.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="calendar_retract",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["koho", "calendar"],
    doc_md=__doc__,
    # The PR section may run it on demand (FAB auth manager; roles from scripts/koho_auth.py).
    access_control={PR_ROLE: {"DAGs": {"can_read", "can_edit"}, "DAG Runs": {"can_read", "can_create"}}},
    params={
        "entry_id": Param(
            "",
            type="string",
            minLength=1,
            title="Entry id",
            description="The calendar entry whose published posts are deleted.",
        ),
        "accounts": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Accounts",
            description="Account ids to delete on (empty: every account it was published on).",
        ),
        "confirm": Param(
            False,
            type="boolean",
            title="Confirm",
            description_md="Tick to **delete** the posts. This cannot be undone.",
        ),
    },
)
def calendar_retract():
    @task(retries=1)
    def plan(**context) -> list[dict]:
        from koho.calendar import tasks

        return tasks.retract_plan(dict(context["params"]))

    @task(retries=2, retry_delay=timedelta(seconds=30), map_index_template="{{ post_label }}", multiple_outputs=False)
    def delete_post(target: dict) -> dict:
        from airflow.sdk import get_current_context

        from koho.calendar.retract import delete_one

        get_current_context()["post_label"] = f"{target['account_id']} {target['remote_id']}"
        return delete_one(target)

    @task(trigger_rule="all_done", multiple_outputs=False)
    def report(results: list, **context) -> dict:
        from koho.calendar import tasks

        run = context.get("dag_run")
        by = getattr(run, "triggering_user_name", None) if run else None
        return tasks.retract_report(dict(context["params"]), list(results or []), by)

    report(delete_post.expand(target=plan()))


calendar_retract()
