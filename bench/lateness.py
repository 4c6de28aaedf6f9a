"""Publishing lateness on a real Airflow: 100 calendar entries spread over 10 minutes.

Target: a delivery's platform call starts at most **1 s after its due time at p50** and **5 s at
p99** (lateness = ``DeliveryOutcome.late_seconds``: call start minus due time, so the API call
itself is not counted), and every delivery is published exactly once.

How it runs:

* :class:`harness.airflow_stack.AirflowStack` starts Airflow 3 for real — api-server, scheduler,
  dag-processor, triggerer; LocalExecutor, SQLite — with the sandbox and the demo accounts
  (volume rules relaxed so that any hour of the day works: no quiet hours, no spacing).
* A calendar file gets ``entries`` entries at random whole-5-second instants over ``spread``
  seconds (seeded), each to 1–3 random accounts that can publish, so several entries often share
  an instant (one time slot). ``calendar_sync`` is triggered once; from there on everything is
  the production path: the sync plans the deliveries and kicks ``calendar_publish``, whose runs
  (scheduled every five minutes, plus the kick) defer each time slot on the triggerer and send it.
* Lateness comes from the outcomes the ``send_slot`` tasks return (their XCom), one per delivery.
* Baseline, same run: the sandbox API call time (``call_seconds`` of the same outcomes). The
  ratio p50 lateness / p50 call shows how lateness compares with the call itself.

``--quick``: 10 entries over one minute (a smoke run; the targets still apply).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.runner import BenchResult, Target, table

P50_TARGET = 1.0
P99_TARGET = 5.0
#: Accounts the entries go to: every demo account that can publish (YouTube is read-only).
ACCOUNTS = (
    "city-x",
    "city-facebook",
    "city-instagram",
    "city-line",
    "city-bluesky",
    "city-mastodon",
    "city-threads",
    "kosodate-line",
    "kosodate-instagram",
    "bousai-x",
    "kanko-instagram",
)
IMAGE = "https://www.city.example.jp/news/media/oshirase.png"
LEAD = timedelta(seconds=75)  # the first entry is due this long after the sync is triggered


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def calendar_yaml(entries: int, spread: int, start, seed: int) -> tuple[str, dict[str, Any]]:
    from koho.timeutil import to_local

    rng = random.Random(seed)
    lines = ["entries:"]
    due: dict[str, Any] = {}
    for i in range(entries):
        at = start + timedelta(seconds=5 * rng.randint(0, spread // 5))
        targets = rng.sample(ACCOUNTS, rng.randint(1, 3))
        with_image = any("instagram" in t for t in targets)  # Instagram needs an image
        entry_id = f"bench-{i:03d}"
        due[entry_id] = at
        lines += [
            f"  - id: {entry_id}",
            f"    title: ベンチマーク {i}",
            f'    publish_at: "{to_local(at):%Y-%m-%dT%H:%M:%S+09:00}"',
            f"    targets: [{', '.join(targets)}]",
            f"    text: こほ市からのお知らせ（{i}番）です。本日の窓口は17時まで開いています。",
        ]
        if with_image:
            lines.append(f"    images: [{IMAGE}]")
    return "\n".join(lines) + "\n", due


def collect_outcomes(stack: Any) -> dict[int, dict]:
    """Every delivery's published outcome, from the send_slot tasks of every calendar_publish run."""
    found: dict[int, dict] = {}
    for run in stack.runs("calendar_publish"):
        for ti in stack.task_instances("calendar_publish", run["dag_run_id"]):
            if ti["task_id"] != "send_slot" or ti["state"] != "success":
                continue
            for outcome in stack.xcom("calendar_publish", run["dag_run_id"], "send_slot", ti["map_index"]) or []:
                if outcome.get("status") == "published" and outcome.get("late_seconds") is not None:
                    found.setdefault(outcome["delivery_id"], outcome)
    return found


