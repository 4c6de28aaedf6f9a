"""Shared fixtures: a real sandbox server on loopback, Airflow connections pointing at it, and a
real SMTP server (aiosmtpd) catching mail.

Connections are given to hooks the way Airflow documents for tests: ``AIRFLOW_CONN_<ID>``
environment variables holding JSON, never rows in a metadata database.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for entry in (ROOT / "plugins", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow" / "test-home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from harness.airflow_stack import Mailbox  # noqa: E402
from sandbox.server import SandboxServer  # noqa: E402


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The sandbox, emptied before each test (accounts, posts, faults, limits)."""
    sandbox_server.admin("POST", "/reset")
    return sandbox_server


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields) -> str:
    """Define an Airflow connection for this test only; returns the conn id."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
    return conn_id


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> Callable[..., str]:
    """``connect(platform, account, conn_id=None, **extra)`` -> a connection id to that sandbox account.

    ``account`` is what :meth:`SandboxServer.add_account` returned.
    """

    def _connect(platform: str, account: dict, conn_id: str | None = None, **extra) -> str:
        conn_id = conn_id or f"{platform}_{account['handle'].replace('.', '_').replace('-', '_')}"
        return set_connection(
            monkeypatch,
            conn_id,
            conn_type=f"koho_{platform}",
            host=f"{sandbox.url}/{platform}",
            login=account["handle"],
            password=account.get("token") or account.get("password"),
            extra={"account_id": account["account_id"], **extra},
        )

    return _connect


@pytest.fixture(autouse=True)
def budget_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """A shared budget store of the test's own (a SQLite file): windows announced and budgets used
    in one test must not hold up the next, whose sandbox starts empty."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('budgets') / 'budgets.sqlite'}"
    monkeypatch.setenv("KOHO_BUDGET_STORAGE", uri)
    return uri


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback: (the messages it received, its port)."""
    from aiosmtpd.controller import Controller

    from sandbox.server import free_port

    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def smtp_connection(monkeypatch: pytest.MonkeyPatch, port: int) -> str:
    """``koho_smtp`` pointing at the :func:`mailbox` server, for code that mails through the SMTP provider."""
    from scripts.demo_connections import local_smtp_connection

    return set_connection(monkeypatch, "koho_smtp", **local_smtp_connection("127.0.0.1", port))
