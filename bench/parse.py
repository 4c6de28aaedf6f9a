"""DAG parse time does not depend on the calendar: every DAG file with 10,000 entries and 500 accounts.

Target: each file in ``dags/`` parses in **under 2 s**, and its parse time with a 10,000-entry
calendar and a 500-account registry is **within 1.3x of the same file's time with an empty
calendar** (same registry), i.e. the ratio is about 1: DAG files read no calendar at parse time.

How it runs:

* A temporary ``include/`` is generated: the real templates and media, a registry of 500
  accounts (every platform, general and topic accounts) and either an empty calendar or
  10,000 entries split over five YAML files and one CSV. ``KOHO_INCLUDE_DIR`` points at it.
* Each DAG file is parsed the way the dag-processor does, ``DagBag(dag_folder=<file>)``, in a
  fresh Python process (Airflow itself imported before the clock starts); the two calendar
  sizes alternate, ``repeats`` times, and the median counts.
* Baseline, same run: the empty calendar. Also shown (no target): how long validating the big
  calendar takes (``load_calendar``), i.e. what ``calendar_sync`` costs at that size.

``--quick``: 1,000 entries and 100 accounts, one repeat.

A ratio counts as about 1 when it is at most 1.3, or when the two medians differ by at most
50 ms (a fresh process's start-up jitter is of that order, a large ratio of a 30 ms parse).
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench.runner import ROOT, BenchResult, Target, table

MAX_SECONDS = 2.0
MAX_RATIO = 1.3
#: Below this difference two parse times are the same: process start-up and scheduling on a shared
#: machine jitter by tens of milliseconds, which is a large ratio of a 30 ms parse.
NOISE_FLOOR_S = 0.05
PLATFORMS = ("x", "facebook", "instagram", "threads", "line", "bluesky", "mastodon")
TOPICS = ("child_rearing", "disaster", "tourism")
PROBE = r"""
import json, sys, time
sys.path[:0] = [sys.argv[2], sys.argv[3]]
import airflow  # noqa: F401 - imported before the clock starts, as the dag-processor has it
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
seconds = time.perf_counter() - started
print("KOHO_PARSE " + json.dumps({"seconds": seconds, "dags": sorted(bag.dags),
                                  "errors": {k: str(v)[-400:] for k, v in bag.import_errors.items()}}))
