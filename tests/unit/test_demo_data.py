"""The demo city's seeded data, loaded the way ``make run`` loads it: registry accounts created through
the sandbox's admin API, then ``/_admin/demo``. The demo is what staff and reviewers first see, so it
must exercise what Koho is for: feedback for every department, hostile comments, a comment storm, and
look-alike accounts that each platform's account search finds.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from koho.accounts.sync import registry_rows
from koho.config import load_config
from koho.platforms.base import RetryPolicy
from koho.platforms.registry import hook_class, hook_for
from sandbox.bootstrap import load_or_create_secrets, register_accounts, seed_demo
from sandbox.demo import HOSTILE, STORM
from tests.conftest import set_connection


@pytest.fixture
def demo(sandbox, monkeypatch, tmp_path) -> dict:
    """The demo city in a fresh sandbox: {connection id: connection fields}, plus the seed's summary."""
    rows = registry_rows(load_config())
    tokens = load_or_create_secrets(tmp_path / "secrets.json", [row["id"] for row in rows])
    connections = register_accounts(sandbox.url, rows, tokens)
    for conn_id, fields in connections.items():
        set_connection(monkeypatch, conn_id, **fields)
    return {"rows": rows, "connections": connections, "seeded": seed_demo(sandbox.url)}


def all_comments(sandbox) -> list:
    return [c for per_platform in sandbox.state.comments.values() for c in per_platform]


def test_comments_reach_every_departments_keywords(sandbox, demo):
    texts = [c.text for c in all_comments(sandbox)]
    for department in load_config().departments:
        assert any(k in t for t in texts for k in department.keywords), f"no demo comment for {department.id}"


def test_there_are_hostile_comments(sandbox, demo):
    hostile = {text for _, text in HOSTILE}
    assert sum(c.text in hostile for c in all_comments(sandbox)) >= 1


def test_one_post_gets_a_comment_storm(sandbox, demo):
    storm_post = demo["seeded"]["storm_post"]
    assert storm_post is not None
    on_it = [c for c in all_comments(sandbox) if c.post_id == storm_post and c.text in STORM]
    assert len(on_it) >= 30
    times = sorted(c.created_at for c in on_it)
    assert times[-1] - times[0] <= timedelta(hours=1)  # many comments in a short time, not spread out
    busiest = Counter(c.post_id for c in all_comments(sandbox)).most_common(2)
    assert busiest[0][0] == storm_post and busiest[0][1] > 3 * busiest[1][1]


def test_each_platforms_account_search_finds_the_look_alikes(sandbox, demo):
    checked = set()
    for row in demo["rows"]:
        if not hook_class(row["platform"]).capabilities.search_accounts:
            continue
        hook = hook_for(
            row["platform"],
            row["connection_id"],
            sleep=lambda _s: None,
            retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
        )
        own = demo["connections"][row["connection_id"]]["login"]
        base = own.split(".")[0]
        found = {a.handle for a in hook.search_accounts(base)} | {
            a.handle for a in hook.search_accounts(row["display_name"])
        }
        lookalikes = {h for h in found if h != own and h.startswith(base)}
        assert lookalikes, f"{row['id']}: search found no look-alike of {own} (found {sorted(found)})"
        checked.add(row["platform"])
    assert checked == {"x", "facebook", "instagram", "threads", "youtube", "bluesky", "mastodon"}
