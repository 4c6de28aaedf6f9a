"""The environment Airflow runs with on this machine (``make run``, end-to-end tests).

Shared settings come from ``deploy/airflow.env`` — the same file docker-compose.yaml loads —
and only what differs between an embedded and a container deployment (paths, executor,
databases) is added here.
"""

from __future__ import annotations

import os
from pathlib import Path


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{path.name}:{number}: expected KEY=VALUE, got {raw!r}")
        values[key.strip()] = value.strip()
    return values


def airflow_env(root: Path, home: Path | None = None, *, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Airflow commands: shared settings + this checkout's paths + SQLite + LocalExecutor."""
    env = dict(os.environ if base is None else base)
    env.update(read_env_file(root / "deploy" / "airflow.env"))
    home = home or root / ".airflow" / "home"
    home.mkdir(parents=True, exist_ok=True)
    venv_bin = root / ".venv" / "bin"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "KOHO_INCLUDE_DIR": str(root / "include"),
            "PYTHONPATH": os.pathsep.join([str(root / "plugins"), str(root)]),
            "PATH": os.pathsep.join([str(venv_bin), env.get("PATH", "")]),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env
