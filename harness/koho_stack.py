"""A real Airflow with the FAB auth manager, Koho's roles and the demo users, for the posting tests
(ad-hoc, emergency, watcher) and ``bench/emergency.py``.

It is :class:`harness.airflow_stack.AirflowStack` (api-server, scheduler, dag-processor, triggerer as
separate processes, LocalExecutor, the sandbox, the ledger, an SMTP catcher) with two additions:
the FAB auth manager, whose roles and users ``scripts/koho_auth.py`` creates before any DAG is
parsed, and REST calls as any of the demo users (``admin``, ``crisis``, ``staff``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
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


def posting_config(
    target: Path, *, sandbox_url: str | None = None, posting: dict | None = None, poll_seconds: float = 1
) -> Path:
    """``relaxed_config`` plus posting.yaml (the PR section = admin) and the watcher pointed at the sandbox."""
    relaxed_config(target)
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


def _log_line(record: Any) -> str:
    """One structured log record as text: the message plus any error detail (the exception's text)."""
    if not isinstance(record, dict):
        return str(record)
    extra = {k: v for k, v in record.items() if k not in ("event", "timestamp", "level", "logger", "chan", "loc")}
    return str(record.get("event", "")) + (f" {json.dumps(extra, ensure_ascii=False, default=str)}" if extra else "")


__all__ = ["FAB", "POSTING_DAGS", "KohoStack", "posting_config", "posting_stack", "set_feed"]
