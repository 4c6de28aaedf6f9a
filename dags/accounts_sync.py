"""
### Account registry sync

Every morning (07:00 JST, holidays included) and on demand:

1. **load_registry** reads `include/config/` (accounts, departments, policy). Broken entries are
   reported with file, line and field; the valid ones carry on.
2. **upsert_accounts** mirrors the registry into Koho's ledger (`koho_db`).
3. **verify_credentials** asks each active account's platform who its token belongs to
   (one mapped task per account, so one broken platform never hides another).
4. **report** raises alerts for invalid or soon-to-expire tokens and configuration problems,
   and mails the PR section. The run fails at the end if the configuration had errors, so it
   shows red in the grid — after everything valid was done.

To renew a token: edit the account's connection (Admin → Connections), then trigger this DAG.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from koho.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="accounts_sync",
    schedule="0 7 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["koho", "accounts"],
    doc_md=__doc__,
)
def accounts_sync():
    @task
    def load_registry() -> dict:
        from koho.accounts import tasks

        return tasks.load_registry()

    @task
    def upsert_accounts(registry: dict) -> list[dict]:
        from koho.accounts import tasks

        return tasks.upsert_accounts(registry)

    @task(map_index_template="{{ account_label }}")
    def verify_credentials(account: dict) -> dict:
        from airflow.sdk import get_current_context

        from koho.accounts import tasks

        get_current_context()["account_label"] = account["id"]  # names the mapped task in the UI

        return tasks.verify_credentials(account)

    @task(trigger_rule="all_done")
    def report(registry: dict, results: list[dict]) -> dict:
        from koho.accounts import tasks

        return tasks.report(registry, results)

    registry = load_registry()
    active = upsert_accounts(registry)
    results = verify_credentials.expand(account=active)
    report(registry, results)


accounts_sync()
