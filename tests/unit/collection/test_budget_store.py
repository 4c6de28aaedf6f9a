"""The shared store: windows a platform announced are taken from by every hook of the account, the
store is chosen by configuration, and read quotas are validated with file, line and field."""

from __future__ import annotations

import shutil
import time
import uuid
from datetime import UTC, datetime

import pytest

from koho.collection.budgets import AnnouncedWindows, budget_key, budget_storage, storage_uri
from koho.collection.sqlite_storage import SQLiteStorage
from koho.config import load_config
from koho.config.loader import include_dir
from koho.platforms.base import RetryPolicy
from koho.platforms.errors import RateLimited
from koho.platforms.mastodon import MastodonHook


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_every_taker_draws_on_the_announced_remaining_count(tmp_path):
    clock = Clock()
    windows = AnnouncedWindows(SQLiteStorage(f"sqlite:///{tmp_path}/s.sqlite", clock=clock), clock=clock)
    reset = datetime.fromtimestamp(clock.now + 10, UTC)
    windows.note("k", 2, reset)
    assert windows.take("k") is None and windows.take("k") is None
    assert windows.take("k") == reset  # used up: wait for the reset
    assert windows.take("k", cost=1) == reset  # a refused take gives its count back, and stays refused
    clock.now += 10
    assert windows.take("k") is None  # the reset passed: nothing is known, go ahead
    windows.note("k", 5, datetime.fromtimestamp(clock.now - 1, UTC))  # a reset already past is not kept
    assert windows.take("k", cost=3) is None


@pytest.mark.redis
def test_announced_windows_in_redis_keep_the_reset_to_the_millisecond():
    """Redis counts expiry in whole seconds; the reset a taker waits for is still the platform's own."""
    from limits.storage import storage_from_string

    windows = AnnouncedWindows(
        storage_from_string("redis://127.0.0.1:6379/0", key_prefix=f"koho-test-{uuid.uuid4().hex}")
    )
    reset = datetime.fromtimestamp(round(time.time() + 30.25, 3), UTC)
    windows.note("k", 1, reset)
    assert windows.take("k") is None
    assert windows.take("k") == reset


def test_a_later_announcement_replaces_the_count(tmp_path):
    clock = Clock()
    windows = AnnouncedWindows(SQLiteStorage(f"sqlite:///{tmp_path}/s.sqlite", clock=clock), clock=clock)
    reset = datetime.fromtimestamp(clock.now + 60, UTC)
    windows.note("k", 0, reset)
    assert windows.take("k") == reset
    windows.note("k", 1, reset)  # the platform's own count includes every process's calls
    assert windows.take("k") is None and windows.take("k") == reset


def test_hooks_of_one_account_share_the_window_the_platform_announced(sandbox, connect):
    """Hook A reads until the platform says 0 remain; hook B (another process, in production) then
    waits for the reset before sending instead of drawing a 429."""
    remote = sandbox.add_account("mastodon", "koho_city", followers=1)
    conn_id = connect("mastodon", remote)
    sandbox.limit("mastodon", "api", 2, 300)
    waits: list[float] = []
    first, second = (MastodonHook(conn_id, retry=RetryPolicy(max_attempts=1), sleep=waits.append) for _ in range(2))
    first.account_metrics()
    first.account_metrics()
    assert waits == []
    with pytest.raises(RateLimited):  # its sleep only records: the request then goes, and is refused
        second.account_metrics()
    assert len(waits) == 1 and 200 < waits[0] <= 300.1  # until the announced reset, to the millisecond


def test_the_store_comes_from_configuration(monkeypatch, tmp_path):
    monkeypatch.delenv("KOHO_BUDGET_STORAGE")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert storage_uri() == f"sqlite:///{tmp_path.resolve()}/koho-budgets.sqlite"
    assert isinstance(budget_storage(), SQLiteStorage)
    monkeypatch.setenv("KOHO_BUDGET_STORAGE", "memory://")
    assert type(budget_storage()).__name__ == "MemoryStorage"
    monkeypatch.setenv("KOHO_BUDGET_PREFIX", "city-a")
    assert budget_key("line", "koho_city_line", "write") == "city-a/line/koho_city_line/write"


def test_a_store_path_that_is_not_a_file_is_refused():
    with pytest.raises(ValueError, match="sqlite:///<path to a file>"):
        SQLiteStorage("sqlite://")


def copy_config(tmp_path, policy_edit):
    shutil.copytree(include_dir() / "config", tmp_path / "config")
    policy = tmp_path / "config" / "policy.yaml"
    policy.write_text(policy_edit(policy.read_text(encoding="utf-8")), encoding="utf-8")
    return load_config(tmp_path / "config")


def test_the_shipped_read_quotas_say_what_each_read_costs(tmp_path):
    config = copy_config(tmp_path, lambda text: text)
    quotas = config.policy.read_quotas
    assert quotas["youtube"].cost_of("search_accounts") == 100 and quotas["youtube"].cost_of("post_metrics") == 1
    assert quotas["youtube"].shared_by == "app"
    assert quotas["line"].cost_of("account_metrics") == 1 and quotas["line"].cost_of("comments_since") == 0
    assert quotas["x"].usd_per_unit is not None


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        (
            "costs: {search_accounts: 100}",
            "costs: {search_accounts: -1}",
            "read_quotas.youtube.costs.search_accounts",
            "greater than or equal to 0",
        ),
        (
            "costs: {search_accounts: 100}",
            "costs: {search_everything: 1}",
            "read_quotas.youtube.costs.search_everything",
            "expected",
        ),
        (
            "units: 10000, per_seconds: 86400",
            "units: 0, per_seconds: 86400",
            "read_quotas.youtube.units",
            "greater than or equal to 1",
        ),
        ("shared_by: app, costs", "shared_by: city, costs", "read_quotas.youtube.shared_by", "expected"),
    ],
)
def test_a_bad_read_quota_is_located(tmp_path, old, new, field, message):
    config = copy_config(tmp_path, lambda text: text.replace(old, new, 1))
    lines = (include_dir() / "config" / "policy.yaml").read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(lines, 1) if old in text)
    problems = [p for p in config.problems if (p.where.field or "").startswith(field)]
    assert problems, config.problems
    assert problems[0].where.file == "policy.yaml" and problems[0].where.line == line
    assert message in problems[0].message