"""


def make_include(target: Path, *, accounts: int, entries: int, seed: int = 7) -> Path:
    """A copy of include/ with a generated registry and calendar."""
    import yaml

    source = ROOT / "include"
    shutil.copytree(source / "templates", target / "templates")
    shutil.copytree(source / "media", target / "media")
    config = target / "config"
    config.mkdir(parents=True)
    for name in ("departments.yaml", "policy.yaml", "emergency.yaml", "posting.yaml"):
        if (source / "config" / name).exists():
            shutil.copy(source / "config" / name, config / name)
    rng = random.Random(seed)
    rows = []
    for i in range(accounts):
        platform = PLATFORMS[i % len(PLATFORMS)]
        special = i % 3 == 0
        row = {
            "id": f"acct-{i:03d}",
            "name": f"こほ市アカウント{i}",
            "platform": platform,
            "handle": f"koho_{i:03d}",
            "kind": "special" if special else "general",
            "department": "pr",
            "status": "active",
            "connection_id": f"koho_acct_{i:03d}",
        }
        if special:
            row["topic"] = TOPICS[i % len(TOPICS)]
        rows.append(row)
    (config / "accounts.yaml").write_text(yaml.safe_dump({"accounts": rows}, allow_unicode=True), encoding="utf-8")

    calendar = target / "calendar"
    calendar.mkdir()
    start = datetime(2027, 4, 1, 9, 0)
    items = []
    for i in range(entries):
        at = start + timedelta(days=rng.randint(0, 364), hours=rng.randint(0, 9), minutes=rng.choice((0, 15, 30)))
        items.append(
            {
                "id": f"cal-{i:05d}",
                "title": f"お知らせ {i}",
                "publish_at": at.strftime("%Y-%m-%d %H:%M"),
                "targets": [r["id"] for r in rng.sample(rows, rng.randint(1, 3))],
                "text": f"こほ市からのお知らせ（{i}番）です。詳しくは市のホームページをご覧ください。",
                "link": "https://www.city.example.jp/news/",
                "images": ["gomi-calendar.png"],
            }
        )
    if not items:
        (calendar / "calendar.yaml").write_text("entries: []\n", encoding="utf-8")
        return target
    in_csv = items[: len(items) // 6]
    rest = items[len(items) // 6 :]
    for part in range(5):
        chunk = rest[part::5]
        (calendar / f"calendar-{part}.yaml").write_text(
            yaml.safe_dump({"entries": chunk}, allow_unicode=True), encoding="utf-8"
        )
    with (calendar / "imported.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "publish_at", "targets", "text", "link", "images"])
        for item in in_csv:
            writer.writerow(
                [
                    item["id"],
                    item["title"],
                    item["publish_at"],
                    ",".join(item["targets"]),
                    item["text"],
                    item["link"],
                    item["images"][0],
                ]
            )
    return target


def parse_once(dag_file: Path, include: Path, home: Path) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "KOHO_INCLUDE_DIR": str(include),
            "KOHO_CALENDAR_DIR": str(include / "calendar"),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    env.pop("KOHO_CONFIG_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(dag_file), str(ROOT / "plugins"), str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("KOHO_PARSE ")), None)
    if line is None:
        raise RuntimeError(f"parsing {dag_file.name} crashed:\n{out.stderr[-3000:]}")
    return json.loads(line.removeprefix("KOHO_PARSE "))


def validation_seconds(include: Path) -> tuple[float, int, int]:
    """How long ``load_calendar`` takes on the generated calendar (what calendar_sync pays)."""
    previous = os.environ.get("KOHO_INCLUDE_DIR")
    os.environ["KOHO_INCLUDE_DIR"] = str(include)
    try:
        from koho.calendar import load_calendar
        from koho.config.loader import load_config

        config = load_config()
        started = time.perf_counter()
        load = load_calendar(
            include / "calendar", config, now=datetime(2027, 3, 1).astimezone(), media_dir=include / "media"
        )
        return time.perf_counter() - started, len(load.entries), len(load.errors)
    finally:
        if previous is None:
            os.environ.pop("KOHO_INCLUDE_DIR", None)
        else:
            os.environ["KOHO_INCLUDE_DIR"] = previous


def run(args) -> BenchResult:
    quick = bool(getattr(args, "quick", False))
    accounts, entries, repeats = (100, 1000, 1) if quick else (500, 10_000, 5)
    dag_files = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    with tempfile.TemporaryDirectory(prefix="koho-bench-parse-") as tmp:
        work = Path(tmp)
        home = work / "airflow-home"
        home.mkdir()
        empty = make_include(work / "empty", accounts=accounts, entries=0)
        big = make_include(work / "big", accounts=accounts, entries=entries)
        times: dict[str, dict[str, list[float]]] = {f.name: {"empty": [], "big": []} for f in dag_files}
        problems: list[str] = []
        for _ in range(repeats):
            for dag_file in dag_files:
                for label, include in (("empty", empty), ("big", big)):
                    result = parse_once(dag_file, include, home)
                    if result["errors"] or not result["dags"]:
                        problems.append(f"{dag_file.name} ({label}): {result['errors'] or 'no DAG'}")
                    times[dag_file.name][label].append(result["seconds"])
        validate_s, valid, errors = validation_seconds(big)

    rows, targets = [], []
    worst_ratio, slowest = 0.0, 0.0
    for name, measured in times.items():
        e, b = statistics.median(measured["empty"]), statistics.median(measured["big"])
        ratio = b / e if e else float("inf")
        worst_ratio, slowest = max(worst_ratio, ratio), max(slowest, b, e)
        rows.append([name, e, b, ratio])
        targets.append(Target.at_most(f"{name}: parse s ({entries:,} entries)", b, MAX_SECONDS))
        same = ratio <= MAX_RATIO or b - e <= NOISE_FLOOR_S
        targets.append(Target(f"{name}: ratio vs empty calendar", ratio, MAX_RATIO, same, "<="))
    targets.append(Target.exactly("DAG files with import errors", len(problems), 0))
    figures = {
        "DAG files": len(dag_files),
        "accounts": accounts,
        "calendar entries": entries,
        "repeats (median)": repeats,
        "slowest parse (s)": slowest,
        "worst ratio big / empty": worst_ratio,
        f"load_calendar of {entries:,} entries (s) [no target]": validate_s,
        "entries valid / errors": f"{valid:,} / {errors:,}",
    }
    notes = [
        "Parse seconds per DAG file (median; DagBag in a fresh process, Airflow pre-imported):\n"
        + table(["DAG file", "empty calendar", f"{entries:,} entries", "ratio"], rows),
        f"A ratio above {MAX_RATIO} still counts as 'the same' when the two medians differ by at most "
        f"{NOISE_FLOOR_S * 1000:.0f} ms (process start-up jitter on a shared machine).",
    ]
    if problems:
        notes.append("Import errors:\n" + "\n".join(problems))
    return BenchResult("parse", figures, targets, notes)
