"""
### A city's own DAG on Koho's operators (example)

Koho's platform operators (`koho.platforms.operators`) are the public API for a city's own
workflows; the read-side DAGs are built from the same ones. This example, triggered by hand:

1. **targets** lists the active Mastodon and Bluesky accounts from the ledger as
   `{platform, conn_id, account_id}`;
2. **account_metrics** and **comments** read each of them — one mapped task per account on the
   `koho_collect` pool, so one failing or rate-limited account never stops the others. With
   `account_id` the comments' cursor lives in the ledger: the next run reads only newer ones, and
   a run after an outage catches up. `push_records=False` keeps residents' comments (personal
   data) out of XCom; the task's result still says how many were read and what quota they used;
3. **verify** checks the general X account's token;
4. **announce** posts the text given at trigger time once to the city's Mastodon account, within
   that account's posting budget (shared with Koho's own deliveries to it).

Copy it into `dags/`, change the platforms, connection ids and text to the city's own.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from koho.dag_defaults import DEFAULT_ARGS, START_DATE
from koho.platforms.operators import (
    FetchAccountMetricsOperator,
    FetchCommentsOperator,
    PublishPostOperator,
    VerifyCredentialsOperator,
)


@dag(
    dag_id="example_own_dag",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["koho", "example"],
    doc_md=__doc__,
    params={"text": Param("【こほ市】本日の窓口は17時までです。", type="string", minLength=1)},
)
def example_own_dag():
    @task
    def targets() -> list[dict[str, str]]:
        from koho.collection.targets import collection_targets

        return collection_targets(platforms=("mastodon", "bluesky"))

    accounts = targets()
    FetchAccountMetricsOperator.partial(task_id="account_metrics", pool="koho_collect").expand_kwargs(accounts)
    FetchCommentsOperator.partial(task_id="comments", pool="koho_collect", push_records=False).expand_kwargs(accounts)
    VerifyCredentialsOperator(task_id="verify", platform="x", conn_id="koho_city_x", account_id="city-x")
    PublishPostOperator(
        task_id="announce",
        platform="mastodon",
        conn_id="koho_city_mastodon",
        account_id="city-mastodon",
        text="{{ params.text }}",
        idempotency_key="example-own-dag-{{ run_id }}",
    )


example_own_dag()
