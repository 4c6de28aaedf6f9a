"""The client-side posting budget: a window of N writes in the shared budget store, configured per
account in accounts.yaml (or per platform in policy.yaml) for the hooks that publish."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import pytest

from koho.collection.sqlite_storage import SQLiteStorage
from koho.config import KohoConfig, load_config
from koho.config.loader import include_dir
from koho.delivery.sender import Sender
from koho.ledger.models import Account
from koho.platforms.base import PlatformHook, RetryPolicy, WriteBudget
from koho.platforms.errors import RateLimited
from koho.platforms.registry import hook_for
from koho.platforms.types import OutgoingPost


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def clocked_budget(tmp_path: Path, calls: int, seconds: float, clock: Clock) -> WriteBudget:
    budget = WriteBudget(
        calls, seconds, storage=SQLiteStorage(f"sqlite:///{tmp_path}/b.sqlite", clock=clock), clock=clock
    )
    budget.bind("test/line/conn/write")
    return budget


def test_budget_allows_n_writes_per_window_then_says_how_long_to_wait(tmp_path):
    clock = Clock()
    budget = clocked_budget(tmp_path, 2, 10.0, clock)
    assert budget.delay() == 0 and budget.delay() == 0
    clock.now = 103.0
    assert budget.delay() == 7.0  # the first write leaves the window at 110
    clock.now = 110.0
    assert budget.delay() == 0


def test_a_window_of_a_fraction_of_a_second_counts_as_a_whole_second(tmp_path):
    """The store counts whole seconds: 0.6 s becomes 1 s, never looser than configured."""
    clock = Clock()
    budget = clocked_budget(tmp_path, 1, 0.6, clock)
    assert budget.delay() == 0
    clock.now = 100.7
    assert abs(budget.delay() - 0.3) < 1e-9
    clock.now = 101.0
    assert budget.delay() == 0


def test_an_unbound_budget_refuses_to_count(tmp_path):
    with pytest.raises(RuntimeError, match="bind"):
        WriteBudget(1, 1.0).delay()


def test_two_budgets_bound_to_one_account_share_one_window(tmp_path):
    """Two hooks (two processes, in production) with the same account's key: one window between them."""
    clock = Clock()
    storage = SQLiteStorage(f"sqlite:///{tmp_path}/b.sqlite", clock=clock)
    first, second = (
        WriteBudget(2, 10.0, storage=storage, clock=clock),
        WriteBudget(2, 10.0, storage=storage, clock=clock),
    )
    first.bind("koho/line/conn/write")
    second.bind("koho/line/conn/write")
    assert first.delay() == 0 and second.delay() == 0
    assert first.delay() == 10.0 and second.delay() == 10.0


# --------------------------------------------------------------------------- from configuration to hook

LINE_CAPS = "caps: {per_day: 2, min_spacing_minutes: 180}"


def line_config(tmp_path: Path, budget: str | None) -> KohoConfig:
    """The shipped configuration with ``budget`` (YAML flow mapping) as city-line's ``caps.write_budget``."""
    shutil.copytree(include_dir() / "config", tmp_path / "config")
    accounts = tmp_path / "config" / "accounts.yaml"
    text = accounts.read_text(encoding="utf-8")
    assert LINE_CAPS in text
    if budget is not None:
        accounts.write_text(text.replace(LINE_CAPS, LINE_CAPS[:-1] + f", write_budget: {budget}}}"), encoding="utf-8")
    config = load_config(tmp_path / "config")
    assert config.problems == []
    return config


def real_hooks(platform: str, conn_id: str, **options) -> PlatformHook:
    """Hooks that really sleep: a budget's wait must really let the sandbox's window pass."""
    return hook_for(platform, conn_id, retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02), **options)


def line_hook_for_city_line(sandbox, connect, ledger, config: KohoConfig, **extra) -> PlatformHook:
    """The hook the sender would publish city-line's deliveries with, on a sandbox LINE channel."""
    channel = sandbox.add_account("line", "kohocity-sample", followers=10)
    row = config.accounts_by_id["city-line"]
    connect("line", channel, conn_id=row.connection_id, **extra)
    account = Account(
        id=row.id, platform=row.platform, handle=row.handle, connection_id=row.connection_id, status="active"
    )
    return Sender(ledger, config=config, hook_factory=real_hooks).hook(account)


def broadcast(hook: PlatformHook, count: int) -> None:
    for n in range(count):
        hook.publish_once(OutgoingPost(f"【こほ市】お知らせ その{n + 1}"), idempotency_key=f"budget-{n}")


def test_a_configured_budget_keeps_line_under_a_limit_it_never_announces(sandbox, connect, ledger, tmp_path):
    """LINE sends no rate-limit headers, so only the budget from accounts.yaml can keep the burst
    under the channel's limit: five broadcasts against 2 per 0.5 s arrive without a single 429."""
    sandbox.limit("line", "broadcast", 2, 0.5)
    config = line_config(tmp_path, "{posts: 2, per_seconds: 0.6}")
    hook = line_hook_for_city_line(sandbox, connect, ledger, config)
    assert hook.write_budget is not None and (hook.write_budget.calls, hook.write_budget.seconds) == (2, 0.6)
    started = time.monotonic()
    broadcast(hook, 5)
    assert sandbox.admin("GET", "/stats")["rate_limited"] == []
    assert len(sandbox.posts("line")) == 5
    assert time.monotonic() - started >= 1.2  # posts 3 and 5 each waited for a window to pass


def test_without_a_budget_the_same_burst_meets_the_limit(sandbox, connect, ledger, tmp_path):
    """The control for the test above: the sandbox's limit is real, and a hook without a budget hits it."""
    sandbox.limit("line", "broadcast", 2, 0.5)
    config = line_config(tmp_path, None)
    hook = line_hook_for_city_line(sandbox, connect, ledger, config, write_budget=[1000, 1])
    with contextlib.suppress(RateLimited):
        broadcast(hook, 5)
    assert sandbox.admin("GET", "/stats")["rate_limited"] != []


def test_the_policy_default_applies_and_the_connection_extra_overrides_it(sandbox, connect, ledger, tmp_path):
    """city-line sets no budget: LINE's default from policy.yaml applies, unless its connection says otherwise."""
    config = line_config(tmp_path, None)
    default = config.policy.write_budgets["line"]
    hook = line_hook_for_city_line(sandbox, connect, ledger, config)
    assert hook.write_budget is not None
    assert (hook.write_budget.calls, hook.write_budget.seconds) == (default.posts, default.per_seconds)
    sandbox.admin("POST", "/reset")
    overridden = line_hook_for_city_line(sandbox, connect, ledger, config, write_budget=[3, 7])
    assert overridden.write_budget is not None
    assert (overridden.write_budget.calls, overridden.write_budget.seconds) == (3, 7.0)
