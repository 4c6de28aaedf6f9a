"""Metrics, feedback, alerts and cursors written by many tasks at once, on SQLite and Postgres.

Each writer has its own connection and transactions, and all start together: what is asserted
is what the database holds afterwards, whatever the interleaving was.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from koho.ledger import alerts, cursors, feedback, metrics
from koho.ledger.db import Ledger
from koho.ledger.errors import LedgerError
from koho.ledger.models import AccountMetric, Alert, FeedbackItem, PostMetric
from tests.unit.ledger.ledger_factories import T0

WRITERS = 6
POSTS = 8
COMMENTS = 12


def run_together(writers: list[Callable[[], None]]) -> None:
    """Start every writer at the same moment; re-raise the first error any of them hit."""
    start = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def body(write: Callable[[], None]) -> None:
        try:
            start.wait(timeout=30)
            write()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    if errors:
        raise errors[0]


def count(ledger: Ledger, model: type) -> int:
    with ledger.session(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(model))


def test_overlapping_collection_runs_store_each_thing_once(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    cursor_values = [str(n) for n in (7, 120, 99, 1_000_000_000_001, 31, 8_000_000)]
    random.Random(4).shuffle(cursor_values)

    def writer(n: int) -> Callable[[], None]:
        order = random.Random(n)

        def write() -> None:
            posts = [{"remote_id": f"p{i}", "likes": n} for i in range(POSTS)]
            comments = [
                {"account_id": "city_x", "platform": "x", "remote_id": f"c{i}", "author": "r", "text": f"#{i}"}
                for i in range(COMMENTS)
            ]
            order.shuffle(posts)
            order.shuffle(comments)
            for half in (posts[: POSTS // 2], posts[POSTS // 2 :]):
                with ledger.session() as s:
                    metrics.add_post_metrics(s, "city_x", half, collected_at=T0)
            with ledger.session() as s:
                metrics.add_account_metrics(s, "city_x", {"followers": 100 + n}, collected_at=T0)
            for batch in (comments[: COMMENTS // 2 + 2], comments[COMMENTS // 2 - 2 :]):  # overlapping
                with ledger.session() as s:
                    feedback.add_feedback(s, batch, now=T0)
            for kind, key in (("token_invalid", "token:a"), ("token_invalid", "token:b"), ("flaming", "flaming:c")):
                with ledger.session() as s:
                    alerts.raise_alert(s, kind, key, f"{key} raised by writer {n}")
            with ledger.session() as s:
                cursors.set_cursor(s, "city_x", "mentions", cursor_values[n], advance="number")

        return write

    run_together([writer(n) for n in range(WRITERS)])

    assert count(ledger, PostMetric) == POSTS
    assert count(ledger, AccountMetric) == 1
    assert count(ledger, FeedbackItem) == COMMENTS
    assert count(ledger, Alert) == 3
    with ledger.session(readonly=True) as s:
        assert cursors.get_cursor(s, "city_x", "mentions") == "1000000000001"
        likes = set(s.scalars(select(PostMetric.likes)))
        followers = s.scalar(select(AccountMetric.followers))
    assert len(likes) >= 1 and likes <= set(range(WRITERS))  # some writer's values, never a mix or a sum
    assert followers in {100 + n for n in range(WRITERS)}


def test_racing_cursor_moves_keep_the_furthest(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    stamps = [(T0 + timedelta(minutes=m)).isoformat() for m in range(WRITERS * 4)]
    random.Random(9).shuffle(stamps)

    def writer(n: int) -> Callable[[], None]:
        def write() -> None:
            for stamp in stamps[n::WRITERS]:
                with ledger.session() as s:
                    cursors.set_cursor(s, "city_x", "comments", stamp, advance="text")

        return write

    run_together([writer(n) for n in range(WRITERS)])
    with ledger.session(readonly=True) as s:
        assert cursors.get_cursor(s, "city_x", "comments") == max(stamps)


def test_a_cursor_moves_only_as_the_caller_says(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    with ledger.session() as s:
        assert cursors.set_cursor(s, "city_x", "posts", "99", advance="number")
        assert not cursors.set_cursor(s, "city_x", "posts", "100000"[:2], advance="number")  # 10 < 99
        assert cursors.set_cursor(s, "city_x", "posts", "100", advance="number")  # longer: further
        assert not cursors.set_cursor(s, "city_x", "posts", "100", advance="number")  # not further
        assert cursors.get_cursor(s, "city_x", "posts") == "100"
        assert cursors.set_cursor(s, "city_x", "posts", "99", advance="text")  # as text, "99" > "100"
        assert cursors.set_cursor(s, "city_x", "posts", "5")  # "always": the caller resets it
        assert cursors.get_cursor(s, "city_x", "posts") == "5"
        assert cursors.set_cursor(s, "city_x", "since", "2026-04-01T00:00:00+00:00", advance="text")
        assert not cursors.set_cursor(s, "city_x", "since", "2026-03-31T23:59:59+00:00", advance="text")
        assert cursors.get_cursor(s, "city_x", "since") == "2026-04-01T00:00:00+00:00"


def test_bad_cursor_requests_are_refused(session, seeded: Callable[..., None]) -> None:
    seeded()
    with pytest.raises(LedgerError, match="not a decimal number"):
        cursors.set_cursor(session, "city_x", "posts", "12a", advance="number")
    with pytest.raises(LedgerError, match="advance 'sideways'"):
        cursors.set_cursor(session, "city_x", "posts", "1", advance="sideways")  # type: ignore[arg-type]


def test_a_retried_snapshot_rewrites_itself(ledger: Ledger, seeded: Callable[..., None]) -> None:
    seeded()
    with ledger.session() as s:
        metrics.add_post_metrics(s, "city_x", [{"remote_id": "p1", "likes": 1, "delivery_id": None}], collected_at=T0)
        metrics.add_post_metrics(s, "city_x", [{"remote_id": "p1", "likes": 4, "extra": {"saves": 2}}], collected_at=T0)
        metrics.add_post_metrics(s, "city_x", [{"remote_id": "p1", "likes": 9}], collected_at=T0 + timedelta(hours=1))
        first = metrics.add_account_metrics(s, "city_x", {"followers": 10}, collected_at=T0)
        again = metrics.add_account_metrics(s, "city_x", {"followers": 12, "posts": 3}, collected_at=T0)
    assert (again.id, again.followers, again.posts) == (first.id, 12, 3)
    with ledger.session(readonly=True) as s:
        rows = s.scalars(select(PostMetric).order_by(PostMetric.collected_at)).all()
    assert [(r.collected_at, r.likes, r.extra) for r in rows] == [
        (T0, 4, {"saves": 2}),
        (T0 + timedelta(hours=1), 9, {}),
    ]


def test_a_post_metric_needs_its_remote_id(session, seeded: Callable[..., None]) -> None:
    seeded()
    with pytest.raises(LedgerError, match=r"city_x.*no remote_id"):
        metrics.add_post_metrics(session, "city_x", [{"remote_id": "p1"}, {"likes": 3}])
