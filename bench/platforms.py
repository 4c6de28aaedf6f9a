"""Platform throughput: 1,000 posts over the demo accounts through sandbox rate limits.

Target: the posts finish within 1.2x of the rate-limit floor, with at most one 429 per account
per window, and the sandbox holds each post exactly once.

How it runs:

* A :class:`~sandbox.server.SandboxServer` starts in-process. The demo city's posting accounts
  (every active account in ``include/config/accounts.yaml`` whose platform can publish — YouTube
  is read-only) are registered with fresh random tokens, and each hook gets its connection the
  way Airflow documents for tests: an ``AIRFLOW_CONN_<ID>`` environment variable.
* The bucket(s) one publish consumes on each platform (read from the sandbox routers, see
  :func:`_plans`) are shrunk through the admin API to ``per_window`` posts per ``window`` seconds
  per account, so the run takes about half a minute.
* Posts go round-robin over the accounts, one worker thread per account (posts on one account
  are sequential, as Koho sends them), all accounts at once, each through ``hook.publish_once``.
* Floor: an account with ``n`` posts under ``limit`` per ``window`` needs at least
  ``(ceil(n / limit) - 1) * window`` seconds; the run's floor is the largest over accounts.
* Baseline, same run: the same posts on a fresh sandbox with every limit lifted, i.e. the raw
  cost of the requests. ``baseline / floor`` shows how much of the floor the requests alone would fill.

Meta platforms (Facebook, Instagram, Threads) announce throttling in usage headers whose reset
(``estimated_time_to_regain_access``) is in whole minutes; a 10-second window cannot be expressed
faithfully there, so they get limits this run never reaches and do not take part in the floor.
LINE announces no limits at all: Koho stays under them with the connection's ``write_budget``
(:class:`koho.platforms.base.WriteBudget`), configured here exactly at the same limit
(``Config.line_budget_margin`` adds slack if ever needed).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.runner import BenchResult, Target, table

RATIO_TARGET = 1.2
MAX_429_PER_WINDOW = 1
#: A limit no run of this benchmark reaches: Meta buckets, Meta publishing quotas, and the baseline.
NEVER_REACHED = (1_000_000, 86_400.0)
IMAGE_URL = "https://www.city.koho.example.jp/images/oshirase.jpg"


@dataclass(frozen=True)
class Config:
    posts: int = 1000
    window: float = 10.0  # seconds of one shrunk window
    per_window: int = 25  # posts per account per window on the shrunk platforms
    #: LINE announces nothing, so Koho's client-side budget is per_window posts per (window + this margin):
    #: a budget "below the platform's own limit", as WriteBudget prescribes. With 0 (a budget exactly at
    #: the limit) LINE takes up to 3 429s per window; see README "What the benchmark found".
    line_budget_margin: float = 0.0


FULL = Config()
#: Smoke size: 5 posts per account, one wait. The window stays long enough that whole-second resets
#: (X, Bluesky) do not by themselves eat the 20 % allowance.
QUICK = Config(posts=55, window=8.0, per_window=3)


@dataclass(frozen=True)
class Plan:
    """What one publish consumes on a platform, and how its hook learns about the window."""

    buckets: tuple[tuple[str, int], ...]  # (sandbox bucket, cost of one publish in that bucket's units)
    shrunk: bool  # True: limited to per_window per window; False: NEVER_REACHED (see ``why``)
    hook_bucket: str | None  # the hook's name for the window it tracks from headers (None: no headers)
    why: str


def _plans() -> dict[str, Plan]:
    from sandbox.platforms.bluesky import WRITE_COST

    graph = (
        "usage headers announce the reset in whole minutes (estimated_time_to_regain_access), "
        "so a {w:g}s window cannot be expressed: limits set so this run never reaches them"
    )
    return {
        # sandbox/platforms/x.py: POST /2/tweets -> gate(bucket="tweets:create")
        "x": Plan(
            (("tweets:create", 1),), True, "tweets:create", "x-rate-limit-* headers; reset in whole epoch seconds"
        ),
        # sandbox/platforms/bluesky.py: createRecord -> bucket "write", cost WRITE_COST["create"] points
        "bluesky": Plan(
            (("write", WRITE_COST["create"]),),
            True,
            "write",
            f"RateLimit-* headers in points (a post costs {WRITE_COST['create']}); reset in whole epoch seconds",
        ),
        # sandbox/platforms/mastodon.py: POST /api/v1/statuses -> the account-wide "api" window
        "mastodon": Plan((("api", 1),), True, "api", "X-RateLimit-* headers; reset as an ISO time (microseconds)"),
        # sandbox/platforms/line.py: broadcast -> bucket "broadcast"; LINE sends no rate-limit headers
        "line": Plan(
            (("broadcast", 1),),
            True,
            None,
            "no rate-limit headers: the connection's write_budget ({n} per {b:g}s) keeps Koho under the "
            "limit ({n} per {w:g}s)",
        ),
        # sandbox/platforms/{facebook,instagram,threads}.py: every Graph call -> "calls";
        # publishing quotas are the "publish" buckets (Instagram 50, Threads 250 per 24 h by default).
        "facebook": Plan((("calls", 1),), False, None, graph),
        "instagram": Plan((("calls", 1), ("publish", 1)), False, None, graph),
        "threads": Plan((("calls", 1), ("publish", 1)), False, None, graph),
    }


@dataclass
class Account:
    id: str
    platform: str
    conn_id: str
    sandbox_id: str = ""
    posts: list[tuple[str, Any]] = field(default_factory=list)  # (idempotency key, OutgoingPost)
    limit: int | None = None  # posts per window when shrunk
    window: float | None = None
    started: float = 0.0
    finished: float = 0.0
    failures: list[str] = field(default_factory=list)
    reconciled: int = 0
    hook: Any = None

    @property
    def floor(self) -> float:
        if not self.limit or not self.window:
            return 0.0
        return (math.ceil(len(self.posts) / self.limit) - 1) * self.window


@dataclass
class Run:
    accounts: list[Account]
    elapsed: float
    floor: float
    rejections: dict[str, list[float]]  # sandbox account id -> epochs of 429s
    stored: list[dict[str, Any]]


# ----------------------------------------------------------------------------- setup


def posting_accounts() -> list[dict[str, Any]]:
    """The demo city's active accounts whose platform can publish, as registry rows."""
    from koho.accounts.sync import registry_rows
    from koho.config.loader import load_config
    from koho.platforms.registry import hook_class

    config = load_config()
    if config.problems:
        raise RuntimeError(f"include/config has problems: {config.problems}")
    rows = registry_rows(config)
    return [r for r in rows if r["status"] == "active" and hook_class(r["platform"]).capabilities.publish]


