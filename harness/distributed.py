"""Koho's distributed deployment without Docker: docker-compose.yaml's topology as local processes.

:class:`DistributedAirflow` reads docker-compose.yaml — the ``x-airflow-common`` environment, its
``env_file`` (deploy/airflow.env) and each Airflow service's command, ``depends_on`` and
healthcheck — and runs that topology on this machine:

* Postgres and Redis are the servers already running here (127.0.0.1:5432 and :6379). The
  metadata database and the ledger each get a fresh database (dropped at the end); Celery gets
  a Redis database number nobody else uses (flushed at the end); the Celery result backend is
  the metadata database, as in the compose file.
* ``airflow-init`` becomes ``airflow db migrate`` plus the ledger migration it runs.
* ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and ``celery worker`` run as
  ``airflow <command>``, each in its own process group with its own log file, started in the
  order ``depends_on`` gives, and each waited for with its compose healthcheck (the HTTP ones
  polled here, the shell ones — ``airflow jobs check``, ``celery inspect ping`` — run as written).

Only container-only values are changed: service host names become 127.0.0.1 with free ports,
``/opt/airflow/...`` mounts become this checkout's folders. Everything binds to 127.0.0.1; the
worker and triggerer skip their log servers (which Airflow binds to every interface) because
all services share one log folder here, as they share the ``airflow-logs`` volume in compose.

Used by ``tests/e2e/test_distributed.py`` and by ``scripts/run_distributed.py`` (the command
line, which also wires the demo city with :func:`demo_city_env`)::

    with DistributedAirflow(extra_env={...}) as airflow:
        session = airflow.api_session()   # JWT for the compose file's admin user
        session.post(f"{airflow.base_url}/api/v2/dags/accounts_sync/dagRuns", json={...})
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg2
import redis
import requests
import yaml
from psycopg2 import sql
from sqlalchemy.engine import URL, make_url

from harness.waiting import WaitAborted, wait_for
from scripts.demo_connections import local_smtp_connection
from scripts.koho_env import read_env_file

ROOT = Path(__file__).resolve().parents[1]

LOCAL_HOST = "127.0.0.1"
COMMON_BLOCK = "x-airflow-common"
#: Host names that only exist on the compose network; on this machine they are all loopback.
CONTAINER_HOSTS = frozenset({"postgres", "redis", "airflow-apiserver", "localhost", "mailcatcher", "sandbox"})
#: The image's AIRFLOW_HOME: paths under it that are not mounts map to the local AIRFLOW_HOME.
IMAGE_AIRFLOW_HOME = "/opt/airflow"
#: Variables meaningful only to the image's entrypoint.
IMAGE_ONLY_VARS = frozenset({"_PIP_ADDITIONAL_REQUIREMENTS", "DUMB_INIT_SETSID"})
#: Airflow subcommands that serve task logs on a port bound to every interface.
LOG_SERVING_COMMANDS = (("celery", "worker"), ("triggerer",))
ADMIN_USER = "admin"
#: Fails fast, with the import error itself, when the configured executor cannot be loaded (the
#: scheduler would otherwise die with only "The module/attribute could not be loaded").
EXECUTOR_PREFLIGHT = [
    sys.executable,
    "-c",
    "from airflow.executors.executor_loader import ExecutorLoader as L\n"
    "for name in L.get_executor_names():\n"
    "    L.import_executor_cls(name)\n"
    "    print('executor importable:', name)",
]


class DistributedError(RuntimeError):
    """The distributed topology could not be started (the message names the service and its log)."""


# ---------------------------------------------------------------------------------------------
# small helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        return sock.getsockname()[1]


def reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.5,
    what: str = "condition",
    abort: Callable[[], str | None] | None = None,
) -> Any:
    """:func:`harness.waiting.wait_for` raising :class:`DistributedError`, which the command line
    prints without a traceback; ``abort`` may return a reason to give up at once."""
    try:
        return wait_for(condition, timeout=timeout, interval=interval, what=what, abort=abort)
    except WaitAborted as exc:
        raise DistributedError(f"{what}: {exc.reason}") from None
    except TimeoutError:
        raise DistributedError(f"{what}: not reached within {timeout:.0f}s") from None


# ---------------------------------------------------------------------------------------------
# reading the compose file

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``$$``, on a copy of ``value``."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        op = match.group("op")
        current = variables.get(name)
        if op == ":-" and not current:
            return match.group("default")
        if op == "-" and current is None:
            return match.group("default")
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _environment(block: Any) -> dict[str, str]:
    if isinstance(block, list):  # the "KEY=VALUE" list form
        return dict(item.partition("=")[::2] for item in block)
    return {key: _env_value(value) for key, value in (block or {}).items()}


@dataclass
class ComposeService:
    name: str
    command: list[str]
    environment: dict[str, str]
    healthcheck: list[str]
    depends_on: list[str]
    ports: dict[int, int | None]


@dataclass
class ComposeTopology:
    services: dict[str, ComposeService]
    common_env: dict[str, str]
    mounts: dict[str, Path]  # container path -> local path
    init_commands: list[str]


def read_compose(root: Path = ROOT, compose_file: str = "docker-compose.yaml") -> ComposeTopology:
    """The Airflow services of the compose file: the ones built on ``x-airflow-common`` that run
    an ``airflow`` subcommand (a string command and no entrypoint of their own)."""
    raw = yaml.safe_load((root / compose_file).read_text(encoding="utf-8"))
    variables = dict(os.environ)
    dotenv = root / ".env"
    if dotenv.exists():
        variables = {**read_env_file(dotenv), **variables}
    doc = interpolate(raw, variables)
    common = doc[COMMON_BLOCK]

    def env_of(service: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        env_files = service.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            env.update(read_env_file(root / path))
        env.update(_environment(service.get("environment")))
        return env

    mounts: dict[str, Path] = {}
    for volume in common.get("volumes") or []:
        source, _, rest = volume.partition(":")
        target = rest.partition(":")[0]
        if source.startswith((".", "/")):
            mounts[target] = (root / source).resolve()

    services: dict[str, ComposeService] = {}
    airflow_names = [
        name
        for name, svc in doc["services"].items()
        if svc.get("image") == common["image"] and "entrypoint" not in svc and isinstance(svc.get("command"), str)
    ]
    for name in airflow_names:
        svc = doc["services"][name]
        depends = svc.get("depends_on") or {}
        waits_for = [
            dep
            for dep, cond in depends.items()
            if dep in airflow_names and (cond or {}).get("condition") == "service_healthy"
        ]
        ports: dict[int, int | None] = {}
        for port in svc.get("ports") or []:
            parts = str(port).split(":")
            ports[int(parts[-1])] = int(parts[-2]) if len(parts) > 1 else None
        test = (svc.get("healthcheck") or {}).get("test") or []
        services[name] = ComposeService(
            name=name,
            command=["airflow", *svc["command"].split()],
            environment=env_of(svc),
            healthcheck=["CMD-SHELL", test] if isinstance(test, str) else list(test),
            depends_on=waits_for,
            ports=ports,
        )
    init = doc["services"].get("airflow-init", {}).get("command") or []
    init_script = init[-1] if isinstance(init, list) and init else ""
    return ComposeTopology(
        services=services,
        common_env=env_of(common),
        mounts=mounts,
        init_commands=[line for line in init_script.splitlines() if line.strip()],
    )


# ---------------------------------------------------------------------------------------------
# local resources: Postgres databases and a Redis database


@dataclass
class PostgresServer:
    host: str = LOCAL_HOST
    port: int = 5432
    user: str = "postgres"
    password: str | None = None
    admin_db: str = "test"

    def _admin(self):
        conn = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.admin_db,
            connect_timeout=5,
        )
        conn.autocommit = True
        return conn

    def create(self, name: str) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()

    def drop(self, name: str) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        finally:
            conn.close()

    def url(self, database: str, drivername: str = "postgresql+psycopg2", query: Any = None) -> str:
        return URL.create(
            drivername,
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=database,
            query=query or {},
        ).render_as_string(hide_password=False)


CLAIM_KEY = "koho:distributed:claimed-by"


def claim_redis_db(host: str, port: int, owner: str) -> int:
    """A Redis database number that is empty, marked as ours so that another run skips it."""
    client = redis.Redis(host=host, port=port, socket_timeout=5)
    try:
        count = int(client.config_get("databases").get("databases", 16))
    except redis.ResponseError:  # CONFIG may be disabled; 16 is Redis' default
        count = 16
    finally:
        client.close()
    candidates = list(range(1, count))
    secrets.SystemRandom().shuffle(candidates)
    for number in candidates:
        db = redis.Redis(host=host, port=port, db=number, socket_timeout=5)
        try:
            if db.dbsize() == 0 and db.set(CLAIM_KEY, owner, nx=True):
                return number
        finally:
            db.close()
    raise DistributedError(f"no empty Redis database on {host}:{port} (checked {count - 1})")


def flush_redis_db(host: str, port: int, number: int) -> None:
    db = redis.Redis(host=host, port=port, db=number, socket_timeout=5)
    try:
        db.flushdb()
    finally:
        db.close()


# ---------------------------------------------------------------------------------------------
# processes


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_processes(procs: Iterable[subprocess.Popen], grace: float = 20.0) -> None:
    """SIGTERM each process group, then SIGKILL what is left after ``grace`` seconds — including
    descendants that left the group (known by pid and start time, so no unrelated process is hit)."""
    procs = [p for p in procs if p is not None]
    descendants: list[psutil.Process] = []
    for proc in procs:
        if proc.poll() is None:
            descendants += _descendants(proc.pid)
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        if proc.poll() is None:
            descendants += _descendants(proc.pid)
        try:  # the group may outlive its leader (pool children): always sweep it
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    for child in descendants:
        try:
            if child.is_running():
                child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(descendants, timeout=5)


@dataclass
class Service:
    spec: ComposeService
    command: list[str]
    env: dict[str, str]
    log: Path
    local_ports: dict[int, int]
    proc: subprocess.Popen | None = None
    started_at: float | None = None
    healthy_at: float | None = None
    healthy: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.spec.name

    def start(self, cwd: Path) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                start_new_session=True,
            )
        self.started_at = time.monotonic()

    def exited(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"exited with code {self.proc.returncode}; last lines of {self.log}:\n{tail(self.log)}"
        return None

    def localize_text(self, text: str) -> str:
        """``localhost:<container port>`` in a healthcheck -> 127.0.0.1:<local port>."""
        for container_port, local_port in self.local_ports.items():
            text = text.replace(f"localhost:{container_port}", f"{LOCAL_HOST}:{local_port}")
        return text


# ---------------------------------------------------------------------------------------------
# the topology


class DistributedAirflow:
    """docker-compose.yaml's Airflow services as local processes (a context manager).

    ``extra_env`` is added to every service's environment (e.g. ``AIRFLOW_CONN_*`` for the
    platform accounts). After ``start()``: ``base_url``, ``env`` (what the services run with),
    ``metadata_url``, ``ledger_url``, ``broker_url``, ``username``/``password``, ``timings``.
    """

    def __init__(
        self,
        *,
        root: Path = ROOT,
        workdir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        postgres: PostgresServer | None = None,
        redis_host: str = LOCAL_HOST,
        redis_port: int = 6379,
        api_port: int | None = None,
        startup_timeout: float = 300.0,
        serve_logs: bool = False,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self.run_id = secrets.token_hex(4)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"koho-dist-{self.run_id}-"))
        self.home = self.workdir / "home"
        self.log_dir = self.workdir / "logs"
        self.extra_env = dict(extra_env or {})
        self.postgres = postgres or PostgresServer()
        self.redis_host, self.redis_port = redis_host, redis_port
        self.api_port = api_port or free_port()
        self.scheduler_health_port = free_port()
        # Used only with serve_logs=True (Airflow binds the log servers to every interface).
        self.log_server_ports = (free_port(), free_port())
        self._jwt_secret = secrets.token_urlsafe(32)
        self.startup_timeout = startup_timeout
        self.serve_logs = serve_logs
        self.echo = echo or (lambda message: None)
        self.topology = read_compose(root)
        self.base_url = f"http://{LOCAL_HOST}:{self.api_port}"
        self.metadata_db = f"koho_dist_{self.run_id}_airflow"
        self.ledger_db = f"koho_dist_{self.run_id}_ledger"
        self.username = ADMIN_USER
        self.password = secrets.token_urlsafe(16)
        self.redis_db: int | None = None
        self.env: dict[str, str] = {}
        self.rewrites: dict[str, tuple[str, str]] = {}
        self.services: dict[str, Service] = {}
        self.timings: dict[str, float] = {}
        self._created_dbs: list[str] = []
        self._stopped = False
        self._t0 = 0.0

    # -- public ----------------------------------------------------------------------------

    @property
    def metadata_url(self) -> str:
        return self.postgres.url(self.metadata_db)

    @property
    def ledger_url(self) -> str:
        return self.postgres.url(self.ledger_db)

    @property
    def broker_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"

    def log_path(self, service: str) -> Path:
        return self.log_dir / f"{service}.log"

    def __enter__(self) -> DistributedAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> DistributedAirflow:
        self._t0 = time.monotonic()
        try:
            self._prepare()
            self._init()
            self._start_services()
        except BaseException:
            self.stop()
            raise
        self.timings["healthy_s"] = time.monotonic() - self._t0
        return self

    def stop(self) -> None:
        """Stop every service (process groups, SIGTERM then SIGKILL), drop the databases, flush Redis.

        A temporary workdir (none given) is removed too, unless ``KOHO_KEEP_DISTRIBUTED_LOGS`` is set.
        """
        if self._stopped:
            return
        self._stopped = True
        started = time.monotonic()
        order = ["airflow-worker", "airflow-scheduler", "airflow-triggerer", "airflow-dag-processor"]
        procs = [self.services[n].proc for n in order if n in self.services]
        procs += [s.proc for n, s in self.services.items() if n not in order]
        errors = []
        try:
            stop_processes([p for p in procs if p is not None])
        finally:
            for name in self._created_dbs:
                try:
                    self.postgres.drop(name)
                except Exception as exc:
                    errors.append(f"drop database {name}: {exc}")
            if self.redis_db is not None:
                try:
                    flush_redis_db(self.redis_host, self.redis_port, self.redis_db)
                except Exception as exc:
                    errors.append(f"flush redis db {self.redis_db}: {exc}")
            if self._own_workdir and not os.environ.get("KOHO_KEEP_DISTRIBUTED_LOGS"):
                shutil.rmtree(self.workdir, ignore_errors=True)
        self.timings["teardown_s"] = time.monotonic() - started
        if errors:
            raise DistributedError("; ".join(errors))

    def api_session(self) -> requests.Session:
        """A session carrying a JWT for the admin user (SimpleAuthManager, ``POST /auth/token``)."""
        session = requests.Session()
        session.trust_env = False  # loopback: never through a proxy
        response = session.post(
            f"{self.base_url}/auth/token", timeout=15, json={"username": self.username, "password": self.password}
        )
        response.raise_for_status()
        session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return session

    def wait_for_dag(self, session: requests.Session, dag_id: str, timeout: float = 60.0) -> dict:
        """Wait until the dag processor has serialized ``dag_id`` and the API knows it."""

        def known() -> dict | None:
            response = session.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=10)
            return response.json() if response.status_code == 200 else None

        return wait_until(known, timeout=timeout, interval=0.5, what=f"DAG {dag_id} parsed", abort=self._first_exit)

    def check_alive(self) -> None:
        if reason := self._first_exit():
            raise DistributedError(reason)

    # -- steps -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in (self.metadata_db, self.ledger_db):
            self.postgres.create(name)
            self._created_dbs.append(name)
        self.redis_db = claim_redis_db(self.redis_host, self.redis_port, owner=f"koho-dist-{self.run_id}")
        self.env = self._environment(self.topology.common_env)
        # The compose file's users (admin:admin = user admin, role admin); the password is ours.
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        passwords.write_text(json.dumps({self.username: self.password}) + "\n", encoding="utf-8")
        passwords.chmod(0o600)
        for spec in self.topology.services.values():
            local_ports = self._local_ports(spec)
            env = self._environment(spec.environment)
            command = list(spec.command)
            if not self.serve_logs and tuple(command[1:]) in LOG_SERVING_COMMANDS:
                command.append("--skip-serve-logs")
            self.services[spec.name] = Service(
                spec=spec, command=command, env=env, log=self.log_path(spec.name), local_ports=local_ports
            )
        self.echo(f"databases {self.metadata_db}, {self.ledger_db}; Redis db {self.redis_db}; logs {self.log_dir}")

    def _init(self) -> None:
        """airflow-init: ``airflow db migrate`` and the ledger migration (the demo connections
        are the caller's: they come as ``AIRFLOW_CONN_*`` variables)."""
        started = time.monotonic()
        self._run(["airflow", "db", "migrate"], "airflow-init", timeout=300, label="airflow db migrate")
        self.timings["db_migrate_s"] = time.monotonic() - started
        if "FabAuthManager" in self.env.get("AIRFLOW__CORE__AUTH_MANAGER", ""):
            # compose's airflow-init runs scripts/koho_auth.py: Koho's roles, and the admin with our password
            users = self.home / "koho-users.json"
            users.write_text(json.dumps({self.username: self.password}) + "\n", encoding="utf-8")
            users.chmod(0o600)
            self._run(
                [sys.executable, str(self.root / "scripts" / "koho_auth.py"), "--users-file", str(users)],
                "airflow-init",
                timeout=300,
                label="koho roles and users",
            )
        checks = [(EXECUTOR_PREFLIGHT, "airflow-init-executor", "loading the configured executor")]
        ledger_line = next((line.strip() for line in self.topology.init_commands if "Ledger" in line), None)
        if ledger_line:
            checks.append(
                (
                    ["bash", "-c", ledger_line.replace("python ", f"{sys.executable} ", 1)],
                    "airflow-init",
                    "migrating the ledger",
                )
            )
        with ThreadPoolExecutor(max_workers=len(checks)) as pool:  # both only import Airflow: in parallel
            for future in [pool.submit(self._run, cmd, log, label=label) for cmd, log, label in checks]:
                future.result()
        self.timings["init_s"] = time.monotonic() - started
        self.echo(f"airflow-init done in {self.timings['init_s']:.1f}s")

    def _run(self, cmd: list[str], log_name: str, timeout: float = 180, label: str | None = None) -> None:
        """Run one command to completion with the common environment, its output in ``log_name``."""
        label = label or " ".join(cmd)
        log = self.log_path(log_name)
        with log.open("ab") as handle:
            handle.write(f"$ {' '.join(cmd)}\n".encode())
            handle.flush()
            proc = subprocess.Popen(
                cmd,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_processes([proc], grace=5)
                raise DistributedError(f"airflow-init: {label} took more than {timeout:.0f}s; see {log}") from None
        if code != 0:
            raise DistributedError(f"airflow-init: {label} failed with code {code}; {log} ends with:\n{tail(log, 15)}")

    def _start_services(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        failed = threading.Event()

        def bring_up(service: Service) -> None:
            for dependency in service.spec.depends_on:
                dep = self.services[dependency]
                while not dep.healthy.wait(0.2):
                    if failed.is_set():
                        return
                    if time.monotonic() > deadline:
                        raise DistributedError(f"{service.name}: {dependency} not healthy in time")
            service.start(self.root)
            self._wait_healthy(service, deadline, failed)
            service.healthy_at = time.monotonic()
            self.timings[f"{service.name}_healthy_s"] = service.healthy_at - self._t0
            service.healthy.set()
            self.echo(
                f"{service.name} healthy after {service.healthy_at - service.started_at:.1f}s "
                f"(topology +{service.healthy_at - self._t0:.1f}s)"
            )

        with ThreadPoolExecutor(max_workers=len(self.services), thread_name_prefix="koho-dist") as pool:
            futures = {pool.submit(bring_up, service): service for service in self.services.values()}
            errors = []
            for future, service in futures.items():
                try:
                    future.result(timeout=max(1.0, deadline - time.monotonic() + 30))
                except Exception as exc:
                    failed.set()
                    errors.append(f"{service.name}: {exc}")
            if errors:
                raise DistributedError("distributed Airflow did not come up:\n" + "\n".join(errors))

    # -- healthchecks ----------------------------------------------------------------------

    def _wait_healthy(self, service: Service, deadline: float, failed: threading.Event) -> None:
        test = service.spec.healthcheck
        kind, args = (test[0], test[1:]) if test else ("NONE", [])

        def abort() -> str | None:
            if failed.is_set():
                return "another service failed"
            return service.exited()

        remaining = max(1.0, deadline - time.monotonic())
        what = f"{service.name} healthcheck"
        if kind == "CMD" and args and args[0] == "curl":
            url = service.localize_text(next(a for a in args if a.startswith("http")))
            wait_until(lambda: self._http_ok(url), timeout=remaining, interval=0.5, what=what, abort=abort)
        elif kind in ("CMD", "CMD-SHELL"):
            script = service.localize_text(" ".join(args) if kind == "CMD-SHELL" else subprocess.list2cmdline(args))
            precondition = self._precondition(service, script)
            if precondition is not None:
                wait_until(precondition, timeout=remaining, interval=0.5, what=f"{what} (precondition)", abort=abort)
            remaining = max(1.0, deadline - time.monotonic())
            wait_until(
                lambda: self._shell_ok(script, service.env), timeout=remaining, interval=1.0, what=what, abort=abort
            )
        else:  # no healthcheck: running is all we can ask
            wait_until(lambda: service.proc is not None, timeout=remaining, what=what, abort=abort)
        if reason := service.exited():
            raise DistributedError(f"{service.name} {reason}")

    def _precondition(self, service: Service, script: str) -> Callable[[], bool] | None:
        """Something cheap to poll before running an expensive CLI healthcheck (each one imports
        Airflow: seconds of CPU on a small machine)."""
        if match := re.search(r"--job-type\s+(\w+)", script):
            job_type = match.group(1)
            return lambda: self._job_running(job_type)
        if "inspect ping" in script:
            return lambda: " ready." in tail(service.log, 200)
        return None

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            return requests.get(url, timeout=3, proxies={"http": "", "https": ""}).status_code < 400
        except requests.RequestException:
            return False

    def _shell_ok(self, script: str, env: dict[str, str]) -> bool:
        try:
            result = subprocess.run(
                ["/bin/sh", "-c", script],
                env=env,
                cwd=self.root,
                capture_output=True,
                timeout=60,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def _job_running(self, job_type: str) -> bool:
        try:
            conn = psycopg2.connect(
                host=self.postgres.host,
                port=self.postgres.port,
                user=self.postgres.user,
                password=self.postgres.password,
                dbname=self.metadata_db,
                connect_timeout=3,
            )
        except psycopg2.Error:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM job WHERE job_type = %s AND state = 'running' LIMIT 1", (job_type,))
                return cur.fetchone() is not None
        except psycopg2.Error:
            return False
        finally:
            conn.close()

    def _first_exit(self) -> str | None:
        for service in self.services.values():
            if reason := service.exited():
                return f"{service.name} {reason}"
        return None

    # -- environment -----------------------------------------------------------------------

    def _local_ports(self, spec: ComposeService) -> dict[int, int]:
        ports = {}
        if spec.command[1:] == ["api-server"]:
            ports[8080] = self.api_port
            for container_port in spec.ports:
                ports[container_port] = self.api_port
        if spec.command[1:] == ["scheduler"]:
            ports[8974] = self.scheduler_health_port
        return ports

    def _environment(self, compose_env: dict[str, str]) -> dict[str, str]:
        """A service's compose environment, with container-only values made local."""
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "_AIRFLOW", "KOHO_", "PYTHONPATH", "HOSTNAME"))
        }
        env = dict(base)
        for key, value in compose_env.items():
            if key in IMAGE_ONLY_VARS:
                self.rewrites.setdefault(key, (value, "(dropped: image entrypoint only)"))
                continue
            local = self._localize(key, value)
            if local != value:
                self.rewrites.setdefault(key, (value, local))
            env[key] = local
        env.update(self.extra_env)
        worker_log_port, trigger_log_port = self.log_server_ports
        venv_bin = Path(sys.executable).parent
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__API__HOST": LOCAL_HOST,
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": LOCAL_HOST,
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.scheduler_health_port),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log_port),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
                "HOSTNAME": socket.gethostname(),
                "PATH": os.pathsep.join([str(venv_bin), base.get("PATH", "")]),
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if "AIRFLOW__API_AUTH__JWT_SECRET" not in os.environ:
            # The compose default is a placeholder everyone knows: use a secret of this run.
            env["AIRFLOW__API_AUTH__JWT_SECRET"] = self._jwt_secret
        return env

    def _localize(self, key: str, value: str) -> str:
        if key == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
            return self._pg_url(value, self.metadata_db)
        if key == "AIRFLOW__CELERY__RESULT_BACKEND":
            return self._pg_url(value, self.metadata_db)
        if key in ("AIRFLOW__CELERY__BROKER_URL", "KOHO_BUDGET_STORAGE"):
            return self.broker_url  # the run's own Redis database (claimed, flushed at the end)
        if key == "AIRFLOW_CONN_KOHO_DB" and not value.lstrip().startswith("{"):
            return self._pg_url(value, self.ledger_db)
        if key.startswith("AIRFLOW_CONN_"):
            return self._localize_connection(value)
        if key in ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API__BASE_URL"):
            return self._url_to_apiserver(value)
        if key == "PYTHONPATH":
            return os.pathsep.join(self._path(part) for part in value.split(":"))
        if value.startswith(IMAGE_AIRFLOW_HOME):
            return self._path(value)
        return value

    def _pg_url(self, value: str, database: str) -> str:
        url = make_url(value)  # keeps the compose file's driver (postgresql+psycopg2, db+postgresql, ...)
        return self.postgres.url(database, drivername=url.drivername, query=url.query)

    def _url_to_apiserver(self, value: str) -> str:
        parts = urlsplit(value)
        return urlunsplit((parts.scheme, f"{LOCAL_HOST}:{self.api_port}", parts.path, parts.query, parts.fragment))

    def _localize_connection(self, value: str) -> str:
        if value.lstrip().startswith("{"):
            fields = json.loads(value)
            if fields.get("host") in CONTAINER_HOSTS:
                fields["host"] = LOCAL_HOST
            return json.dumps(fields)
        parts = urlsplit(value)
        if parts.hostname in CONTAINER_HOSTS:
            credentials, at, host_port = parts.netloc.rpartition("@")
            netloc = credentials + at + host_port.replace(parts.hostname, LOCAL_HOST, 1)
            return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        return value

    def _path(self, path: str) -> str:
        for target in sorted(self.topology.mounts, key=len, reverse=True):
            if path == target or path.startswith(target + "/"):
                return str(self.topology.mounts[target]) + path[len(target) :]
        if path == IMAGE_AIRFLOW_HOME or path.startswith(IMAGE_AIRFLOW_HOME + "/"):
            return str(self.home) + path[len(IMAGE_AIRFLOW_HOME) :]
        return path


# ---------------------------------------------------------------------------------------------
# the demo city (the same wiring as the end-to-end tests)


def demo_city_env(sandbox_url: str, smtp_port: int, *, tokens: dict[str, str] | None = None) -> dict[str, Any]:
    """Register the demo city's accounts in the sandbox; returns ``{"env", "rows", "tokens"}`` where
    ``env`` holds one ``AIRFLOW_CONN_*`` per account plus ``koho_smtp`` on 127.0.0.1:``smtp_port``."""
    from koho.accounts.sync import registry_rows
    from koho.config import load_config
    from sandbox.bootstrap import register_accounts

    rows = registry_rows(load_config())
    tokens = tokens or {row["id"]: secrets.token_urlsafe(24) for row in rows}
    connections = register_accounts(sandbox_url, rows, tokens)
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(fields) for conn_id, fields in connections.items()}
    env["AIRFLOW_CONN_KOHO_SMTP"] = json.dumps(local_smtp_connection(LOCAL_HOST, smtp_port))
    return {"env": env, "rows": rows, "tokens": tokens}
