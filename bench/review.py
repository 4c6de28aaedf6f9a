"""The account review at city scale: 1,000 accounts × 400 days of metrics.

Target: reviewing (building the review's input from the rows, figures for every month, quarter
and year, ranks within platform and kind, a verdict per account, what worked per account) takes
at most **3×** the time of reading the same metrics from a ledger-like database.

How it runs:

* ``accounts`` accounts (every platform and the six stories of ``sandbox.history``, in turn)
  get 400 days of history each, written to a SQLite file with a daily account snapshot table and
  a per-post table, shaped like the ledger's metrics (generation and writing are not timed).
* Baseline, same run: reading every snapshot and post row, ordered by account, in one pass.
* Measured: turning those rows into ``koho.review.model`` records, ``review_accounts`` over
  them (what worked per account included). The median of ``repeats`` alternating runs counts.

``--quick``: 100 accounts, one repeat.
"""

from __future__ import annotations

import gc
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.runner import BenchResult, Target, table
from koho.config.schema import ReviewPolicy
from koho.platforms.catalog import PLATFORMS as CATALOG
from koho.review.model import AccountHistory, AccountRecord, PostRecord, Snapshot, bulk
from koho.review.verdict import Review, review_accounts

MAX_RATIO = 3.0
DAYS = 400
END = date(2026, 11, 30)
AS_OF = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
PLATFORMS = ("x", "facebook", "instagram", "threads", "line", "youtube", "bluesky", "mastodon")
SCHEMA = """
CREATE TABLE accounts (id TEXT PRIMARY KEY, platform TEXT, kind TEXT, staff_hours_per_post REAL, offers_reach INTEGER);
CREATE TABLE snapshots (account_id TEXT, day TEXT, followers INTEGER, reach INTEGER, impressions INTEGER,
                        final_at TEXT, PRIMARY KEY (account_id, day));
CREATE TABLE posts (account_id TEXT, post_id TEXT, posted_at TEXT, likes INTEGER, reposts INTEGER, replies INTEGER,
                    comments INTEGER, reach INTEGER, has_image INTEGER, has_link INTEGER, final_at TEXT,
                    PRIMARY KEY (account_id, post_id));
"""


def build(path: Path, accounts: int) -> dict[str, int]:
    """Write ``accounts`` histories to a fresh SQLite file; returns row counts."""
    from sandbox.history import NO_REACH, STORY_NAMES, generate

    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    snapshots = posts = 0
    for i in range(accounts):
        platform = PLATFORMS[i % len(PLATFORMS)]
        story = STORY_NAMES[(i // len(PLATFORMS)) % len(STORY_NAMES)]
        account_id = f"acct-{i:04d}"
        history = generate(account_id, platform, end=END, story=story, days=DAYS)
        kind = "special" if i % 3 == 0 else "general"
        db.execute(
            "INSERT INTO accounts VALUES (?, ?, ?, ?, ?)", (account_id, platform, kind, 0.3, platform not in NO_REACH)
        )
        db.executemany(
            "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, NULL)",
            [(account_id, d.day.isoformat(), d.followers, d.reach, d.impressions) for d in history.days],
        )
        db.executemany(
            "INSERT INTO posts VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, NULL)",
            [
                (
                    account_id,
                    str(n),
                    p.posted_at.isoformat(),
                    p.likes,
                    p.reposts,
                    p.replies,
                    p.impressions,
                    p.has_image,
                    p.has_link,
                )
                for n, p in enumerate(history.posts)
            ],
        )
        snapshots += len(history.days)
        posts += len(history.posts)
    db.commit()
    db.close()
    return {"snapshots": snapshots, "posts": posts}


def read(path: Path) -> tuple[list, list, list]:
    """The baseline: every account, snapshot and post row, in account order."""
    db = sqlite3.connect(path)
    try:
        accounts = db.execute("SELECT * FROM accounts ORDER BY id").fetchall()
        snapshots = db.execute("SELECT * FROM snapshots ORDER BY account_id, day").fetchall()
        posts = db.execute("SELECT * FROM posts ORDER BY account_id, posted_at").fetchall()
    finally:
        db.close()
    return accounts, snapshots, posts


def to_model(accounts: list, snapshots: list, posts: list) -> list[AccountHistory]:
    """Rows (in account order) -> review input, the way the review DAG builds it from the ledger."""
    day, moment = date.fromisoformat, datetime.fromisoformat
    with bulk():
        histories = {
            a[0]: AccountHistory(AccountRecord(a[0], a[1], CATALOG[a[1]].display_name, a[2], a[3], bool(a[4])))
            for a in accounts
        }
        for account_id, rows in groupby(snapshots, itemgetter(0)):
            histories[account_id].snapshots = [
                Snapshot(day(r[1]), r[2], r[3], r[4], moment(r[5]) if r[5] else None) for r in rows
            ]
        for account_id, rows in groupby(posts, itemgetter(0)):
            histories[account_id].posts = [
                PostRecord(
                    r[1],
                    moment(r[2]),
                    *r[3:7],
                    reach=r[7],
                    has_image=r[8] == 1,
                    has_link=r[9] == 1,
                    final_at=moment(r[10]) if r[10] else None,
                )
                for r in rows
            ]
    return list(histories.values())


def review(rows: tuple[list, list, list]) -> Review:
    """Everything the review DAG will do with the rows: records, figures, ranks, verdicts, what worked."""
    return review_accounts(to_model(*rows), ReviewPolicy(), as_of=AS_OF, tz=ZoneInfo("Asia/Tokyo"))


def run(args) -> BenchResult:
    quick = bool(getattr(args, "quick", False))
    accounts, repeats = (100, 1) if quick else (1000, 3)
    with tempfile.TemporaryDirectory(prefix="koho-bench-review-") as work:
        path = Path(work) / "metrics.sqlite"
        counts = build(path, accounts)
        read_times, review_times = [], []
        verdicts: Counter[str] = Counter()
        for _ in range(repeats):
            gc.collect()  # nothing of the previous run is left for the reading to scan
            started = time.perf_counter()
            rows = read(path)
            read_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = review(rows)
            review_times.append(time.perf_counter() - started)
            verdicts = Counter(v.verdict for v in result.verdicts.values())
            del rows, result
    read_s, review_s = statistics.median(read_times), statistics.median(review_times)
    ratio = review_s / read_s
    return BenchResult(
        "review",
        figures={
            "accounts": accounts,
            "days": DAYS,
            "snapshot rows": counts["snapshots"],
            "post rows": counts["posts"],
            "read s (baseline)": read_s,
            "review s": review_s,
            "review / read": ratio,
        },
        targets=[Target.at_most("review / read", ratio, MAX_RATIO)],
        notes=[
            table(["verdict", "accounts"], sorted(verdicts.items())),
            f"median of {repeats} runs; the review includes building its input from the rows. It pauses the "
            "cyclic garbage collector while it builds records (koho.review.model.bulk); the reading runs as is.",
        ],
    )
