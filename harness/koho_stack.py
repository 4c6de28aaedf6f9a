"""A real Airflow with the FAB auth manager, Koho's roles and the demo users, for the end-to-end
tests (ad-hoc, emergency, watcher, calendar) and ``bench/emergency.py``.

It is :class:`harness.airflow_stack.AirflowStack` (api-server, scheduler, dag-processor,
triggerer as separate processes, LocalExecutor, the sandbox, the ledger, an SMTP catcher) with
three additions: the FAB auth manager, whose roles and users ``scripts/koho_auth.py`` creates
before any DAG is parsed; REST calls as any of the demo users (``admin``, ``crisis``, ``staff``);
and :meth:`KohoStack.for_module`, which gives a test module a fresh world on a stack started
once per test session (:func:`shared_stack`).

Starting a stack costs minutes (migrations, users, four processes, parsing every DAG); what
differs between test modules is only what the DAGs read at run time — the config folder, the
calendar folder, the ledger's rows, the sandbox's accounts and posts, the mailbox — so each
module resets those instead of starting its own stack. What is read when a DAG is parsed
(posting.yaml's approval timeout) and the processes' environment
(``KOHO_APPROVAL_DEADLINE_MINUTES``) are the same for every module: :data:`SHARED_POSTING` and
:data:`SHARED_ENV` hold them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from harness.airflow_stack import AirflowStack, relaxed_config
from harness.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
POSTING_DAGS = ("adhoc_post", "emergency_broadcast", "disaster_watch", "disaster_draft", "calendar_publish")
#: Every DAG in dags/: the shared stack waits for all of them; a module runs with all but the watcher unpaused.
ALL_DAGS = (
    *POSTING_DAGS,
    "accounts_sync",
    "calendar_approval",
    "calendar_retract",
    "calendar_sync",
    "newsletter_export",
)
WATCHER = "disaster_watch"
#: posting.yaml on the shared stack: an unanswered ad-hoc approval times out after a minute
#: (read when adhoc_post is parsed, so the same for every module; no other module waits for it).
SHARED_POSTING = {"approval_timeout_minutes": 1}
#: The shared stack's processes' environment: a calendar approval is due 30 s before the post
#: (only the calendar module asks for calendar approvals).
SHARED_ENV = {
    "KOHO_APPROVAL_DEADLINE_MINUTES": "0.5",
    # the watcher must not poll before a module asks for it: every DAG starts paused, the stack
    # unpauses all but the watcher once they are parsed (``shared_stack``)
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
}
UNFINISHED = ("queued", "running")
#: Task instance states of a task that runs, waits in the triggerer or for an answer, or is about to.
BUSY = (
    "running",
    "deferred",
    "awaiting_input",
    "queued",
    "scheduled",
    "restarting",
    "up_for_retry",
    "up_for_reschedule",
)


def posting_config(
    target: Path,
    *,
    sandbox_url: str | None = None,
    posting: dict | None = None,
    poll_seconds: float = 1,
    keep_caps: Iterable[str] = (),
) -> Path:
    """``relaxed_config`` (``keep_caps`` as there) plus posting.yaml (the PR section = admin) and
    the watcher pointed at the sandbox."""
    relaxed_config(target, keep_caps=keep_caps)
    settings = yaml.safe_load((ROOT / "include" / "config" / "posting.yaml").read_text(encoding="utf-8"))
    settings.update({"pr_users": ["admin"], **(posting or {})})
    (target / "posting.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    if sandbox_url:
        set_feed(target, sandbox_url, poll_seconds)
    return target


def set_feed(config_dir: Path, sandbox_url: str, poll_seconds: float = 1) -> None:
    path = config_dir / "emergency.yaml"
    settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    settings["feed_url"] = f"{sandbox_url}/jma/developer/xml/feed/extra.xml"
    settings["poll_interval_seconds"] = poll_seconds
    path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")


class KohoStack(AirflowStack):
    """See the module docstring."""

    def __init__(self, workdir: Path, **kwargs: Any) -> None:
        extra = {"AIRFLOW__CORE__AUTH_MANAGER": FAB, **kwargs.pop("extra_env", {})}
        super().__init__(workdir, extra_env=extra, **kwargs)
        self.users: dict[str, str] = {}
        self._tokens: dict[str, str] = {}

    def setup(self) -> None:
        super().setup()
        users_file = self.home / "koho-users.json"
        if users_file.exists() and "crisis" in json.loads(users_file.read_text(encoding="utf-8")):
            self.users = json.loads(users_file.read_text(encoding="utf-8"))
            return  # the stack ran scripts/koho_auth.py already
        users_file.write_text(json.dumps({"admin": self.password}), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "koho_auth.py"), "--users-file", str(users_file)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"koho_auth.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        self.users = json.loads(users_file.read_text(encoding="utf-8"))

    def user_token(self, user: str) -> str:
        if user == "admin":
            return self.token()
        if user not in self._tokens:
            response = self.http.post(
                f"{self.api}/auth/token", json={"username": user, "password": self.users[user]}, timeout=30
            )
            if response.status_code >= 400:
                raise RuntimeError(f"token for {user}: {response.status_code} {response.text[:300]}")
            self._tokens[user] = response.json()["access_token"]
        return self._tokens[user]

    def as_user(self, user: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.send(method, path, token=self.user_token(user), **kwargs)

    def trigger_as(self, user: str, dag_id: str, conf: dict, *, run_id: str | None = None) -> requests.Response:
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        return self.as_user(user, "POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def respond_as(
        self, user: str, dag_id: str, run_id: str, task_id: str, option: str, params_input: dict | None = None
    ) -> requests.Response:
        return self.as_user(
            user,
            "PATCH",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            json={"chosen_options": [option], "params_input": params_input or {}},
        )

    def ti_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        for ti in self.task_instances(dag_id, run_id):
            if ti["task_id"] == task_id and ti.get("map_index", -1) == -1:
                return ti["state"]
        return None

    def wait_ti(self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 120) -> str:
        return wait_for(
            lambda: (s := self.ti_state(dag_id, run_id, task_id)) in states and s,
            timeout=timeout,
            what=f"{dag_id}.{task_id} in {sorted(states)}",
            on_timeout=lambda: self.tail("scheduler"),
        )

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        response = self.request(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": True},
            headers={"Accept": "application/json"},
        )
        if response.status_code != 200:
            return ""
        content = response.json().get("content")
        if isinstance(content, list):
            return "\n".join(_log_line(c) for c in content)
        return str(content)

    def text_accounts(self) -> list[str]:
        """The active accounts a text-only post reaches (YouTube needs a video, Instagram an image)."""
        return [r["id"] for r in self.rows if r["status"] == "active" and r["platform"] not in ("youtube", "instagram")]

    def calendar_load(
        self, *, entries: int, lead_seconds: float, prefix: str, text: str, slots: int = 1
    ) -> tuple[list[str], datetime, str]:
        """``entries`` calendar posts on every text account, due ``lead_seconds`` from now, planned
        straight into the ledger, and a calendar_publish run whose slot tasks are waiting for them.

        ``slots`` > 1 spreads the entries over that many instants one second apart (entry ``i`` at
        due + ``i % slots`` s): one slot task each, all waiting in a worker at once, as on a busy
        morning. Returns at the first due instant: (entry ids, due, calendar run id). ``text`` is
        formatted with the entry's number (``{i}``).
        """
        from koho.ledger import repo
        from koho.ledger.db import Ledger

        due = (datetime.now(UTC) + timedelta(seconds=lead_seconds)).replace(microsecond=0)
        accounts = self.text_accounts()
        ids = []
        with Ledger(self.ledger_url).session() as session:
            for i in range(entries):
                entry_id, body = f"{prefix}-{i:03d}", text.format(i=i)
                at = due + timedelta(seconds=i % max(1, slots))
                repo.upsert_entry(
                    session,
                    {
                        "id": entry_id,
                        "origin": "calendar",
                        "source": prefix,
                        "title": body,
                        "publish_at": at,
                        "content_hash": entry_id,
                        "payload": {"text": body, "accounts": accounts},
                    },
                )
                for account in accounts:
                    repo.plan_delivery(session, entry_id=entry_id, account_id=account, revision=1, due_at=at, text=body)
                ids.append(entry_id)
        run = self.trigger("calendar_publish")
        wait_for(
            lambda: any(
                ti["task_id"] == "send_slot" and ti["state"] in ("deferred", "running", "success")
                for ti in self.task_instances("calendar_publish", run)
            ),
            timeout=max(lead_seconds, 5),
            interval=0.2,
            what="calendar_publish's slot task to be waiting",
        )
        wait_for(lambda: datetime.now(UTC) >= due, timeout=lead_seconds + 5, interval=0.05, what="the due instant")
        return ids, due, run

    # -- one stack, many test modules ---------------------------------------------------------

    @contextmanager
    def for_module(self, *, keep_caps: Iterable[str] = (), watch_feed: bool = False) -> Iterator[KohoStack]:
        """This stack as a test module's own: a fresh world on entry, every run ended on exit.

        Fresh: the config folder rewritten (``keep_caps`` as in ``relaxed_config``), the calendar
        and output folders emptied, the ledger's rows deleted (the accounts stay), the sandbox
        reset with the same accounts and tokens, the mailbox emptied. ``watch_feed``: the disaster
        watcher polls the sandbox's JMA feed every second while the module runs (else it is paused).
        """
        self.settle()
        self.fresh_world(keep_caps=keep_caps)
        for dag_id in ALL_DAGS:
            if dag_id != WATCHER or watch_feed:
                self.set_paused(dag_id, False)
        try:
            yield self
        finally:
            self.settle()

    def settle(self) -> None:
        """Pause every DAG and end every queued or running run (marked failed), so that no task of
        one module writes into the next module's world, nor a schedule starts one meanwhile."""
        for dag_id in ALL_DAGS:
            self.set_paused(dag_id, True)
        for dag_id, run_id in self.unfinished_runs():
            self.call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})
        wait_for(
            lambda: not self.busy_tasks(),
            timeout=60,
            what="the ended runs' tasks to stop",
            interval=0.5,
            on_timeout=lambda: f"still busy: {self.busy_tasks()}",
        )

    def unfinished_runs(self) -> list[tuple[str, str]]:
        """(DAG id, run id) of every queued or running run."""
        found = self.call("GET", "/api/v2/dags/~/dagRuns", params={"state": list(UNFINISHED), "limit": 100})
        return [(run["dag_id"], run["dag_run_id"]) for run in found["dag_runs"]]

    def busy_tasks(self) -> list[str]:
        """Task instances of any DAG that are not done (:data:`BUSY`)."""
        found = self.call(
            "GET",
            "/api/v2/dags/~/dagRuns/~/taskInstances",
            params={"state": list(BUSY), "limit": 100},
        )
        return [f"{ti['dag_id']}.{ti['task_id']} ({ti['state']})" for ti in found["task_instances"]]

    def fresh_world(self, *, keep_caps: Iterable[str] = ()) -> None:
        """See :meth:`for_module`; call it only when no run is unfinished (:meth:`settle`)."""
        from koho.ledger import repo
        from koho.ledger.db import Ledger
        from koho.ledger.models import Base
        from sandbox.bootstrap import register_accounts

        assert self.config_dir is not None, "a shared stack has a config folder of its own"
        posting_config(
            self.config_dir, sandbox_url=self.sandbox.url, posting=SHARED_POSTING, poll_seconds=1, keep_caps=keep_caps
        )
        for folder in (self.calendar_dir, self.config_dir.parent / "website", self.config_dir.parent / "newsletter"):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        with Ledger(self.ledger_url).session() as session:
            for table in reversed(Base.metadata.sorted_tables):  # children before the rows they name
                if table.name != "accounts":
                    session.execute(table.delete())
            repo.upsert_accounts(session, self.rows)
        self.sandbox.admin("POST", "/reset")
        again = register_accounts(self.sandbox.url, self.rows, self.tokens)
        if again != self.connections:  # the processes' AIRFLOW_CONN_* variables name the first ones
            raise RuntimeError("the sandbox gave the demo accounts other handles or ids after a reset")
        if self.mailbox is not None:
            self.mailbox.messages.clear()

    def lift_rate_limits(self) -> None:
        """Benchmarks and load tests measure Airflow, not the platforms' quotas."""
        for platform, bucket in (
            ("x", "tweets:create"),
            ("line", "broadcast"),
            ("instagram", "publish"),
            ("mastodon", "api"),
            ("bluesky", "write"),
            ("bluesky", "session"),
            ("facebook", "calls"),
            ("instagram", "calls"),
            ("threads", "calls"),
            ("threads", "publish"),
        ):
            self.sandbox.limit(platform, bucket, 1_000_000, 3600)