def notice(number: int) -> str:
    """A unique Japanese notice (short enough for X's weighted count, where CJK counts 2)."""
    return f"【こほ市お知らせ 第{number:04d}号】市役所からのお知らせです。詳しくは市のホームページをご覧ください。"


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def publish_run(cfg: Config, rows: list[dict[str, Any]], *, limited: bool) -> Run:
    """One complete run on a fresh sandbox: limited (the target) or with every limit lifted (baseline)."""
    from koho.platforms.registry import hook_class, hook_for
    from koho.platforms.types import OutgoingPost
    from sandbox.bootstrap import register_accounts
    from sandbox.server import SandboxServer

    plans = _plans()
    with SandboxServer() as server:
        tokens = {r["id"]: secrets.token_urlsafe(24) for r in rows}
        connections = register_accounts(server.url, rows, tokens)

        for platform in sorted({r["platform"] for r in rows}):
            plan = plans[platform]
            for bucket, cost in plan.buckets:
                if limited and plan.shrunk:
                    server.limit(platform, bucket, cfg.per_window * cost, cfg.window)
                else:
                    server.limit(platform, bucket, *NEVER_REACHED)

        accounts: list[Account] = []
        env: dict[str, str] = {}
        for row in rows:
            fields = dict(connections[row["connection_id"]])
            extra = json.loads(fields["extra"])
            plan = plans[row["platform"]]
            acc = Account(row["id"], row["platform"], row["connection_id"], sandbox_id=extra["account_id"])
            if limited and plan.shrunk:
                acc.limit, acc.window = cfg.per_window, cfg.window
                if plan.hook_bucket is None:  # nothing announced: Koho's own budget is all there is
                    extra["write_budget"] = [cfg.per_window, cfg.window + cfg.line_budget_margin]
            fields["extra"] = json.dumps(extra)
            env[f"AIRFLOW_CONN_{row['connection_id'].upper()}"] = json.dumps(fields)
            accounts.append(acc)

        planned_at = datetime.now(UTC)
        for number in range(1, cfg.posts + 1):
            acc = accounts[(number - 1) % len(accounts)]
            needs_image = hook_class(acc.platform).capabilities.image_required
            post = OutgoingPost(
                text=notice(number), image_urls=(IMAGE_URL,) if needs_image else (), created_at=planned_at
            )
            acc.posts.append((f"bench-{acc.id}-{number:04d}", post))

        with environment(env):
            for acc in accounts:
                acc.hook = hook_for(acc.platform, acc.conn_id)
                acc.hook.get_conn()  # reads the connection (and write budget) before the clock starts
            gate = threading.Barrier(len(accounts) + 1)

            def work(acc: Account) -> None:
                gate.wait()
                acc.started = time.perf_counter()
                for key, post in acc.posts:
                    try:
                        published = acc.hook.publish_once(post, idempotency_key=key)
                    except Exception as exc:  # every failure is reported; none may stop the other posts
                        acc.failures.append(f"{key}: {type(exc).__name__}: {exc}")
                        continue
                    acc.reconciled += bool(published.reconciled)
                acc.finished = time.perf_counter()

            workers = [threading.Thread(target=work, args=(a,), name=f"bench-{a.id}", daemon=True) for a in accounts]
            for worker in workers:
                worker.start()
            gate.wait()
            start = time.perf_counter()
            for worker in workers:
                worker.join()
            elapsed = max(a.finished for a in accounts) - start

        stats = server.admin("GET", "/stats")
        rejections: dict[str, list[float]] = defaultdict(list)
        for item in stats["rate_limited"]:
            rejections[item["account_id"]].append(float(item["at"]))
        stored = server.posts()
        if limited:
            _check_hooks_track_windows(accounts, plans, cfg)
    return Run(accounts, elapsed, max(a.floor for a in accounts), dict(rejections), stored)


