"""The distributed deployment, without Docker: docker-compose.yaml's topology (CeleryExecutor,
Postgres, Redis, api-server, scheduler, dag-processor, triggerer, Celery worker) as local
processes started by ``harness.distributed`` (as ``scripts/run_distributed.py`` does) from the
compose file's own settings.

The demo city is wired as in the other end-to-end tests (sandbox accounts as ``AIRFLOW_CONN_*``
variables given to every service, the worker included; a real SMTP server catching mail), then
``accounts_sync`` is triggered through the REST API like an operator would, and must succeed
with its tasks executed by the Celery worker and the ledger filled in Postgres.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, select, text

from harness.airflow_stack import Mailbox
from harness.distributed import DistributedAirflow, demo_city_env, reachable, tail
from harness.waiting import wait_for
from koho.ledger.db import Ledger, dispose_engine
from koho.ledger.models import Account, Alert
from sandbox.server import SandboxServer, free_port

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.postgres]

POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
DAG_ID = "accounts_sync"
STARTUP_TIMEOUT = 150
RUN_TIMEOUT = 150
FINISHED = {"success", "failed"}


@pytest.fixture(scope="module")
def servers_reachable() -> None:
    for (host, port), what in ((POSTGRES, "Postgres"), (REDIS, "Redis")):
        if not reachable(host, port):
            pytest.skip(f"{what} is not reachable on {host}:{port}: the distributed topology needs it")


@pytest.fixture(scope="module")
def city(servers_reachable, sandbox_server: SandboxServer) -> Iterator[dict]:
    """The demo city's accounts in the sandbox, their connections, and a mailbox."""
    sandbox_server.admin("POST", "/reset")
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        demo = demo_city_env(sandbox_server.url, controller.port)
        # One account's token is revoked on the platform: runs must still succeed, record it and mail.
        handle = json.loads(demo["env"]["AIRFLOW_CONN_KOHO_CITY_MASTODON"])["login"]
        sandbox_server.admin("POST", f"/accounts/mastodon/{handle}/revoke")
        yield {**demo, "mailbox": box}
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def distributed(city, tmp_path_factory) -> Iterator[DistributedAirflow]:
    # Every DAG of the folder would start on its schedule (deploy/airflow.env unpauses them at
    # creation): here they come up paused and the test unpauses the one it runs.
    env = {**city["env"], "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
    airflow = DistributedAirflow(
        workdir=tmp_path_factory.mktemp("distributed"), extra_env=env, startup_timeout=STARTUP_TIMEOUT, echo=print
    )
    with airflow:
        yield airflow
    print(f"distributed timings: {airflow.timings}")


def _wait_for_run(airflow: DistributedAirflow, api, run_id: str) -> dict:
    """The run once finished, or as it is at the deadline (the test then shows its task states)."""
    url = f"{airflow.base_url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
    last: dict = {}

    def finished() -> dict | None:
        airflow.check_alive()  # a dead service fails the test at once, with its log
        last.update(api.get(url, timeout=10).json())
        return dict(last) if last["state"] in FINISHED else None

    try:
        return wait_for(finished, timeout=RUN_TIMEOUT, interval=1, what=f"{DAG_ID} run {run_id} to finish")
    except TimeoutError:
        return last


def _diagnostics(airflow: DistributedAirflow, api, run_id: str) -> str:
    tis = api.get(f"{airflow.base_url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", timeout=10).json()
    states = [(ti["task_id"], ti["map_index"], ti["state"]) for ti in tis.get("task_instances", [])]
    logs = "\n".join(f"--- {name}\n{tail(service.log, 25)}" for name, service in airflow.services.items())
    return f"task instances: {states}\n{logs}"


@pytest.mark.timeout(STARTUP_TIMEOUT + RUN_TIMEOUT + 120)
def test_accounts_sync_runs_on_the_celery_worker(distributed: DistributedAirflow, city):
    airflow = distributed
    api = airflow.api_session()
    airflow.wait_for_dag(api, DAG_ID, timeout=90)
    response = api.patch(f"{airflow.base_url}/api/v2/dags/{DAG_ID}", json={"is_paused": False}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["is_paused"] is False

    triggered = time.monotonic()
    response = api.post(
        f"{airflow.base_url}/api/v2/dags/{DAG_ID}/dagRuns",
        timeout=10,
        json={"logical_date": None, "conf": {}, "note": "distributed e2e"},
    )
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    run = _wait_for_run(airflow, api, run_id)
    airflow.timings["run_s"] = time.monotonic() - triggered
    print(
        f"{DAG_ID} {run_id}: {run['state']} in {airflow.timings['run_s']:.1f}s "
        f"(topology healthy after {airflow.timings['healthy_s']:.1f}s)"
    )
    assert run["state"] == "success", _diagnostics(airflow, api, run_id)

    # The tasks went through Celery: the CeleryExecutor gave each task instance a Celery task id,
    # the worker received it, and the result backend (the metadata database) holds its success.
    tis = api.get(f"{airflow.base_url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", timeout=10).json()
    assert tis["total_entries"] == 3 + len(city["rows"]) - _inactive(city["rows"]), tis
    assert {ti["state"] for ti in tis["task_instances"]} == {"success"}
    assert {ti["queue"] for ti in tis["task_instances"]} == {"default"}
    engine = create_engine(airflow.metadata_url)
    try:
        with engine.connect() as conn:
            celery_ids = dict(
                conn.execute(
                    text(
                        "SELECT task_id || ':' || map_index, external_executor_id FROM task_instance "
                        "WHERE dag_id = :dag AND run_id = :run"
                    ),
                    {"dag": DAG_ID, "run": run_id},
                ).all()
            )
        assert len(celery_ids) == tis["total_entries"]
        assert all(celery_ids.values()), f"task instances without a Celery task id: {celery_ids}"

        def celery_results() -> dict[str, str]:
            with engine.connect() as conn:
                return dict(conn.execute(text("SELECT task_id, status FROM celery_taskmeta")).all())

        # A Celery task ends just after its task instance does (the worker reports once the task
        # process has exited): poll the result backend until the last result is in.
        results: dict[str, str] = {}

        def all_in() -> bool:
            results.clear()
            results.update(celery_results())
            return {results.get(i) for i in celery_ids.values()} == {"SUCCESS"}

        try:
            wait_for(all_in, timeout=30, interval=0.5, what="every Celery result")
        except TimeoutError:
            pass  # the assertion below names the task instances whose result is missing
    finally:
        engine.dispose()
    assert {key: results.get(i) for key, i in celery_ids.items() if results.get(i) != "SUCCESS"} == {}
    worker_log = airflow.log_path("airflow-worker").read_text(encoding="utf-8", errors="replace")
    missing = [key for key, celery_id in celery_ids.items() if f"[{celery_id}] received" not in worker_log]
    assert not missing, f"the Celery worker log does not show these tasks: {missing}"

    # The ledger, in its own Postgres database, holds the city's twelve accounts.
    ledger = Ledger(airflow.ledger_url)
    try:
        with ledger.session(readonly=True) as session:
            accounts = {a.id: a for a in session.scalars(select(Account))}
            alerts = {a.kind: a for a in session.scalars(select(Alert))}
    finally:
        dispose_engine(airflow.ledger_url)
    assert len(accounts) == 12
    assert accounts["city-mastodon"].verify_error
    assert accounts["city-line"].verify_error is None and accounts["city-line"].last_verified_at
    assert alerts["token_invalid"].account_id == "city-mastodon"

    # The report task, on the worker, reached the SMTP server through koho_smtp. (Unpausing may
    # also start today's scheduled run; the same alert is never mailed twice a day.)
    box = city["mailbox"]
    assert len(box.messages) == 1
    assert box.messages[0]["To"] == "koho@city.example.jp"
    assert "city-mastodon" in box.bodies()[0]

    # Tokens never reach a service's log.
    logs = "".join(service.log.read_text(encoding="utf-8", errors="replace") for service in airflow.services.values())
    assert not [account for account, token in city["tokens"].items() if token in logs]


def _inactive(rows: list[dict]) -> int:
    return sum(1 for row in rows if row["status"] != "active")