def run(args) -> BenchResult:
    from sqlalchemy import select

    from harness.airflow_stack import AirflowStack, relaxed_config
    from harness.waiting import wait_for
    from koho.ledger.db import Ledger
    from koho.ledger.models import Delivery
    from koho.timeutil import utcnow

    quick = bool(getattr(args, "quick", False))
    entries, spread = (10, 60) if quick else (100, 600)
    seed = 20261125
    work = Path(tempfile.mkdtemp(prefix="koho-bench-lateness-"))
    try:
        config = relaxed_config(work / "config")
        with AirflowStack(work, config_dir=config) as stack:
            stack.wait_for_dags(["calendar_sync", "calendar_publish"])
            start = (utcnow() + LEAD).replace(microsecond=0)
            text, due = calendar_yaml(entries, spread, start, seed)
            (stack.calendar_dir / "bench.yaml").write_text(text, encoding="utf-8")
            run_id = stack.trigger("calendar_sync", run_id="bench-sync")
            sync_state = stack.wait_run("calendar_sync", run_id, timeout=180)
            ledger = Ledger(stack.ledger_url)

            def settled() -> list[Delivery] | None:
                with ledger.session(readonly=True) as session:
                    rows = list(session.scalars(select(Delivery)))
                final = {"published", "failed", "cancelled", "needs_attention"}
                return rows if rows and all(d.status in final for d in rows) else None

            last_due = max(due.values())
            wait = (last_due - utcnow()).total_seconds() + 120
            rows = wait_for(
                settled,
                timeout=max(wait, 60),
                what="every delivery to be sent",
                interval=1.0,
                on_timeout=lambda: stack.tail("scheduler"),
            )
            outcomes = collect_outcomes(stack)
            posts = stack.sandbox.posts()
            publish_runs = len(stack.runs("calendar_publish"))
    except BaseException:
        print(f"lateness: logs kept in {work}", flush=True)
        raise

    published = [d for d in rows if d.status == "published"]
    late = [o["late_seconds"] for o in outcomes.values()]
    calls = [o["call_seconds"] for o in outcomes.values() if o.get("call_seconds") is not None]
    slots = len({d.due_at for d in rows})
    duplicates = sum(n - 1 for n in Counter((p["platform"], p["account_id"], p["text"]) for p in posts).values())
    p50, p99 = (percentile(late, 50), percentile(late, 99)) if late else (float("inf"), float("inf"))
    call_p50 = statistics.median(calls) if calls else float("nan")
    figures = {
        "entries": entries,
        "spread (s)": spread,
        "deliveries": len(rows),
        "time slots": slots,
        "calendar_publish runs": publish_runs,
        "calendar_sync state": sync_state,
        "published": len(published),
        "outcomes with lateness": len(late),
        "lateness p50 (s)": p50,
        "lateness p90 (s)": percentile(late, 90) if late else float("inf"),
        "lateness p99 (s)": p99,
        "lateness max (s)": max(late) if late else float("inf"),
        "lateness min (s)": min(late) if late else float("inf"),
        "sandbox call p50 (s) [baseline]": call_p50,
        "sandbox call p99 (s)": percentile(calls, 99) if calls else float("nan"),
        "lateness p50 / call p50": p50 / call_p50 if calls and call_p50 else float("nan"),
        "duplicate posts": duplicates,
        "CPUs": os.cpu_count() or 0,
        "load average (1/5/15 min) at the end": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    worst = sorted(outcomes.values(), key=lambda o: o["late_seconds"], reverse=True)[:5]
    unpublished = [
        [d.id, d.entry_id, d.account_id, d.status, (d.last_error or "")[:90]] for d in rows if d.status != "published"
    ]
    notes = [
        "Lateness = call start - due time (DeliveryOutcome.late_seconds), from the send_slot tasks' XCom. "
        "The sandbox call time is the same run's baseline.",
        "Worst five:\n"
        + table(
            ["delivery", "entry", "account", "due", "late (s)", "call (s)"],
            [
                [
                    o["delivery_id"],
                    o["entry_id"],
                    o["account_id"],
                    o["due_at"][11:19],
                    o["late_seconds"],
                    o.get("call_seconds") or 0.0,
                ]
                for o in worst
            ],
        ),
    ]
    if unpublished:
        notes.append("Not published:\n" + table(["delivery", "entry", "account", "status", "reason"], unpublished))
    if p99 > P99_TARGET or len(published) < len(rows):
        notes.append(f"Airflow logs and the ledger are kept in {work} for a look at the misses.")
    else:
        shutil.rmtree(work, ignore_errors=True)
    targets = [
        Target.at_most("lateness p50 (s)", p50, P50_TARGET),
        Target.at_most("lateness p99 (s)", p99, P99_TARGET),
        Target.exactly("deliveries not published", len(rows) - len(published), 0),
        Target.exactly("duplicate posts", duplicates, 0),
    ]
    return BenchResult("lateness", figures, targets, notes)
