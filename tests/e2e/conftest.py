"""End-to-end fixtures: a real Airflow (its own home and SQLite metadata DB), the sandbox with
the demo city's accounts, Koho's ledger, and a real SMTP server (aiosmtpd) catching mail."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest

from sandbox.bootstrap import register_accounts
from sandbox.server import SandboxServer
from scripts.demo_connections import local_smtp_connection
from scripts.koho_env import airflow_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> dict[str, str]:
    """A migrated Airflow home for this test session; returns the environment to run Airflow with."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = airflow_env(ROOT, home)
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run(
        ["airflow", "pools", "import", str(ROOT / "deploy" / "pools.json")],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return env


@pytest.fixture
def demo_city(airflow_home, sandbox: SandboxServer, mailbox, tmp_path) -> dict:
    """The demo accounts registered in the sandbox and their connections as AIRFLOW_CONN_* variables."""
    from koho.accounts.sync import registry_rows
    from koho.config import load_config

    rows = registry_rows(load_config())
    tokens = {row["id"]: secrets.token_urlsafe(24) for row in rows}
    connections = register_accounts(sandbox.url, rows, tokens)
    ledger_file = tmp_path / "ledger.db"
    _, smtp_port = mailbox
    env = dict(airflow_home)
    for conn_id, fields in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)
    env["AIRFLOW_CONN_KOHO_DB"] = json.dumps({"conn_type": "sqlite", "host": str(ledger_file)})
    env["AIRFLOW_CONN_KOHO_SMTP"] = json.dumps(local_smtp_connection("127.0.0.1", smtp_port))
    return {
        "env": env,
        "rows": rows,
        "tokens": tokens,
        "connections": connections,
        "ledger_url": f"sqlite:///{ledger_file}",
        "mailbox": mailbox[0],
    }


def dags_test(env: dict[str, str], dag_id: str, *, conf: dict | None = None, timeout: int = 300):
    """``airflow dags test`` in a subprocess; returns the completed process (output captured)."""
    cmd = ["airflow", "dags", "test", dag_id]
    if conf is not None:
        cmd += ["--conf", json.dumps(conf)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
