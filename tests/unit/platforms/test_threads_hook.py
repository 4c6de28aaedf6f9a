"""ThreadsHook against the sandbox: containers, replies in a thread, quotas, deletes, reconciliation."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests

from koho.platforms.errors import AuthExpired, PermanentlyRejected, RateLimited, UnknownOutcome
from koho.platforms.threads import ThreadsHook
from koho.platforms.types import OutgoingPost
from tests.unit.platforms.hook_helpers import errors_under_faults, sleep_until, wait_until

P = "threads"
TEXT = "本日17時から市民会館で防災講座を開きます。"


@pytest.fixture
def account(sandbox):
    return sandbox.add_account(P, "koho_city", display_name="光歩市", followers=2300)


@pytest.fixture
def make_hook(hook_factory, account):
    return hook_factory(ThreadsHook, P, account)


def live_posts(sandbox) -> list[dict]:
    return sandbox.posts(P)


def test_publish_read_metrics_comments_delete(sandbox, hook):
    post = OutgoingPost(TEXT, link="https://www.city.koho.example.jp/bousai")
    published = hook.publish_once(post, idempotency_key="t-1")
    [stored] = live_posts(sandbox)
    assert (stored["text"], stored["link"]) == (TEXT, post.link)  # sent as link_attachment
    assert published.url.startswith("https://www.threads.com/@koho_city/post/")
    assert hook.get_post(published.remote_id).text == TEXT

    sandbox.state.post(P, published.remote_id).metrics.update(
        {"impressions": 150, "likes": 9, "reposts": 2, "quotes": 1, "shares": 3}
    )
    sandbox.comment(P, "koho_city", "taro_y", "参加します！", post_id=published.remote_id)
    metrics = hook.post_metrics(published.remote_id)
    assert (metrics.impressions, metrics.likes, metrics.replies, metrics.reposts, metrics.quotes) == (150, 9, 1, 2, 1)

    page = hook.comments_since(None)
    assert [(c.author, c.text, c.post_id) for c in page.comments] == [("taro_y", "参加します！", published.remote_id)]
    assert hook.comments_since(page.cursor).comments == []

    hook.delete(published.remote_id)
    assert live_posts(sandbox) == []


def test_follow_up_replies_and_their_reconciliation(sandbox, hook, make_hook):
    root = hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-2")
    follow = hook.publish_once(OutgoingPost("続報：会場は2階です。", reply_to=root.remote_id), idempotency_key="t-3")
    assert sandbox.state.post(P, follow.remote_id).reply_to == root.remote_id
    again = make_hook().publish_once(
        OutgoingPost("続報：会場は2階です。", reply_to=root.remote_id), idempotency_key="t-3", maybe_sent_before=True
    )
    assert again.reconciled and again.remote_id == follow.remote_id  # found among own replies
    assert len(live_posts(sandbox)) == 2
    assert [c.text for c in hook.comments_since(None).comments] == []  # own replies are not residents' comments


def test_text_over_500_characters(sandbox, hook, account):
    with pytest.raises(PermanentlyRejected) as refused:
        hook.publish_once(OutgoingPost("あ" * 501), idempotency_key="t-4")
    assert refused.value.kind == "too_long"
    raw = requests.post(
        f"{sandbox.url}/threads/v1.0/me/threads",
        data={"media_type": "TEXT", "text": "あ" * 501},
        headers={"Authorization": f"Bearer {account['token']}"},
        timeout=10,
    )
    assert raw.status_code == 400 and raw.json()["error"]["code"] == 100
    assert hook.classify_error(raw).kind == "too_long"  # the API's own refusal maps the same way
    assert live_posts(sandbox) == []


def test_publishing_quota(sandbox, hook):
    quota = hook.publishing_quota()
    assert (quota.used, quota.total, quota.window_seconds) == (0, 250, 86400)
    sandbox.limit(P, "publish", 1, 86400)
    hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-5")
    with pytest.raises(RateLimited):
        hook.publish_once(OutgoingPost("二件目"), idempotency_key="t-6")
    assert hook.publishing_quota().remaining == 0
    assert len(live_posts(sandbox)) == 1


def test_lost_publish_is_reconciled_by_container_status(sandbox, hook):
    hook.prepare(OutgoingPost(TEXT), idempotency_key="t-7")
    sandbox.fault(P, "lost_response", operation="publish")
    published = hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-7")
    assert published.reconciled
    assert [p["post_id"] for p in live_posts(sandbox)] == [published.remote_id]


def test_server_error_on_publish_posts_once(sandbox, hook):
    sandbox.fault(P, "server_error", operation="publish", count=2)
    hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-8")
    assert len(live_posts(sandbox)) == 1


def test_duplicate_and_expired_token(sandbox, hook):
    sandbox.fault(P, "duplicate", operation="publish")
    with pytest.raises(PermanentlyRejected) as duplicate:
        hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-9")
    assert duplicate.value.kind == "duplicate"
    sandbox.fault(P, "expired_token")
    with pytest.raises(AuthExpired):
        hook.verify_credentials()


def test_throttle_without_announced_reset_waits_the_configured_time(sandbox, make_hook, waits):
    hook = make_hook(throttle_wait_seconds="42")
    published = hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-10")
    sandbox.fault(P, "rate_limit", operation="read")
    assert hook.get_post(published.remote_id).text == TEXT
    assert 41 <= waits[0] <= 43  # X-App-Usage gives percentages, not a reset time


def test_server_error_on_read_is_retried(sandbox, hook, waits):
    published = hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-11")
    sandbox.fault(P, "server_error", operation="read")
    assert hook.get_post(published.remote_id).remote_id == published.remote_id
    assert len(waits) == 1


def test_slow_read_times_out_and_is_retried(sandbox, hook, make_hook, waits):
    published = hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-12")
    impatient = make_hook(timeout=0.3)
    sandbox.fault(P, "slow", operation="read", delay=1.0)
    assert impatient.get_post(published.remote_id).text == TEXT
    assert len(waits) == 1  # one timeout (a TransientError on a read), one retry


def test_slow_publish_is_unknown_then_reconciled_by_container_status(sandbox, make_hook):
    """threads_publish outlives the timeout and is applied later: the retry finds the published
    container instead of publishing again."""
    hook = make_hook(timeout=0.3)
    hook.prepare(OutgoingPost(TEXT), idempotency_key="t-13")
    sandbox.fault(P, "slow", operation="publish", delay=1.0)
    with pytest.raises(UnknownOutcome):
        hook.publish(OutgoingPost(TEXT), idempotency_key="t-13")
    wait_until(lambda: len(live_posts(sandbox)) == 1, "the late publish")  # before the next claim reconciles
    published = hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-13", maybe_sent_before=True)
    assert published.reconciled
    assert [p["post_id"] for p in live_posts(sandbox)] == [published.remote_id]


def test_slow_publish_inside_one_attempt_posts_once(sandbox, make_hook):
    hook = make_hook(timeout=0.3)
    hook.prepare(OutgoingPost(TEXT), idempotency_key="t-14")
    sandbox.fault(P, "slow", operation="publish", delay=1.0)
    asked: list[float] = []
    hook._sleep = sleep_until(lambda: len(live_posts(sandbox)) == 1, asked)
    published = hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-14")
    assert published.reconciled and ThreadsHook.in_flight_grace in asked
    assert [p["post_id"] for p in live_posts(sandbox)] == [published.remote_id]


def test_delete_after_a_lost_response_is_done(sandbox, hook):
    published = hook.publish_once(OutgoingPost(TEXT), idempotency_key="t-12")
    sandbox.fault(P, "lost_response", operation="delete")
    hook.delete(published.remote_id)
    assert live_posts(sandbox) == []


def test_verify_credentials_uses_the_configured_expiry(make_hook):
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    info = make_hook(token_expires_at=expires.isoformat()).verify_credentials()
    assert (info.handle, info.display_name, info.token_expires_at) == ("koho_city", "光歩市", expires)
    assert make_hook().account_metrics().followers == 2300


def test_search_uses_profile_lookup(sandbox, hook):
    sandbox.add_account(P, "koho.city.official", token=None, display_name="光歩市 公式", followers=140)
    found = {a.handle: a.followers for a in hook.search_accounts("koho city", limit=5)}
    assert found == {"koho_city": 2300, "koho.city.official": 140}


def test_token_never_appears_in_errors_or_logs(sandbox, hook, account, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    messages = errors_under_faults(
        sandbox,
        P,
        ("expired_token", "server_error", "rate_limit"),
        lambda kind: hook.publish_once(OutgoingPost(f"{kind} のテスト"), idempotency_key=f"leak-{kind}"),
        count=50,
    )
    assert len(messages) == 3
    token = account["token"]
    assert all(token not in m for m in messages)
    assert token not in caplog.text
    assert token not in "".join(capsys.readouterr())
