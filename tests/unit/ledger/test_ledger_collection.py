"""Incremental collection: cursors, feedback and metric snapshots."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from koho.ledger import cursors, deliveries, feedback, metrics
from koho.ledger.db import Ledger
from koho.ledger.errors import LedgerError
from koho.ledger.models import AccountMetric, FeedbackItem, PostMetric
from koho.platforms.types import AccountMetrics, PostMetrics
from tests.unit.ledger.ledger_factories import T0


def comment(remote_id: str, **overrides) -> dict:
    item = {
        "account_id": "city_x",
        "platform": "x",
        "remote_id": remote_id,
        "post_remote_id": "p1",
        "author": "resident",
        "text": f"<b>comment {remote_id}</b>",
        "created_at": T0,
    }
    item.update(overrides)
    return item


def test_cursors(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    with ledger.session() as s:
        assert cursors.get_cursor(s, "city_x", "mentions") is None
        cursors.set_cursor(s, "city_x", "mentions", "100", now=T0)
    with ledger.session() as s:
        cursors.set_cursor(s, "city_x", "mentions", "250", now=T0 + timedelta(minutes=5))
        cursors.set_cursor(s, "city_x", "comments", "abc")
    with ledger.session(readonly=True) as s:
        assert cursors.get_cursor(s, "city_x", "mentions") == "250"
        assert cursors.get_cursor(s, "city_x", "comments") == "abc"


def test_feedback_duplicates_are_ignored(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    with ledger.session() as s:
        assert feedback.add_feedback(s, [comment("c1"), comment("c2"), comment("c2")], now=T0) == 2
    with ledger.session() as s:  # an overlapping collection window
        assert feedback.add_feedback(s, [comment("c2"), comment("c3", created_at=None, text="")], now=T0) == 1
        # the same remote id on another platform is another comment
        assert feedback.add_feedback(s, [comment("c1", platform="bluesky")]) == 1
    with ledger.session(readonly=True) as s:
        items = {(i.platform, i.remote_id): i for i in s.scalars(select(FeedbackItem))}
    assert len(items) == 4
    c3 = items[("x", "c3")]
    assert (c3.created_at, c3.collected_at, c3.hostile, c3.text) == (T0, T0, False, "")
    assert items[("x", "c1")].text == "<b>comment c1</b>"  # stored as received; templates escape


def test_feedback_needs_its_identity(session: Session, seeded: Callable[..., None]) -> None:
    seeded()
    with pytest.raises(LedgerError, match="remote_id"):
        feedback.add_feedback(session, [comment("")])
    with pytest.raises(LedgerError, match="text"):
        feedback.add_feedback(session, [comment("c9", text=None)])


def test_feedback_digest_bookkeeping(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    with ledger.session() as s:
        feedback.add_feedback(
            s,
            [
                comment("c1", department="parks", route_reason="keyword 公園"),
                comment("c2", department="parks", created_at=T0 - timedelta(hours=1)),
                comment("c3", department="tax", hostile=True),
            ],
        )
    with ledger.session() as s:
        parks = feedback.feedback_for_digest(s, "parks")
        assert [i.remote_id for i in parks] == ["c2", "c1"]
        assert feedback.mark_digest_sent(s, [i.id for i in parks], now=T0) == 2
        assert parks[0].digest_sent_at == T0
        assert feedback.feedback_for_digest(s, "parks") == []
        assert [(i.remote_id, i.hostile) for i in feedback.feedback_for_digest(s)] == [("c3", True)]


def test_post_metrics_link_to_their_delivery(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    with ledger.session() as s:
        d = deliveries.plan_delivery(s, entry_id="e1", account_id="city_x", revision=1, due_at=T0, text="t").delivery
        deliveries.claim_for_sending(s, d.id, "run")
        deliveries.mark_published(s, d.id, "r1", None)
    with ledger.session() as s:
        count = metrics.add_post_metrics(
            s,
            "city_x",
            [
                PostMetrics(remote_id="r1", impressions=10_000_000_000, likes=5, extra={"bookmarks": 2}),
                {"remote_id": "elsewhere", "likes": None, "reposts": 1},
            ],
            collected_at=T0,
        )
        assert count == 2
        assert metrics.add_post_metrics(s, "city_x", []) == 0
    with ledger.session(readonly=True) as s:
        rows = {m.remote_id: m for m in s.scalars(select(PostMetric))}
    assert rows["r1"].delivery_id == d.id and rows["elsewhere"].delivery_id is None
    assert (rows["r1"].impressions, rows["r1"].likes, rows["r1"].clicks, rows["r1"].extra) == (
        10_000_000_000,
        5,
        None,
        {"bookmarks": 2},
    )
    assert (rows["elsewhere"].likes, rows["elsewhere"].reposts, rows["elsewhere"].collected_at) == (0, 1, T0)


def test_account_metrics_are_snapshots(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    with ledger.session() as s:
        metrics.add_account_metrics(s, "city_x", AccountMetrics(followers=1200, posts=30), collected_at=T0)
        metrics.add_account_metrics(
            s, "city_x", {"followers": 1210, "extra": {"reach": 5}}, collected_at=T0 + timedelta(1)
        )
    with ledger.session(readonly=True) as s:
        rows = s.scalars(select(AccountMetric).order_by(AccountMetric.collected_at)).all()
    assert [(r.followers, r.posts, r.extra) for r in rows] == [(1200, 30, {}), (1210, None, {"reach": 5})]
