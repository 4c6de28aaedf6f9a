"""Review inputs built from the sandbox's story history, the way the review DAG builds them from the ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from koho.config import load_config
from koho.config.schema import ReviewPolicy
from koho.platforms.catalog import PLATFORMS
from koho.review.model import AccountHistory, AccountRecord, PostRecord, Snapshot
from sandbox.history import NO_REACH, History, generate

END = date(2026, 11, 30)
AS_OF = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo, the day after END


def to_review(history: History, *, kind: str = "general", staff_hours_per_post: float = 0.3) -> AccountHistory:
    record = AccountRecord(
        history.account_id,
        history.platform,
        PLATFORMS[history.platform].display_name,
        kind,
        staff_hours_per_post,
        offers_reach=history.platform not in NO_REACH,
    )
    snapshots = [Snapshot(d.day, d.followers, d.reach, d.impressions) for d in history.days]
    posts = [
        PostRecord(
            f"{history.account_id}-{i}",
            p.posted_at,
            p.likes,
            p.reposts,
            p.replies,
            read_at=p.posted_at + timedelta(days=2),
            reach=p.impressions,
            has_image=p.has_image,
            has_link=p.has_link,
        )
        for i, p in enumerate(history.posts)
    ]
    return AccountHistory(record, snapshots, posts)


@pytest.fixture(scope="session")
def demo_histories() -> dict[str, AccountHistory]:
    """Every demo account's story history, with its registry's kind and staff hours."""
    config = load_config()
    out = {}
    for account in config.accounts:
        history = generate(account.id, account.platform, end=END)
        out[account.id] = to_review(history, kind=account.kind, staff_hours_per_post=account.staff_hours_per_post)
    return out


@pytest.fixture(scope="session")
def policy() -> ReviewPolicy:
    return load_config().policy.review
