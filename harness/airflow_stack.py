"""A real, local Airflow for end-to-end tests and benchmarks: the demo city against the sandbox.

``AirflowStack`` gives one self-contained world in a temporary folder:

* Airflow 3 (api-server, scheduler, dag-processor, triggerer; LocalExecutor, SQLite metadata DB
  in its own ``AIRFLOW_HOME``) started as separate processes, each in its own process group;
* the sandbox (the platforms) in a thread of this process, with the demo accounts registered
  and one ``AIRFLOW_CONN_*`` variable per account;
* Koho's ledger (a SQLite file, migrated, accounts mirrored);
* optionally a real SMTP server (aiosmtpd) catching mail.

Waiting is always on a condition with a deadline (:func:`harness.waiting.wait_for`), never on a
fixed sleep. Used by the end-to-end tests (through :mod:`harness.koho_stack`), ``bench/lateness.py``
and ``bench/exactly_once.py``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import requests
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_incrementing

from harness.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DB_ERROR_ATTEMPTS = 6


def _database_error(response: requests.Response) -> bool:
    """The api-server's answer to a failed metadata-DB statement (on SQLite: "database is locked")."""
    return response.status_code == 500 and "Database error" in response.text


@dataclass
class Mailbox:
    """An aiosmtpd handler keeping every message."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler protocol
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def bodies(self) -> list[str]:
        return [m.get_body(("html", "plain")).get_content() for m in self.messages]

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


def migrate_home(env: dict[str, str]) -> None:
    """``airflow db migrate`` and Koho's pools (deploy/pools.json) in the home ``env`` names."""
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run(
        ["airflow", "pools", "import", str(ROOT / "deploy" / "pools.json")],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def create_roles_and_users(env: dict[str, str], users_file: Path) -> None:
    """Koho's FAB roles and the demo users (``scripts/koho_auth.py``); passwords in ``users_file``."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "koho_auth.py"), "--users-file", str(users_file)],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )


def relaxed_config(target: Path, *, keep_caps: Iterable[str] = (), source: Path | None = None) -> Path:
    """A copy of include/config where volume rules do not get in the way of a test at any hour.

    Quiet hours off, no spacing, generous daily caps, no posting budgets, except the accounts in
    ``keep_caps`` whose own caps stay as configured (to prove that a cap is honoured).
    """
    import yaml

    source = source or ROOT / "include" / "config"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("departments.yaml", "emergency.yaml"):
        if (source / name).exists():
            shutil.copy(source / name, target / name)
    policy_doc = yaml.safe_load((source / "policy.yaml").read_text(encoding="utf-8"))
    policy_doc["caps"] = {"per_day": 500, "min_spacing_minutes": 0, "quiet_hours": "00:00-00:00"}
    # Koho's own posting budgets (LINE: 50 an hour) would pace a load test's hundreds of posts
    # like the real platform; the sandbox's limits are lifted for these runs, and so are these.
    policy_doc["write_budgets"] = {}
    policy_doc["holidays"] = "allow"
    channels = policy_doc.setdefault("channels", {})
    channels.setdefault("website", {})["output_dir"] = str(target.parent / "website")
    channels.setdefault("newsletter", {})["output_dir"] = str(target.parent / "newsletter")
    (target / "policy.yaml").write_text(yaml.safe_dump(policy_doc, allow_unicode=True), encoding="utf-8")
    accounts = yaml.safe_load((source / "accounts.yaml").read_text(encoding="utf-8"))
    keep = set(keep_caps)
    for account in accounts["accounts"]:
        caps = account.get("caps") or {}
        if account["id"] in keep:
            caps.setdefault("quiet_hours", "00:00-00:00")
            account["caps"] = caps
        else:
            account["caps"] = {"per_day": 500, "min_spacing_minutes": 0, "quiet_hours": "00:00-00:00"}
    (target / "accounts.yaml").write_text(yaml.safe_dump(accounts, allow_unicode=True), encoding="utf-8")
    return target


class AirflowStack:
    """See the module docstring. Use as a context manager; ``start()`` returns once the API answers."""

    def __init__(
        self,
        workdir: Path,
        *,
        config_dir: Path | None = None,
        calendar_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        mail: bool = True,
        components: Iterable[str] = COMPONENTS,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.home = self.workdir / "airflow-home"
        self.logs = self.workdir / "logs"
        self.config_dir = config_dir
        self.calendar_dir = calendar_dir or self.workdir / "calendar"
        self.calendar_dir.mkdir(parents=True, exist_ok=True)
        self.extra_env = dict(extra_env or {})
        self.mail = mail
        self.components = tuple(components)
        self.procs: dict[str, subprocess.Popen] = {}
        self._crashed_groups: list[int] = []  # process groups of components crashed by ``crash_and_restart``
        self.sandbox: Any = None
        self.mailbox: Mailbox | None = None
        self._smtp: Any = None
        self.password = secrets.token_urlsafe(12)
        self._token: str | None = None
        self.http = requests.Session()
        self.http.trust_env = False
        self.env: dict[str, str] = {}
        self.api_port = 0
        self.ledger_url = f"sqlite:///{self.workdir / 'ledger.db'}"
        self.rows: list[dict] = []
        self.tokens: dict[str, str] = {}  # account id -> its token (or Bluesky app password)
        self.connections: dict[str, dict] = {}  # connection id -> fields, as given to Airflow

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> AirflowStack:
        try:
            self.setup()
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def setup(self) -> None:
        """Migrate Airflow and the ledger, start the sandbox and the mailbox, build the environment."""
        from koho.accounts.sync import registry_rows
        from koho.config import load_config
        from koho.ledger import repo
        from koho.ledger.db import Ledger
        from sandbox.bootstrap import register_accounts
        from sandbox.server import SandboxServer, free_port
        from scripts.demo_connections import local_smtp_connection
        from scripts.koho_env import airflow_env

        self.api_port = free_port()
        env = airflow_env(ROOT, self.home)
        env.update(
            {
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__BASE_URL": self.api,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "KOHO_CALENDAR_DIR": str(self.calendar_dir),
            }
        )
        if self.config_dir:
            env["KOHO_CONFIG_DIR"] = str(self.config_dir)
        env.update(self.extra_env)
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": self.password}))
        migrate_home(env)
        if "FabAuthManager" in env.get("AIRFLOW__CORE__AUTH_MANAGER", ""):
            # deploy/airflow.env selects the FAB auth manager: Koho's roles (the DAGs' access_control
            # names them) and an admin with this stack's password, before any DAG is parsed.
            users = self.home / "koho-users.json"
            users.write_text(json.dumps({"admin": self.password}))
            create_roles_and_users(env, users)

        self.sandbox = SandboxServer().start()
        previous = os.environ.get("KOHO_CONFIG_DIR")
        if self.config_dir:
            os.environ["KOHO_CONFIG_DIR"] = str(self.config_dir)
        try:
            self.rows = registry_rows(load_config())
        finally:
            if self.config_dir:
                if previous is None:
                    os.environ.pop("KOHO_CONFIG_DIR", None)
                else:
                    os.environ["KOHO_CONFIG_DIR"] = previous
        self.tokens = {row["id"]: secrets.token_urlsafe(24) for row in self.rows}
        self.connections = register_accounts(self.sandbox.url, self.rows, self.tokens)
        for conn_id, fields in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)
        env["AIRFLOW_CONN_KOHO_DB"] = json.dumps(
            {"conn_type": "sqlite", "host": self.ledger_url.removeprefix("sqlite:///")}
        )
        ledger = Ledger(self.ledger_url)
        ledger.migrate()
        with ledger.session() as session:
            repo.upsert_accounts(session, self.rows)
        if self.mail:
            from aiosmtpd.controller import Controller

            self.mailbox = Mailbox()
            smtp_port = free_port()
            self._smtp = Controller(self.mailbox, hostname="127.0.0.1", port=smtp_port)
            self._smtp.start()
            env["AIRFLOW_CONN_KOHO_SMTP"] = json.dumps(local_smtp_connection("127.0.0.1", smtp_port))
        self.env = env

    def start(self, timeout: float = 180) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in self.components:
            self.start_component(name)
        wait_for(
            self._api_up,
            timeout=timeout,
            what="the Airflow api-server",
            interval=0.5,
            on_timeout=lambda: self.tail("api-server"),
        )

    def start_component(self, name: str) -> subprocess.Popen:
        handle = (self.logs / f"{name}.log").open("ab")
        cmd = ["airflow", name] + (["--port", str(self.api_port)] if name == "api-server" else [])
        proc = subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def stop_component(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def crash_and_restart(self, name: str) -> subprocess.Popen:
        """``kill -9`` a component's main process only, as a crash would, and start a new one.

        Its children (a scheduler's executor workers and the tasks they supervise) are left to
        live or die on their own, as after a real crash; ``stop`` ends whatever is left of them.
        """
        proc = self.procs.pop(name)
        self._crashed_groups.append(proc.pid)  # start_new_session: the group id is the pid
        proc.kill()
        proc.wait(timeout=30)
        return self.start_component(name)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop_component(name)
        for group in self._crashed_groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._crashed_groups.clear()
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None

    def tail(self, name: str, chars: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else f"(no {name} log)"

    def _api_up(self) -> bool:
        dead = [n for n, p in self.procs.items() if p.poll() is not None]
        if dead:
            raise RuntimeError(f"Airflow {dead[0]} exited with {self.procs[dead[0]].returncode}:\n{self.tail(dead[0])}")
        try:
            return self.http.get(f"{self.api}/api/v2/version", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    # -- REST API -----------------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            # the first login builds the auth manager's app: on a busy machine, more than 10 s
            response = self.http.post(
                f"{self.api}/auth/token", json={"username": "admin", "password": self.password}, timeout=30
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.send(method, path, token=self.token(), **kwargs)

    def send(self, method: str, path: str, *, token: str, **kwargs: Any) -> requests.Response:
        """One REST call with ``token``. A statement that met SQLite's write lock (the embedded
        metadata DB under load: "database is locked" after the driver's 5 s) is answered 500
        "Database error" and its transaction rolled back, so the call is sent again, POSTs too,
        after a short back-off. Any other answer is returned as it is."""
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        retrying = Retrying(
            retry=retry_if_result(_database_error),
            stop=stop_after_attempt(DB_ERROR_ATTEMPTS),
            wait=wait_incrementing(start=1, increment=1),  # backing off from a locked SQLite database
            retry_error_callback=lambda state: state.outcome.result(),  # the last answer, as it is
        )
        return retrying(self.http.request, method, f"{self.api}{path}", headers=headers, timeout=30, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120) -> None:
        missing = list(dag_ids)

        def parsed() -> bool:
            missing[:] = [d for d in missing if self.request("GET", f"/api/v2/dags/{d}").status_code != 200]
            return not missing

        wait_for(
            parsed,
            timeout=timeout,
            what=f"DAGs to be parsed ({missing})",
            interval=0.5,
            on_timeout=lambda: self.tail("dag-processor"),
        )

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, *, run_id: str | None = None, conf: dict | None = None) -> str:
        """Start a DAG run (as admin); returns its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return response.json()["state"] if response.status_code == 200 else None

    def wait_run(
        self, dag_id: str, run_id: str, *, states: Iterable[str] = ("success", "failed"), timeout: float = 120
    ) -> str:
        wanted = set(states)
        return wait_for(
            lambda: (s := self.run_state(dag_id, run_id)) in wanted and s,
            timeout=timeout,
            what=f"{dag_id} run {run_id} to reach {sorted(wanted)}",
            on_timeout=lambda: self.tail("scheduler"),
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})[
            "task_instances"
        ]

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        response = self.request(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"map_index": map_index, "deserialize": True},
        )
        if response.status_code != 200:
            return None
        value = response.json().get("value")
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str) -> dict | None:
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails")
        return response.json() if response.status_code == 200 else None

    def respond(self, dag_id: str, run_id: str, task_id: str, option: str) -> dict:
        return self.call(
            "PATCH",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            json={"chosen_options": [option], "params_input": {}},
        )

    def plugin_json(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)
