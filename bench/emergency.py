"""Emergency broadcast speed: from the trigger to every demo account published, on a real Airflow.

Targets (policy P3, "every relevant account, in seconds"): over ``runs`` broadcasts, the time
from ``POST /api/v2/dags/emergency_broadcast/dagRuns`` (as the crisis officer, through the FAB
auth manager) until the ledger shows every delivery published — all 11 posting accounts of the
demo city plus the website — has **p50 ≤ 10 s and p95 ≤ 20 s**, both when Airflow is idle and
while a calendar load is being sent (``load_entries`` calendar entries to every account, due over
``load_slots`` one-second time slots from the instant the broadcast is triggered, sent by
**calendar_publish** in the ``koho_publish`` pool: one slot task per slot, each holding a worker
while it waits for its second, as many at once as the pool allows). Every broadcast must reach
every account exactly once.

Baseline, same run: the same broadcast (validation, planning, parallel send, summary) called
directly in this process, without Airflow — what the platforms and the ledger cost. The figures
print each latency as a ratio to it: the rest is Airflow's scheduling (run creation, task queueing,
process start-up).

Stack: ``harness.koho_stack.KohoStack`` — api-server, scheduler, dag-processor and triggerer as
separate processes, LocalExecutor, SQLite metadata DB and ledger, the sandbox in this process.
Sandbox rate limits are lifted: the benchmark measures Koho and Airflow, not platform quotas.
That includes Bluesky's ``createSession`` quota (30 per 5 minutes per account): every task logs in
afresh, so ~20 broadcasts and calendar slots within five minutes exhaust it, and the next Bluesky
post then waits for the window (measured: one broadcast took 46 s, all of it Bluesky waiting).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.runner import BenchResult, Target, table

P50_LIMIT = 10.0
P95_LIMIT = 20.0


@dataclass(frozen=True)
class Config:
    runs: int = 10  # broadcasts on an idle Airflow
    load_runs: int = 10  # broadcasts while a calendar load is sent
    load_entries: int = 40  # calendar entries, each to every text account
    #: ...spread over this many one-second time slots from the trigger's instant. 1: all at that
    #: instant (one slot task). 20 makes 12 slot tasks hold workers at once, the case the pools
    #: guard against; a run at 20 timed out waiting for its second load while LINE's default
    #: posting budget still paced load tests (since lifted by relaxed_config): not yet re-run.
    load_slots: int = 1
    baseline_runs: int = 5
    lead_seconds: float = 20.0  # the calendar load is due this long after it is planned


FULL = Config()
QUICK = Config(runs=2, load_runs=1, load_entries=8, baseline_runs=1)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); exact for the small samples used here."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def run(args: Any) -> BenchResult:
    cfg = QUICK if getattr(args, "quick", False) else FULL
    with tempfile.TemporaryDirectory(prefix="koho-bench-emergency-") as tmp:
        return measure(cfg, Path(tmp))


@contextmanager
def _environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def measure(cfg: Config, work: Path) -> BenchResult:
    import logging

    from harness.koho_stack import posting_stack

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # the SMTP catcher logs every command
    logging.getLogger("koho").setLevel(logging.WARNING)  # the in-process baseline logs every delivery

    with posting_stack(work) as stack:
        stack.lift_rate_limits()
        conn_env = {k: v for k, v in stack.env.items() if k.startswith("AIRFLOW_CONN_")}
        with _environment({**conn_env, "KOHO_CONFIG_DIR": str(stack.config_dir)}):
            baseline = [_direct(stack, i) for i in range(cfg.baseline_runs)]
        # The first task after Airflow starts pays one-off costs (byte-compiling Koho, warming the
        # executor's processes and the page cache); it is reported on its own, not in the targets.
        first = _broadcast(stack, "first after start")
        quiet = [_broadcast(stack, f"idle {i + 1}") for i in range(cfg.runs)]
        loaded = []
        load_stats = []
        for i in range(cfg.load_runs):
            stats, latency = _broadcast_under_load(stack, cfg, i)
            loaded.append(latency)
            load_stats.append(stats)
    return _result(cfg, baseline, first, quiet, loaded, load_stats)


# ---------------------------------------------------------------------------------------------
# one broadcast


def _form(label: str) -> dict[str, Any]:
    return {
        "message": f"【訓練】ベンチマーク {label}: 緊急配信の速さを測っています。実際の災害ではありません。",
        "confirmation": "緊急配信",
        "severity": "advisory",
    }


def _direct(stack, number: int) -> dict[str, Any]:
    """The broadcast without Airflow: validation, planning, parallel send, summary, in this process."""
    from koho.config import load_config
    from koho.config.posting import load_posting_settings
    from koho.emergency import broadcast
    from koho.ledger.db import Ledger

    config, settings, ledger = load_config(), load_posting_settings(), Ledger(stack.ledger_url)
    started = time.monotonic()
    check = broadcast.validate_emergency(
        _form(f"baseline {number + 1}"),
        config,
        settings,
        entry_id=f"bench-baseline-{number}-{os.getpid()}",
        triggered_by="bench",
        lookup=broadcast.lookup_in(ledger),
    )
    result = broadcast.send_all(ledger, check, config, settings, run_id=None)
    seconds = time.monotonic() - started
    return {"seconds": seconds, "published": result["published"], "total": result["total"]}


def _entry_id(run: dict[str, Any]) -> str:
    from koho.emergency.broadcast import emergency_entry_id

    run_after = datetime.fromisoformat(run["run_after"].replace("Z", "+00:00"))
    return emergency_entry_id(run["dag_run_id"], run_after)


def _published(stack, entry_id: str) -> tuple[int, int, datetime | None]:
    from sqlalchemy import select

    from koho.ledger.db import Ledger
    from koho.ledger.models import Delivery

    with Ledger(stack.ledger_url).session(readonly=True) as session:
        rows = session.execute(
            select(Delivery.status, Delivery.published_at).where(Delivery.entry_id == entry_id)
        ).all()
    done = [r.published_at for r in rows if r.status == "published"]
    return len(done), len(rows), max(done) if done else None


def _broadcast(stack, label: str) -> dict[str, Any]:
    from harness.waiting import wait_for

    expected = len([r for r in stack.rows if r["status"] == "active" and r["platform"] != "youtube"]) + 1
    started = datetime.now(UTC)
    response = stack.trigger_as("crisis", "emergency_broadcast", _form(label))
    if response.status_code != 200:
        raise RuntimeError(f"trigger refused: {response.status_code} {response.text[:300]}")
    run = response.json()
    entry_id = _entry_id(run)

    def all_out():
        done, total, last = _published(stack, entry_id)
        return last if total == expected and done == total else None

    last = wait_for(
        all_out,
        timeout=180,
        interval=0.05,
        what=f"broadcast {label} published everywhere",
        on_timeout=lambda: stack.tail("scheduler"),
    )
    state = stack.wait_run("emergency_broadcast", run["dag_run_id"], timeout=120)
    posts = [p for p in stack.sandbox.posts() if label in p["text"]]
    return {
        "label": label,
        "seconds": (last - started).total_seconds(),
        "state": state,
        "posts": len(posts),
        "expected_posts": expected - 1,
        "run_id": run["dag_run_id"],
    }


def _load_status(stack, ids: list[str]) -> dict[str, int]:
    from sqlalchemy import func, select

    from koho.ledger.db import Ledger
    from koho.ledger.models import Delivery

    with Ledger(stack.ledger_url).session(readonly=True) as session:
        rows = session.execute(
            select(Delivery.status, func.count()).where(Delivery.entry_id.in_(ids)).group_by(Delivery.status)
        ).all()
    return {status: count for status, count in rows}


def _broadcast_under_load(stack, cfg: Config, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from harness.waiting import wait_for

    ids, due, run = stack.calendar_load(
        entries=cfg.load_entries,
        lead_seconds=cfg.lead_seconds,
        prefix=f"bench-load-{number}",
        slots=cfg.load_slots,
        text=f"負荷 {number}-{{i}}: 市からのお知らせ（ベンチマーク用の通常投稿）です。",
    )
    holding = sum(
        ti["task_id"] == "send_slot" and ti["state"] == "running"
        for ti in stack.task_instances("calendar_publish", run)
    )
    latency = _broadcast(stack, f"load {number + 1}")
    try:
        status = wait_for(
            lambda: (s := _load_status(stack, ids)) and s.get("published", 0) == sum(s.values()) and s,
            timeout=300,
            interval=0.5,
            what="the calendar load to be published",
        )
    except TimeoutError:  # reported as a missed target with the statuses, not a crash
        status = _load_status(stack, ids)
        print(f"load {number + 1}: not all published after 300 s: {status}", flush=True)
    finished = datetime.now(UTC)
    stats = {
        "calendar deliveries": sum(status.values()),
        "calendar published": status.get("published", 0),
        "slot tasks holding workers at the trigger": holding,
        "calendar done after due (s)": (finished - due).total_seconds(),
    }
    return stats, latency


# ---------------------------------------------------------------------------------------------
# the result


def _result(
    cfg: Config, baseline: list[dict], first: dict, quiet: list[dict], loaded: list[dict], load_stats: list[dict]
) -> BenchResult:
    base = statistics.median(b["seconds"] for b in baseline)
    q = [r["seconds"] for r in quiet]
    ld = [r["seconds"] for r in loaded]
    every = quiet + loaded
    checked = [first, *every]
    figures = {
        "broadcasts (idle / under load)": f"{len(quiet)} / {len(loaded)}",
        "accounts per broadcast": f"{every[0]['expected_posts']} + website" if every else "-",
        "baseline: direct broadcast, no Airflow (s, median)": base,
        "first broadcast after Airflow started (s, not a target)": first["seconds"],
        "idle: p50 (s)": percentile(q, 50),
        "idle: p95 (s)": percentile(q, 95),
        "idle: max (s)": max(q),
        "under load: p50 (s)": percentile(ld, 50),
        "under load: p95 (s)": percentile(ld, 95),
        "under load: max (s)": max(ld) if ld else float("nan"),
        "idle p50 / baseline": percentile(q, 50) / base,
        "under load p50 / baseline": percentile(ld, 50) / base,
        "calendar deliveries per load": load_stats[0]["calendar deliveries"] if load_stats else 0,
    }
    wrong_posts = sum(r["posts"] != r["expected_posts"] for r in checked)
    failed_runs = sum(r["state"] != "success" for r in checked)
    targets = [
        Target.at_most("idle p50 (s)", percentile(q, 50), P50_LIMIT),
        Target.at_most("idle p95 (s)", percentile(q, 95), P95_LIMIT),
        Target.at_most("under load p50 (s)", percentile(ld, 50), P50_LIMIT),
        Target.at_most("under load p95 (s)", percentile(ld, 95), P95_LIMIT),
        Target.exactly("broadcasts not posted exactly once everywhere", wrong_posts, 0),
        Target.exactly("broadcast runs not successful", failed_runs, 0),
        Target.exactly(
            "calendar load deliveries not published",
            sum(s["calendar deliveries"] - s["calendar published"] for s in load_stats),
            0,
        ),
    ]
    notes = [
        table(
            ["broadcast", "seconds", "/ baseline", "posts", "run"],
            [[r["label"], r["seconds"], r["seconds"] / base, r["posts"], r["state"]] for r in checked],
        ),
        table(
            [
                "load run",
                "calendar deliveries",
                "published",
                "slot tasks in workers at the trigger",
                "all done after due (s)",
            ],
            [
                [
                    i + 1,
                    s["calendar deliveries"],
                    s["calendar published"],
                    s["slot tasks holding workers at the trigger"],
                    s["calendar done after due (s)"],
                ]
                for i, s in enumerate(load_stats)
            ],
        ),
        "Latency = trigger request sent -> last delivery's published_at in the ledger (same clock). "
        "Baseline = the same broadcast called in-process without Airflow. Sandbox rate limits lifted; "
        f"the calendar load is {cfg.load_entries} entries to every text account (Instagram needs images), "
        f"over {cfg.load_slots} one-second slots from the instant the broadcast is triggered.",
    ]
    return BenchResult("emergency", figures, targets, notes)
