"""
### Newsletter export

On the 1st of every month at 06:00 (Japan time), for the previous month: the calendar entries
with the **newsletter** channel that went out that month — plus newsletter-only entries — as an
Excel workbook (one sheet per category), the same rows as CSV and an HTML preview, written to
`channels.newsletter.output_dir` (policy.yaml). The editors (the PR section) get a mail saying
where the files are.

Trigger with **year** and **month** to export another month again (files are replaced).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from koho.access import PR_ROLE
from koho.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="newsletter_export",
    schedule="0 6 1 * *",  # START_DATE's zone (Asia/Tokyo): 06:00 JST on the 1st
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["koho", "newsletter"],
    doc_md=__doc__,
    # The PR section may run it on demand (FAB auth manager; roles from scripts/koho_auth.py).
    access_control={PR_ROLE: {"DAGs": {"can_read", "can_edit"}, "DAG Runs": {"can_read", "can_create"}}},
    params={
        "year": Param(
            None,
            type=["null", "integer"],
            minimum=2000,
            maximum=2100,
            title="Year",
            description="Empty: the month before the run.",
        ),
        "month": Param(None, type=["null", "integer"], minimum=1, maximum=12, title="Month"),
    },
)
def newsletter_export():
    @task(multiple_outputs=False)
    def export(**context) -> dict:
        from koho.channels.newsletter_export import run_export

        return run_export(dict(context["params"]), context.get("logical_date"))

    export()


newsletter_export()
