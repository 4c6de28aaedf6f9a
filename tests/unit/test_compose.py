"""docker-compose.yaml: no Docker engine runs here, so the file is checked as data — services,
healthchecks, environment, mounts — and against the settings ``make run`` uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from scripts.koho_env import airflow_env, read_env_file

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def pinned(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M | re.I)
    assert match, f"{package} is not pinned in requirements.txt"
    return match.group(1)


def test_services_present(compose):
    services = set(compose["services"])
    assert {"postgres", "redis", "airflow-init", "sandbox", "mailcatcher", *AIRFLOW_SERVICES} <= services


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name == "airflow-init":
            continue
        assert "healthcheck" in service and service["healthcheck"]["test"], f"{name} has no healthcheck"


@pytest.mark.parametrize(("service", "command"), AIRFLOW_SERVICES.items())
def test_airflow_services_share_the_common_block(compose, service, command):
    common = compose["x-airflow-common"]
    svc = compose["services"][service]
    assert svc["command"] == command
    assert svc["image"] == common["image"]
    assert svc["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert svc["depends_on"].get("airflow-init", {}).get("condition") == "service_completed_successfully"


def test_image_matches_pinned_airflow(compose):
    image = compose["x-airflow-common"]["image"]
    assert f"apache/airflow:{pinned('apache-airflow')}-python3.11" in image


def test_environment_for_distributed_airflow(compose):
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__API__BASE_URL"]
    assert env["AIRFLOW_CONN_KOHO_DB"].startswith("postgresql://"), "the ledger lives in Postgres when distributed"
    assert "AIRFLOW_CONN_KOHO_SMTP" in env


def test_mounts_dags_plugins_and_include(compose):
    targets = {v.split(":")[1] for v in compose["x-airflow-common"]["volumes"]}
    assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= targets
    env = compose["x-airflow-common"]["environment"]
    assert env["KOHO_INCLUDE_DIR"] == "/opt/airflow/include"


def test_apiserver_and_scheduler_health_endpoints(compose):
    api = compose["services"]["airflow-apiserver"]["healthcheck"]["test"]
    assert any("/api/v2/version" in part for part in api)
    scheduler = compose["services"]["airflow-scheduler"]["healthcheck"]["test"]
    assert any(":8974/health" in part for part in scheduler)


def test_compose_and_make_run_share_settings(compose):
    """Both read deploy/airflow.env; neither overrides a shared setting with another value."""
    shared = read_env_file(ROOT / "deploy" / "airflow.env")
    assert compose["x-airflow-common"]["env_file"] == ["deploy/airflow.env"]
    compose_env = compose["x-airflow-common"]["environment"]
    local_env = airflow_env(ROOT, ROOT / ".airflow" / "test-home", base={})
    for key, value in shared.items():
        assert local_env[key] == value, f"make run overrides {key}"
        assert compose_env.get(key, value) == value, f"compose overrides {key}"
    # What must differ does differ, and nothing else the two define disagrees.
    assert local_env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    for key in ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",):
        assert local_env[key] == compose_env[key]


def test_init_migrates_both_databases(compose):
    script = "\n".join(compose["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in script
    assert "Ledger.from_airflow().migrate()" in script
    assert (ROOT / "deploy" / "postgres-init.sql").read_text().count("CREATE DATABASE koho") == 1
