"""End-to-end fixtures: a real Airflow, the sandbox with the demo city's accounts, Koho's ledger,
and a real SMTP server (aiosmtpd) catching mail.

**One running Airflow per test session: ``stack``.** A module that needs Airflow's processes
(api-server, scheduler, dag-processor, triggerer; LocalExecutor, FAB auth manager, the demo users
``admin``, ``crisis``, ``staff``) asks for the module-scoped ``stack`` fixture, a
:class:`harness.koho_stack.KohoStack`. The stack itself (``koho_stack``) is started once, when
the first such module runs; every module gets a fresh world on it — the config folder rewritten,
calendar and output folders emptied, the ledger's rows deleted (accounts kept), the sandbox reset
with the same accounts, the mailbox emptied — and every run still going is ended when the module
is done. Modules using it run one after the other, and the stack stops after the last one.

To adopt it in a new module::

    def test_something(stack):            # the shared stack, fresh for this module
        run = stack.trigger("adhoc_post", conf={...})
        assert stack.wait_run("adhoc_post", run) == "success"

A module that needs other settings overrides ``stack`` with ``koho_stack.for_module(...)``
(``keep_caps=[...]`` keeps an account's own volume caps, ``watch_feed=True`` lets the disaster
watcher poll the sandbox's feed; see ``test_calendar_e2e.py``, ``test_watch_disaster.py``).
Rules for sharing: wait for events with :func:`harness.waiting.wait_for`, never for time; give
entries and run ids that are unique in the session (the metadata DB keeps every module's runs);
filter what you read by your own ids, or rely only on what the fresh world guarantees; leave no
process changed. What is fixed for the whole session (read when a DAG is parsed, or in the
processes' environment) is in ``harness.koho_stack.SHARED_POSTING`` and ``SHARED_ENV``.

Only a test that kills or restarts Airflow's processes, or needs another executor, starts its
own (``test_exactly_once.py``, ``test_distributed.py``). ``airflow dags test`` modules use
``airflow_home`` and ``demo_city`` instead: a migrated home, no processes.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.airflow_stack import migrate_home
from harness.koho_stack import KohoStack, shared_stack
from sandbox.bootstrap import register_accounts
from sandbox.server import SandboxServer
from scripts.demo_connections import local_smtp_connection
from scripts.koho_env import airflow_env

ROOT = Path(__file__).resolve().parents[2]
SHARED = "koho_stack"
_started: list[KohoStack] = []  # the shared stack, once a module has asked for it


@pytest.fixture(scope="session")
def koho_stack(tmp_path_factory) -> Iterator[KohoStack]:
    """The Airflow stack every end-to-end module shares (see the module docstring)."""
    with shared_stack(tmp_path_factory.mktemp("koho-stack")) as live:
        _started.append(live)
        yield live


@pytest.fixture(scope="module")
def stack(koho_stack: KohoStack) -> Iterator[KohoStack]:
    """The shared stack, with a fresh world for this module and its runs ended afterwards."""
    with koho_stack.for_module() as live:
        yield live


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules on the shared stack run one after the other, first among the end-to-end
    tests, so that the stack can stop after the last of them (order inside a module is kept)."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if here in Path(str(item.path)).parents]
    ordered = sorted((items[i] for i in slots), key=lambda item: SHARED not in item.fixturenames)
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Stop the shared stack once no later test uses it: two cores are not enough to keep four
    idle Airflow processes beside the next module's own stack."""
    result = yield
    if _started and SHARED in item.fixturenames and (nextitem is None or SHARED not in nextitem.fixturenames):
        _started.pop().stop()
    return result


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> dict[str, str]:
    """A migrated Airflow home for this test session; returns the environment to run Airflow with."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = airflow_env(ROOT, home)
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
    migrate_home(env)
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
