"""Budgets shared across processes: two OS processes posting to one sandbox LINE channel under one
write budget draw no 429 and, together, stay within the budget — with the embedded store (a SQLite
file) and with Redis. The control: with a store each process keeps to itself, the same two
processes meet the channel's limit."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: Budget: 3 broadcasts per 1 s. The channel allows 3 per 0.8 s: a budget sits below the limit
#: (a write counts from when the budget allowed it; the request's transit is the margin).
CALLS, SECONDS, CHANNEL_WINDOW = 3, 1.0, 0.8
PER_PROCESS = 4

#: One poster: says "ready", waits for "go" on stdin (both start at once), posts, prints its errors.
POSTER = """
import sys
from koho.platforms.base import RetryPolicy, WriteBudget
from koho.platforms.errors import PlatformError
from koho.platforms.registry import hook_for
from koho.platforms.types import OutgoingPost

conn_id, tag, count, calls, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
hook = hook_for("line", conn_id, retry=RetryPolicy(max_attempts=1), write_budget=WriteBudget(calls, seconds))
hook.get_conn()
print("ready", flush=True)
sys.stdin.readline()
for n in range(count):
    try:
        hook.publish_once(OutgoingPost(f"{tag} {n}"), idempotency_key=f"{tag}-{n}")
    except PlatformError as exc:
        print("error", type(exc).__name__, exc, flush=True)
"""


def run_two_posters(conn_id: str, env: dict[str, str]) -> list[str]:
    """Start two posting processes, release them together, return the errors they printed."""
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", POSTER, conn_id, f"p{i}", str(PER_PROCESS), str(CALLS), str(SECONDS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None
        for line in proc.stdout:  # Airflow's own start-up logs come first
            if line.strip() == "ready":
                break
        else:
            raise AssertionError(f"a poster died before it was ready: {proc.communicate()[1]}")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    output = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        output.extend(line for line in out.splitlines() if line.startswith("error "))
    return output


def most_in_any_window(times: list[datetime], seconds: float) -> int:
    """The largest number of ``times`` within any window of ``seconds`` (sliding over each time)."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if (t - start).total_seconds() < seconds) for i, start in enumerate(times))


def posting_under_one_budget(sandbox, connect, env: dict[str, str]) -> tuple[list[str], list[dict]]:
    channel = sandbox.add_account("line", "kohocity-shared", followers=10)
    conn_id = connect("line", channel)
    sandbox.limit("line", "broadcast", CALLS, CHANNEL_WINDOW)
    return run_two_posters(conn_id, env), sandbox.posts("line")


def assert_within_budget(sandbox, output: list[str], posts: list[dict]) -> None:
    assert output == []  # no process met an error (a 429 would be RateLimited)
    assert sandbox.admin("GET", "/stats")["rate_limited"] == []
    assert len(posts) == 2 * PER_PROCESS
    arrived = [datetime.fromisoformat(p["created_at"]) for p in posts]
    assert most_in_any_window(arrived, CHANNEL_WINDOW) <= CALLS


@pytest.mark.slow
def test_two_processes_share_the_embedded_store(sandbox, connect, budget_store):
    assert budget_store.startswith("sqlite:///")
    output, posts = posting_under_one_budget(sandbox, connect, {})
    assert_within_budget(sandbox, output, posts)


@pytest.mark.slow
@pytest.mark.redis
def test_two_processes_share_redis(sandbox, connect):
    env = {"KOHO_BUDGET_STORAGE": "redis://127.0.0.1:6379/0", "KOHO_BUDGET_PREFIX": f"koho-test-{uuid.uuid4().hex}"}
    output, posts = posting_under_one_budget(sandbox, connect, env)
    assert_within_budget(sandbox, output, posts)


@pytest.mark.slow
def test_a_budget_each_process_keeps_to_itself_meets_the_limit(sandbox, connect):
    """The control: the channel's limit is real, and two private budgets of 3 send 6 in its window."""
    output, _ = posting_under_one_budget(sandbox, connect, {"KOHO_BUDGET_STORAGE": "memory://"})
    assert any("RateLimited" in line for line in output)
    assert sandbox.admin("GET", "/stats")["rate_limited"] != []