def _check_hooks_track_windows(accounts: list[Account], plans: dict[str, Plan], cfg: Config) -> None:
    """Guard against drift: each header platform's hook must track the very bucket the benchmark shrank."""
    for acc in accounts:
        plan = plans[acc.platform]
        if not plan.shrunk or plan.hook_bucket is None:
            continue
        seen = acc.hook.rate_limit_window(plan.hook_bucket)
        want = cfg.per_window * plan.buckets[0][1]
        if seen is None or seen.limit != want:
            raise RuntimeError(
                f"{acc.id}: the hook's window '{plan.hook_bucket}' is {seen}; expected limit {want}. "
                "The hook and the sandbox no longer agree on bucket names: update PLANS."
            )


# ----------------------------------------------------------------------------- analysis


def max_in_window(epochs: list[float], window: float) -> int:
    """Most events in any interval of ``window`` seconds (an upper bound on any fixed window's count)."""
    epochs = sorted(epochs)
    best, lo = 0, 0
    for hi, t in enumerate(epochs):
        while t - epochs[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def check_stored(run: Run) -> tuple[int, int, int]:
    """(posts stored, duplicates, lost) by (account, text): each planned post exactly once."""
    from koho.platforms.base import normalized_text

    seen = Counter((p["account_id"], normalized_text(p["text"] or "")) for p in run.stored)
    planned = Counter((a.sandbox_id, normalized_text(post.text)) for a in run.accounts for _, post in a.posts)
    duplicates = sum(n - 1 for key, n in seen.items() if n > 1)
    lost = sum(n - seen.get(key, 0) for key, n in planned.items() if seen.get(key, 0) < n)
    return len(run.stored), duplicates, lost


def run(args: Any) -> BenchResult:
    cfg = QUICK if getattr(args, "quick", False) else FULL
    return measure(cfg)


def measure(cfg: Config) -> BenchResult:
    rows = posting_accounts()
    plans = _plans()
    baseline = publish_run(cfg, rows, limited=False)
    limited = publish_run(cfg, rows, limited=True)

    stored, duplicates, lost = check_stored(limited)
    failures = sum(len(a.failures) for a in limited.accounts)
    base_stored, base_dupes, base_lost = check_stored(baseline)
    base_failures = sum(len(a.failures) for a in baseline.accounts)

    per_account = []
    worst_429 = 0
    for acc in limited.accounts:
        epochs = limited.rejections.get(acc.sandbox_id, [])
        window = acc.window or NEVER_REACHED[1]
        worst = max_in_window(epochs, window)
        worst_429 = max(worst_429, worst)
        took = acc.finished - acc.started
        waits = math.ceil(len(acc.posts) / acc.limit) - 1 if acc.limit else 0
        per_account.append(
            [
                acc.id,
                acc.platform,
                len(acc.posts),
                f"{acc.limit}/{acc.window:g}s" if acc.limit else "never reached",
                acc.floor,
                took,
                (took - acc.floor) / waits if waits else "-",
                len(epochs),
                worst,
                len(acc.failures),
            ]
        )
    ratio = limited.elapsed / limited.floor if limited.floor else math.inf
    figures: dict[str, Any] = {
        "posts": cfg.posts,
        "accounts": len(rows),
        "shrunk window (s)": cfg.window,
        "posts per account per window": cfg.per_window,
        "floor (s)": limited.floor,
        "elapsed (s)": limited.elapsed,
        "elapsed / floor": ratio,
        "waiting beyond the floor (s)": limited.elapsed - limited.floor,
        "baseline elapsed, limits lifted (s)": baseline.elapsed,
        "baseline throughput (posts/s)": cfg.posts / baseline.elapsed,
        "baseline / floor": baseline.elapsed / limited.floor if limited.floor else math.inf,
        "elapsed / baseline": limited.elapsed / baseline.elapsed,
        "429s, all accounts": sum(len(v) for v in limited.rejections.values()),
        "429s, baseline": sum(len(v) for v in baseline.rejections.values()),
        "reconciled publishes": sum(a.reconciled for a in limited.accounts),
        "baseline stored / duplicates / lost / failed": f"{base_stored} / {base_dupes} / {base_lost} / {base_failures}",
    }
    targets = [
        Target.at_most("elapsed / floor", ratio, RATIO_TARGET),
        Target.at_most("max 429s per account per window", worst_429, MAX_429_PER_WINDOW),
        Target.exactly("posts stored in the sandbox", stored, cfg.posts),
        Target.exactly("duplicate posts", duplicates, 0),
        Target.exactly("lost posts", lost, 0),
        Target.exactly("failed publishes", failures, 0),
    ]
    used = sorted({a.platform for a in limited.accounts})
    notes = [
        "per account (limited run; 'max/win' = most 429s in any interval of one window):\n"
        + table(
            [
                "account",
                "platform",
                "posts",
                "limit",
                "floor s",
                "took s",
                "beyond floor s/wait",
                "429s",
                "max/win",
                "failed",
            ],
            per_account,
        ),
        "how each platform learns its window:\n"
        + "\n".join(
            f"  {p:9} {plans[p].why.format(w=cfg.window, n=cfg.per_window, b=cfg.window + cfg.line_budget_margin)}"
            for p in used
        ),
    ]
    errors = [f for a in limited.accounts + baseline.accounts for f in a.failures[:3]]
    if errors:
        notes.append("first failures:\n" + "\n".join(f"  {e}" for e in errors[:10]))
    return BenchResult("platforms", figures, targets, notes)