@contextmanager
def posting_stack(work: Path, *, posting: dict | None = None, watch_feed: bool = False) -> Iterator[KohoStack]:
    """A started :class:`KohoStack` on ``posting_config`` with the posting DAGs parsed, stopped on exit.

    ``watch_feed``: the disaster watcher polls the sandbox's JMA feed every second; otherwise it
    is paused (no watcher polling a feed nobody serves).
    """
    config = posting_config(work / "config", posting=posting)
    live = KohoStack(work, config_dir=config)
    try:
        live.setup()
        if watch_feed:
            set_feed(config, live.sandbox.url, poll_seconds=1)
        live.start()
        live.wait_for_dags(POSTING_DAGS, timeout=240)
        if not watch_feed:
            live.set_paused("disaster_watch", True)
        yield live
    finally:
        live.stop()


@contextmanager
def shared_stack(work: Path) -> Iterator[KohoStack]:
    """The stack test modules share (:meth:`KohoStack.for_module`): every DAG parsed, the scheduled
    ones' first runs done, :data:`SHARED_POSTING` and :data:`SHARED_ENV` applied; stopped on exit."""
    config = posting_config(work / "config", posting=SHARED_POSTING)
    live = KohoStack(work, config_dir=config, extra_env=dict(SHARED_ENV))
    try:
        live.setup()
        set_feed(config, live.sandbox.url, poll_seconds=1)
        live.start()
        live.wait_for_dags(ALL_DAGS, timeout=240)
        # The scheduled DAGs' first runs (catchup off: the latest interval of each) go now, as on
        # a stack whose DAGs are unpaused at creation, not in the first module's first minute,
        # where their burst of writes to the SQLite metadata DB made a test's task lose a state
        # update.
        for dag_id in ALL_DAGS:
            if dag_id != WATCHER:
                live.set_paused(dag_id, False)
        wait_for(
            lambda: not live.unfinished_runs(),
            timeout=300,
            what="the scheduled DAGs' first runs",
            interval=1,
            on_timeout=lambda: f"unfinished: {live.unfinished_runs()}",
        )
        yield live
    finally:
        live.stop()


def _log_line(record: Any) -> str:
    """One structured log record as text: the message plus any error detail (the exception's text)."""
    if not isinstance(record, dict):
        return str(record)
    extra = {k: v for k, v in record.items() if k not in ("event", "timestamp", "level", "logger", "chan", "loc")}
    return str(record.get("event", "")) + (f" {json.dumps(extra, ensure_ascii=False, default=str)}" if extra else "")


__all__ = [
    "ALL_DAGS",
    "FAB",
    "POSTING_DAGS",
    "KohoStack",
    "posting_config",
    "posting_stack",
    "set_feed",
    "shared_stack",
]
