"""Exactly once under faults, on a real Airflow: no post twice, none silently lost.

``python bench/exactly_once.py [--deliveries 300] [--kills 2] [--scheduler-restarts 1] [--seed 1]`` — a
script, not a registered benchmark: it judges correctness, not speed, and takes about seven minutes.
CI runs the same scenario at 45 deliveries, one kill and one scheduler restart (``tests/e2e/test_exactly_once.py``).

What it does:

* :class:`harness.airflow_stack.AirflowStack` starts Airflow 3 (api-server, scheduler,
  dag-processor, triggerer; LocalExecutor, SQLite) with the sandbox and the demo accounts.
* A calendar of entries to three accounts each (``deliveries`` in all) due over a few minutes is
  synced by ``calendar_sync``; ``calendar_publish`` sends it.
* Faults on every platform and every operation (publishes and the reads that reconcile them),
  each kind at a seeded random rate, about 20 % of requests in all: ``lost_response`` (applied,
  answer lost), ``server_error`` (5xx), ``slow`` (answers after 20 s, beyond the hooks' 15 s
  timeout, and applies the request then), ``rate_limit`` (429 with reset headers).
* ``kills`` times, while deliveries are ``sending``, the process of a running ``send_slot`` task
  (its ``pid`` from the REST API) gets ``kill -9``; Airflow retries the task. Then
  ``scheduler_restarts`` times, still while deliveries are ``sending``, the scheduler's main
  process gets ``kill -9`` and a new scheduler is started (``AirflowStack.crash_and_restart``).
* ``calendar_publish`` is triggered once a minute after the last due time (as an operator would)
  until every delivery is settled; deliveries left ``sending`` are reclaimed after
  ``KOHO_STALE_AFTER_SECONDS`` (180 s here) and reconciled.

Then it counts: sandbox posts per (platform, account, text) — more than one is a duplicate —,
sandbox posts no delivery records (orphans), and deliveries neither published (with a remote id
the sandbox has) nor failed with a reason (lost).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

ACCOUNTS = (
    "city-x",
    "city-facebook",
    "city-line",
    "city-bluesky",
    "city-mastodon",
    "city-threads",
    "kosodate-line",
    "bousai-x",
)
PLATFORMS = ("x", "facebook", "line", "bluesky", "mastodon", "threads")
KINDS = {"lost_response": {}, "server_error": {}, "slow": {"delay": 20.0}, "rate_limit": {"delay": 2.0}}
FAULT_RATE = 0.2
STALE_AFTER_S = 180


def inject_faults(sandbox: Any, *, rate: float = FAULT_RATE, seed: int = 1) -> list[dict]:
    """One rule per kind and platform; per-kind rates chosen so that ~``rate`` of requests fail."""
    per_kind = 1 - (1 - rate) ** (1 / len(KINDS))
    rules = []
    for p, platform in enumerate(PLATFORMS):
        for k, (kind, extra) in enumerate(KINDS.items()):
            rules.append(sandbox.fault(platform, kind, rate=round(per_kind, 4), seed=seed * 1000 + p * 10 + k, **extra))
    return rules


def calendar_yaml(deliveries: int, start, *, seed: int = 11, every: int = 10, per_slot: int = 15) -> str:
    from koho.timeutil import to_local

    rng = random.Random(seed)
    entries = deliveries // 3
    per_instant = max(1, per_slot // 3)
    lines = ["entries:"]
    for i in range(entries):
        at = start + timedelta(seconds=every * (i // per_instant))
        lines += [
            f"  - id: eo-{i:03d}",
            f"    title: 配信テスト {i}",
            f'    publish_at: "{to_local(at):%Y-%m-%dT%H:%M:%S+09:00}"',
            f"    targets: [{', '.join(rng.sample(ACCOUNTS, 3))}]",
            f"    text: こほ市からのお知らせ（{i}番）です。窓口は17時まで開いています。",
        ]
    return "\n".join(lines) + "\n"


class Killer(threading.Thread):
    """While deliveries are 'sending': ``kills`` times, kills (SIGKILL) the process of a running
    send_slot task; then ``scheduler_restarts`` times, crashes the scheduler (SIGKILL of its main
    process) and starts a new one."""

    def __init__(
        self, stack: Any, ledger: Any, kills: int, *, scheduler_restarts: int = 0, spacing: float = 40.0
    ) -> None:
        super().__init__(name="koho-killer", daemon=True)
        self.stack, self.ledger, self.kills, self.spacing = stack, ledger, kills, spacing
        self.scheduler_restarts = scheduler_restarts
        self.done: list[dict] = []
        self.restarts: list[dict] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from sqlalchemy import select

        from koho.ledger.models import Delivery

        last = 0.0
        while not self.stop.is_set() and (len(self.done) < self.kills or len(self.restarts) < self.scheduler_restarts):
            time.sleep(0.05)  # polling the ledger for a delivery being sent: the moment to strike
            if time.monotonic() - last < self.spacing:
                continue
            with self.ledger.session(readonly=True) as session:
                sending = list(session.scalars(select(Delivery).where(Delivery.status == "sending")))
            if not sending:
                continue
            if len(self.done) >= self.kills:
                self.stack.crash_and_restart("scheduler")
                self.restarts.append({"sending": sorted(d.id for d in sending), "at": time.time()})
                print(f"crashed and restarted the scheduler while {len(sending)} deliveries were sending", flush=True)
                last = time.monotonic()
                continue
            runs = {d.dag_run_id.split("/", 1)[1] for d in sending if d.dag_run_id and "/" in d.dag_run_id}
            for run_id in runs:
                try:
                    tis = self.stack.task_instances("calendar_publish", run_id)
                except Exception as exc:  # the API is busy: try again on the next tick
                    print(f"killer: could not list tasks of {run_id}: {exc}", flush=True)
                    continue
                running = [t for t in tis if t["task_id"] == "send_slot" and t["state"] == "running" and t.get("pid")]
                if not running:
                    continue
                target = running[0]
                try:
                    os.kill(int(target["pid"]), signal.SIGKILL)
                except ProcessLookupError:
                    continue
                ids = sorted(d.id for d in sending if d.dag_run_id == f"calendar_publish/{run_id}")
                self.done.append(
                    {
                        "run_id": run_id,
                        "map_index": target["map_index"],
                        "pid": target["pid"],
                        "sending": ids,
                        "at": time.time(),
                    }
                )
                print(
                    f"killed pid {target['pid']} (send_slot {run_id}[{target['map_index']}]) while sending "
                    f"{len(ids)} deliveries",
                    flush=True,
                )
                last = time.monotonic()
                break


def fault_run(
    workdir: Path,
    *,
    deliveries: int = 300,
    kills: int = 2,
    scheduler_restarts: int = 1,
    seed: int = 1,
    stale_after: int = STALE_AFTER_S,
) -> dict[str, Any]:
    """Run the scenario; returns the counts (see the module docstring)."""
    from sqlalchemy import select

    from harness.airflow_stack import AirflowStack, relaxed_config
    from harness.waiting import wait_for
    from koho.ledger.db import Ledger
    from koho.ledger.models import Delivery
    from koho.timeutil import utcnow

    config = relaxed_config(workdir / "config")
    env = {"KOHO_STALE_AFTER_SECONDS": str(stale_after)}
    started = time.monotonic()
    with AirflowStack(workdir, config_dir=config, extra_env=env) as stack:
        stack.wait_for_dags(["calendar_sync", "calendar_publish"])
        ledger = Ledger(stack.ledger_url)
        rules = inject_faults(stack.sandbox, seed=seed)
        start = (utcnow() + timedelta(seconds=75)).replace(microsecond=0)
        (stack.calendar_dir / "faults.yaml").write_text(calendar_yaml(deliveries, start, seed=seed), encoding="utf-8")
        killer = Killer(stack, ledger, kills, scheduler_restarts=scheduler_restarts)
        killer.start()
        sync = stack.trigger("calendar_sync", run_id="faults-sync")
        sync_state = stack.wait_run("calendar_sync", sync, timeout=240)
        with ledger.session(readonly=True) as session:
            planned = len(session.scalars(select(Delivery.id)).all())
            last_due = max(session.scalars(select(Delivery.due_at)).all())

        final = {"published", "failed", "cancelled", "needs_attention"}
        kicks = [0]
        next_kick = [last_due + timedelta(seconds=60)]

        def settled():
            if utcnow() >= next_kick[0]:  # an operator re-running calendar_publish once a minute
                stack.trigger("calendar_publish", run_id=f"faults-kick-{kicks[0]}")
                kicks[0] += 1
                next_kick[0] = utcnow() + timedelta(seconds=60)
            with ledger.session(readonly=True) as session:
                rows = list(session.scalars(select(Delivery)))
            return rows if rows and all(d.status in final for d in rows) else None

        rows = wait_for(
            settled,
            timeout=(last_due - utcnow()).total_seconds() + stale_after + 600,
            what="every delivery to settle",
            interval=2.0,
            on_timeout=lambda: stack.tail("scheduler"),
        )
        killer.stop.set()
        stack.sandbox.admin("DELETE", "/faults")
        posts = stack.sandbox.admin("GET", "/posts", params={"include_deleted": True})
        fired = {f"{r['platform']}:{r['kind']}": r for r in rules}
        fault_stats = stack.sandbox.admin("GET", "/stats")
    took = time.monotonic() - started

    by_key = Counter((p["platform"], p["account_id"], p["text"]) for p in posts)
    duplicates = sum(n - 1 for n in by_key.values() if n > 1)
    twice = [
        {
            "platform": key[0],
            "account": key[1],
            "text": key[2][:40],
            "posts": [
                (p["post_id"], p["created_at"]) for p in posts if (p["platform"], p["account_id"], p["text"]) == key
            ],
            "deliveries": [(d.id, d.status, d.attempts, d.remote_id) for d in rows if d.text == key[2]],
        }
        for key, n in by_key.items()
        if n > 1
    ]
    remote_ids = {p["post_id"] for p in posts}
    published = [d for d in rows if d.status == "published"]
    social = [d for d in published if d.account_id != "website"]
    missing_remote = [d.id for d in social if d.remote_id not in remote_ids]
    recorded = {d.remote_id for d in social}
    orphans = [p["post_id"] for p in posts if p["post_id"] not in recorded]
    failed = [d for d in rows if d.status == "failed"]
    lost = [
        d.id for d in rows if d.status not in ("published", "failed") or (d.status == "failed" and not d.last_error)
    ]
    killed_ids = sorted({i for k in killer.done + killer.restarts for i in k["sending"]})
    killed_final = Counter(d.status for d in rows if d.id in killed_ids)
    return {
        "deliveries planned": planned,
        "calendar_sync": sync_state,
        "published": len(published),
        "failed (with a reason)": len([d for d in failed if d.last_error]),
        "failure reasons": Counter((d.last_error or "")[:120] for d in failed).most_common(5),
        "lost": len(lost),
        "lost ids": lost[:20],
        "sandbox posts": len(posts),
        "duplicate posts": duplicates,
        "duplicates": twice,
        "orphan posts (no delivery)": len(orphans),
        "published without its post": len(missing_remote),
        "deliveries attempted more than once": sum(1 for d in rows if d.attempts > 1),
        "max attempts": max((d.attempts for d in rows), default=0),
        "kills": killer.done,
        "scheduler restarts": killer.restarts,
        "deliveries sending at a kill or restart": len(killed_ids),
        "their final statuses": dict(killed_final),
        "fault rules": len(fired),
        "fault rate per kind": next(iter(fired.values()))["rate"] if fired else 0,
        "publish requests by status": Counter((c["status"]) for c in fault_stats["counts"] for _ in range(c["count"])),
        "operator re-runs of calendar_publish": kicks[0],
        "seconds": round(took, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--scheduler-restarts", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="koho-faults-"))
    report = fault_run(
        workdir,
        deliveries=args.deliveries,
        kills=args.kills,
        scheduler_restarts=args.scheduler_restarts,
        seed=args.seed,
    )
    for key, value in report.items():
        print(f"{key}: {value}")
    print(f"(work folder, logs: {workdir})")
    ok = report["duplicate posts"] == 0 and report["lost"] == 0 and report["orphan posts (no delivery)"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "plugins"), str(Path(__file__).resolve().parents[1])]
    raise SystemExit(main())
