"""
### Koho health check

Daily at 06:30 JST (before `accounts_sync` and the morning posts) and on demand: checks that
every account's connection exists and its token was valid at the last `accounts_sync`, that the
Airflow pools from `deploy/pools.json` exist, that the triggerer runs, that the ledger is
migrated, that the mail relay answers, and that the clocks agree. The task fails with a
Japanese summary when something is wrong, and the PR section gets it by mail.

From a shell: `python -m koho.doctor`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from koho.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="koho_doctor",
    schedule="30 6 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["koho", "operations"],
    doc_md=__doc__,
)
def koho_doctor():
    @task
    def diagnose() -> list[dict]:
        from koho.doctor.tasks import run_doctor

        return run_doctor()

    diagnose()


koho_doctor()
