"""Readers against the sandbox: cursors in the ledger, catch-up after an outage, a failing account
beside good ones, and a read quota running out mid-run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from koho.collection.readers import AccountMetricsReader, AccountRef, CommentsReader, PostMetricsReader
from koho.collection.run import MAX_WAIT_SECONDS, collect
from koho.config.schema import ReadQuotaConfig
from koho.ledger import repo
from koho.ledger.collection import recent_post_ids
from koho.ledger.models import Account, CalendarEntry, Delivery
from koho.platforms import mastodon
from koho.platforms.base import RetryPolicy
from koho.platforms.registry import hook_for
from koho.platforms.types import OutgoingPost


def fast_hooks(platform: str, conn_id: str):
    return hook_for(platform, conn_id, retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02))


def official(sandbox, connect, ledger, account_id: str, handle: str, *, token: str | None = None) -> AccountRef:
    """A sandbox Mastodon account, its connection (with ``token`` instead of the real one if given)
    and its ledger row."""
    remote = sandbox.add_account("mastodon", handle, followers=100)
    conn_id = connect("mastodon", {**remote, "token": token or remote["token"]}, conn_id=f"koho_{handle}")
    with ledger.session() as session:
        session.add(
            Account(
                id=account_id,
                platform="mastodon",
                handle=handle,
                display_name=handle,
                department="kouhou",
                connection_id=conn_id,
                status="active",
            )
        )
    return AccountRef(account_id, "mastodon", conn_id)


def stored_comments(store: dict[str, list[str]]):
    """A store that keeps comment texts per account, as the feedback feature will keep items."""

    def keep(session, account, records):
        store.setdefault(account.id, []).extend(c.text for c in records)

    return keep


def test_comments_are_read_once_and_the_cursor_lives_in_the_ledger(sandbox, connect, ledger):
    city = official(sandbox, connect, ledger, "city-mastodon", "koho_city")
    sandbox.comment("mastodon", "koho_city", "shimin_1", "一")
    sandbox.comment("mastodon", "koho_city", "shimin_2", "二")
    kept: dict[str, list[str]] = {}

    first = collect(ledger, [city], CommentsReader(), hook_factory=fast_hooks, store=stored_comments(kept))
    assert [(a.read, a.complete, a.error) for a in first.accounts] == [(2, True, None)]
    with ledger.session(readonly=True) as session:
        cursor = repo.get_cursor(session, "city-mastodon", "comments")
    assert cursor is not None and first.accounts[0].cursor == cursor

    sandbox.comment("mastodon", "koho_city", "shimin_3", "三")
    second = collect(ledger, [city], CommentsReader(), hook_factory=fast_hooks, store=stored_comments(kept))
    assert second.accounts[0].read == 1
    assert kept == {"city-mastodon": ["一", "二", "三"]}  # each comment once


def test_a_run_after_an_outage_catches_up_past_the_hooks_page_cap(sandbox, connect, ledger, monkeypatch):
    """A week of comments is more than one hook call returns: the reader calls again from the new
    cursor until nothing newer comes, and reads nothing it had already read."""
    city = official(sandbox, connect, ledger, "city-mastodon", "koho_city")
    sandbox.comment("mastodon", "koho_city", "a", "前")
    kept: dict[str, list[str]] = {}
    collect(ledger, [city], CommentsReader(), hook_factory=fast_hooks, store=stored_comments(kept))

    monkeypatch.setattr(mastodon, "_PAGE_CAP", 2)
    monkeypatch.setattr(mastodon.MastodonHook, "page_size", 3)  # one hook call: at most 6 comments
    week = [f"週{n}" for n in range(15)]
    for n, text in enumerate(week):
        sandbox.comment("mastodon", "koho_city", f"r{n}", text)
    result = collect(ledger, [city], CommentsReader(), hook_factory=fast_hooks, store=stored_comments(kept))
    assert result.accounts[0].read == 15 and result.accounts[0].complete
    assert kept["city-mastodon"] == ["前", *week]


def test_a_failing_account_is_reported_and_the_others_are_read(sandbox, connect, ledger):
    good = official(sandbox, connect, ledger, "city-mastodon", "koho_city")
    expired = official(sandbox, connect, ledger, "kanko-mastodon", "koho_kanko", token="revoked-token")
    other = AccountRef("bousai-nowhere", "myspace", "koho_nowhere")
    sandbox.comment("mastodon", "koho_city", "shimin_1", "一")
    kept: dict[str, list[str]] = {}

    result = collect(
        ledger, [expired, other, good], CommentsReader(), hook_factory=fast_hooks, store=stored_comments(kept)
    )
    by_id = {a.account_id: a for a in result.accounts}
    assert by_id["city-mastodon"].read == 1 and by_id["city-mastodon"].error is None
    assert by_id["kanko-mastodon"].error.startswith("account kanko-mastodon: mastodon account 'koho_kanko'")
    assert "revoked-token" not in by_id["kanko-mastodon"].error
    assert by_id["bousai-nowhere"].error.startswith("account bousai-nowhere: no hook for platform 'myspace'")
    assert [a.account_id for a in result.failed] == ["kanko-mastodon", "bousai-nowhere"]
    with ledger.session(readonly=True) as session:
        assert repo.get_cursor(session, "kanko-mastodon", "comments") is None  # nothing moved for it
    assert kept == {"city-mastodon": ["一"]}


def test_a_quota_running_out_mid_run_stops_the_accounts_it_cannot_pay_for(sandbox, connect, ledger):
    """An app-wide quota of 3 units, 1 per request: the first account's read takes 2 (a page, then
    the empty one that says it is caught up), the second's first read the last one; the third is not
    read at all and says when the quota has room again. The platform never saw the fourth request."""
    accounts = [official(sandbox, connect, ledger, f"acct-{n}", f"koho_{n}") for n in range(3)]
    for n in range(3):
        sandbox.comment("mastodon", f"koho_{n}", "shimin", f"{n}")
    quota = ReadQuotaConfig(units=3, per_seconds=3600, shared_by="app", usd_per_unit=0.01)

    result = collect(ledger, accounts, CommentsReader(), hook_factory=fast_hooks, quotas={"mastodon": quota})
    first, second, third = result.accounts
    assert (first.read, first.complete, first.quota.units) == (1, True, 2)
    assert (second.read, second.complete, second.quota.units) == (1, False, 1)
    assert second.stopped.startswith("account acct-1: mastodon account 'acct-1': read quota used up")
    assert (third.read, third.quota.units, third.quota.remaining) == (0, 0, 0)
    assert "read quota used up" in third.stopped and "room again at" in third.stopped
    assert result.units_used() == {"mastodon": 3} and result.cost_usd() == 0.03
    with ledger.session(readonly=True) as session:
        # the second account's cursor covers what it read; the third has none yet
        assert repo.get_cursor(session, "acct-1", "comments") is not None
        assert repo.get_cursor(session, "acct-2", "comments") is None


def test_post_metrics_resume_where_the_quota_stopped_the_round(sandbox, connect, ledger):
    city = official(sandbox, connect, ledger, "city-mastodon", "koho_city")
    hook = fast_hooks("mastodon", city.conn_id)
    ids = tuple(hook.publish(OutgoingPost(f"お知らせ{n}"), idempotency_key=f"m-{n}").remote_id for n in range(4))
    city = AccountRef(city.id, city.platform, city.conn_id, recent_post_ids=ids)
    quota = ReadQuotaConfig(units=3, per_seconds=1, costs={"post_metrics": 1}, default_cost=0)
    rounds: list[list[str]] = []
    store = lambda session, account, records: rounds.append([m.remote_id for m in records])  # noqa: E731

    stopped = collect(
        ledger, [city], PostMetricsReader(), hook_factory=fast_hooks, quotas={"mastodon": quota}, store=store
    )
    assert (stopped.accounts[0].read, stopped.accounts[0].complete, stopped.accounts[0].cursor) == (3, False, ids[2])
    # The next run (no quota in its way): only the post the quota left out is read.
    rest = collect(ledger, [city], PostMetricsReader(), hook_factory=fast_hooks, store=store)
    assert rest.accounts[0].complete and rest.accounts[0].cursor == ""
    assert rounds == [list(ids[:3]), [ids[3]]]


def test_account_metrics_are_one_snapshot_without_a_cursor(sandbox, connect, ledger):
    city = official(sandbox, connect, ledger, "city-mastodon", "koho_city")
    result = collect(ledger, [city], AccountMetricsReader(), hook_factory=fast_hooks)
    read = result.accounts[0]
    assert read.read == 1 and read.records[0].followers == 100 and read.cursor is None
    assert "records" not in read.as_dict()


@pytest.mark.parametrize(("days", "expected"), [(12, ("r1", "r0")), (60, ("r3", "r1", "r0"))])
def test_recent_posts_come_from_published_deliveries(ledger, days, expected):
    """Published posts of the last ``days``, oldest first; a failed delivery has no post."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with ledger.session() as session:
        session.add(Account(id="city-x", platform="x", handle="c", display_name="c", department="d", connection_id="k"))
        session.add(CalendarEntry(id="e1", origin="calendar", source="s", title="t", publish_at=now, content_hash="h"))
        for n, (status, age) in enumerate([("published", 2), ("published", 10), ("failed", 1), ("published", 40)]):
            session.add(
                Delivery(
                    entry_id="e1",
                    account_id="city-x",
                    revision=n + 1,
                    idempotency_key=f"k{n}",
                    due_at=now,
                    status=status,
                    text="t",
                    planned_created_at=now,
                    remote_id=f"r{n}",
                    published_at=now - timedelta(days=age),
                )
            )
    with ledger.session(readonly=True) as session:
        assert recent_post_ids(session, "city-x", now - timedelta(days=days)) == expected


def test_a_window_that_resets_far_away_stops_its_account_instead_of_holding_the_run(sandbox, connect, ledger):
    """One request per hour per account: each account's first read lands, its second would wait an
    hour. The default hooks cap in-process waits, so each account stops with the reason (its cursor
    kept) and the run goes on to the next account at once."""
    accounts = [official(sandbox, connect, ledger, f"acct-{n}", f"koho_{n}") for n in range(2)]
    for n in range(2):
        sandbox.comment("mastodon", f"koho_{n}", "shimin", f"{n}")
    sandbox.limit("mastodon", "api", 1, 3600)
    started = time.monotonic()
    result = collect(ledger, accounts, CommentsReader())
    assert time.monotonic() - started < MAX_WAIT_SECONDS
    for read in result.accounts:
        assert (read.read, read.complete, read.error) == (1, False, None)
        assert "used up until" in read.stopped and read.stopped.startswith(f"account {read.account_id}:")
    assert sandbox.admin("GET", "/stats")["rate_limited"] == []  # the hour's window was never overdrawn
