"""The LINE hook against the real sandbox: broadcasts with retry keys, quota, statistics, webhooks, secrecy.

LINE's exactly-once story is the retry key: every retry of a delivery carries the same UUID and a
409 with ``x-line-accepted-request-id`` means "already sent". The tests count the broadcasts the
sandbox holds to prove that no fault makes a message go out twice.
"""

from __future__ import annotations

import json
import logging
import secrets as pysecrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from koho.platforms.base import RetryPolicy
from koho.platforms.errors import (
    AuthExpired,
    NotSupported,
    PermanentlyRejected,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from koho.platforms.line import (
    LineHook,
    next_month_start_jst,
    parse_webhook,
    retry_key_for,
    verify_webhook_signature,
)
from koho.platforms.types import OutgoingPost
from sandbox.platforms.line import line_user_id, signed_webhook
from tests.unit.platforms.hook_helpers import sleep_until, wait_until

# The basic id without its "@": the sandbox's admin API looks handles up with the "@" stripped.
HANDLE = "kohocity-sample"
POLICY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02, max_wait=120)
NOTICE = OutgoingPost(text="【こほ市】今週末は粗大ごみの収集日です。", link="https://www.city.example.jp/gomi")


@pytest.fixture
def channel_secret() -> str:
    return pysecrets.token_hex(16)


@pytest.fixture
def city(sandbox, channel_secret):
    return sandbox.add_account(
        "line",
        HANDLE,
        display_name="こほ市公式",
        followers=1200,
        extra={"channel_secret": channel_secret, "blocks": 30},
    )


@pytest.fixture
def make_hook(connect, city, channel_secret, waits):
    def _make(*, timeout: float = 15.0, retry: RetryPolicy = POLICY, **extra) -> LineHook:
        conn_id = connect("line", city, channel_secret=channel_secret, **extra)
        return LineHook(conn_id, retry=retry, sleep=waits.append, timeout=timeout)

    return _make


def sent(sandbox) -> list[dict]:
    return sandbox.posts("line")


# --------------------------------------------------------------------------- the cycle


def test_broadcast_then_metrics_and_nothing_else(sandbox, hook):
    post = hook.publish_once(NOTICE, idempotency_key="cal-7:line:1")
    [message] = sent(sandbox)
    assert message["post_id"] == post.remote_id and post.url is None
    assert message["text"] == "【こほ市】今週末は粗大ごみの収集日です。\nhttps://www.city.example.jp/gomi"
    stored = sandbox.state.post("line", post.remote_id)
    assert stored.extra["kind"] == "broadcast"
    assert stored.extra["retry_key"] == retry_key_for("cal-7:line:1")

    stored.metrics.update(impressions=640, clicks=85)
    metrics = hook.post_metrics(post.remote_id)
    assert (metrics.impressions, metrics.clicks, metrics.extra["delivered"]) == (640, 85, 1200)

    for call in (
        lambda: hook.delete(post.remote_id),
        lambda: hook.get_post(post.remote_id),
        lambda: hook.list_recent_posts(datetime.now(UTC)),
        lambda: hook.comments_since(None),
        lambda: hook.search_accounts("こほ市"),
    ):
        with pytest.raises(NotSupported):
            call()
    assert len(sent(sandbox)) == 1


def test_images_become_image_messages_and_push_goes_to_the_target(sandbox, make_hook):
    hook = make_hook(push_to="C" + "0" * 32)
    post = hook.publish_once(
        OutgoingPost(text="避難所マップ", image_urls=("https://www.city.example.jp/map.png",)), idempotency_key="img"
    )
    stored = sandbox.state.post("line", post.remote_id)
    assert stored.extra["kind"] == "push" and stored.extra["to"] == "C" + "0" * 32
    assert [m["type"] for m in stored.extra["messages"]] == ["text", "image"]
    assert stored.media == ["https://www.city.example.jp/map.png"]
    with pytest.raises(PermanentlyRejected) as exc:
        hook.publish_once(
            OutgoingPost(text="多すぎ", image_urls=tuple(f"https://x.jp/{n}.png" for n in range(5))),
            idempotency_key="six",
        )
    assert exc.value.kind == "bad_media"
    assert len(sent(sandbox)) == 1


def test_verify_credentials_and_account_metrics(sandbox, city, hook):
    info = hook.verify_credentials()
    assert (info.remote_id, info.handle, info.display_name) == (city["account_id"], "@kohocity-sample", "こほ市公式")
    assert info.url == "https://line.me/R/ti/p/%40kohocity-sample"
    assert info.token_expires_at is None  # a long-lived token, and no date configured

    metrics = hook.account_metrics()
    assert metrics.followers == 1200  # friends added minus blocks
    assert (metrics.extra["friends_added"], metrics.extra["blocks"]) == (1230, 30)
    assert metrics.extra["messages_sent_this_month"] == 0 and "monthly_message_quota" not in metrics.extra


def test_token_expiry_comes_from_the_verify_endpoint(sandbox, city, make_hook):
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)
    sandbox.admin(
        "POST", "/accounts", json=[{"platform": "line", "handle": HANDLE, "token_expires_at": expires.isoformat()}]
    )
    got = make_hook().verify_credentials().token_expires_at
    assert abs((got - expires).total_seconds()) < 5


def test_configured_expiry_is_used_for_long_lived_tokens(make_hook):
    hook = make_hook(token_expires_at="2027-04-01T00:00:00+09:00")
    assert hook.verify_credentials().token_expires_at == datetime(2027, 3, 31, 15, tzinfo=UTC)


# --------------------------------------------------------------------------- retry keys


def test_retry_key_is_a_stable_uuid():
    key = retry_key_for("delivery-42:line:1")
    assert uuid.UUID(key).version == 5 and key == retry_key_for("delivery-42:line:1")
    assert key != retry_key_for("delivery-42:line:2")
    given = str(uuid.uuid4())
    assert retry_key_for(given) == given


def test_same_key_again_is_success_without_a_second_message(sandbox, hook):
    first = hook.publish_once(NOTICE, idempotency_key="once")
    again = hook.publish_once(NOTICE, idempotency_key="once")
    assert again.reconciled and again.remote_id == first.remote_id
    assert len(sent(sandbox)) == 1


def test_lost_response_retries_with_the_same_key(sandbox, hook, waits):
    sandbox.fault("line", "lost_response", operation="publish")
    post = hook.publish_once(NOTICE, idempotency_key="lost")
    assert post.reconciled and [m["post_id"] for m in sent(sandbox)] == [post.remote_id]
    assert len(waits) == 1


def test_server_error_on_publish_sends_once(sandbox, hook):
    sandbox.fault("line", "server_error", operation="publish", count=2)
    post = hook.publish_once(NOTICE, idempotency_key="5xx")
    assert not post.reconciled and [m["post_id"] for m in sent(sandbox)] == [post.remote_id]


def test_maybe_sent_before_reuses_the_key_of_a_killed_worker(sandbox, make_hook):
    first = make_hook().publish(NOTICE, idempotency_key="killed")  # the worker dies before recording it
    again = make_hook().publish_once(NOTICE, idempotency_key="killed", maybe_sent_before=True)
    assert again.reconciled and again.remote_id == first.remote_id
    assert len(sent(sandbox)) == 1


def test_slow_broadcast_is_unknown_and_its_retry_key_makes_the_repeat_a_409(sandbox, make_hook):
    """The broadcast outlives the timeout and goes out later; the retry carries the same key, so
    LINE answers 409 (already accepted) and nothing is sent twice."""
    once = make_hook(timeout=0.3, retry=RetryPolicy(max_attempts=1))  # a worker that gives up at once
    sandbox.fault("line", "slow", operation="publish", delay=1.0)
    with pytest.raises(UnknownOutcome):
        once.publish(NOTICE, idempotency_key="slow")
    wait_until(lambda: len(sent(sandbox)) == 1, "the late broadcast")  # before the next claim retries
    again = make_hook().publish_once(NOTICE, idempotency_key="slow", maybe_sent_before=True)
    assert again.reconciled  # the 409 with x-line-accepted-request-id
    assert [m["post_id"] for m in sent(sandbox)] == [again.remote_id]


def test_slow_broadcast_inside_one_attempt_is_sent_once(sandbox, make_hook):
    hook = make_hook(timeout=0.3)
    sandbox.fault("line", "slow", operation="publish", delay=1.0)
    asked: list[float] = []
    hook._sleep = sleep_until(lambda: len(sent(sandbox)) == 1, asked)
    post = hook.publish_once(NOTICE, idempotency_key="slow-2")
    assert post.reconciled and len(asked) == 1  # one backoff after the timeout, then the 409
    assert [m["post_id"] for m in sent(sandbox)] == [post.remote_id]


def test_slow_read_times_out_and_is_retried(sandbox, make_hook, waits):
    hook = make_hook(timeout=0.3)
    sandbox.fault("line", "slow", operation="metrics", delay=1.0)
    assert hook.account_metrics().followers == 1200
    assert len(waits) == 1  # one timeout (a TransientError on a read), one retry


def test_retry_key_on_an_endpoint_without_retry_keys_is_400(sandbox, city):
    response = requests.get(
        f"{sandbox.url}/line/v2/bot/message/quota",
        timeout=5,
        headers={"Authorization": f"Bearer {city['token']}", "X-Line-Retry-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 400 and response.headers["x-line-request-id"]


# --------------------------------------------------------------------------- faults and limits


def test_rate_limit_backs_off_then_sends(sandbox, hook, waits):
    sandbox.fault("line", "rate_limit", operation="publish")
    hook.publish_once(NOTICE, idempotency_key="rl")
    assert len(waits) == 1 and waits[0] <= POLICY.max_delay  # LINE announces no reset: plain backoff
    assert len(sent(sandbox)) == 1


def test_monthly_quota_is_rate_limited_until_next_month_in_japan(sandbox, city, hook, waits):
    sandbox.admin("POST", "/accounts", json=[{"platform": "line", "handle": HANDLE, "extra": {"message_quota": 2000}}])
    hook.publish_once(NOTICE, idempotency_key="m1")  # 1,200 friends: 1,200 of 2,000 used
    with pytest.raises(RateLimited) as exc:
        hook.publish_once(NOTICE, idempotency_key="m2")
    assert exc.value.code == "monthly_limit" and exc.value.reset_at == next_month_start_jst()
    assert waits == [] and len(sent(sandbox)) == 1  # not retried within the month
    assert hook.message_quota() == {"limit": 2000, "used": 1200}


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        (datetime(2026, 11, 30, 14, 59, tzinfo=UTC), datetime(2026, 11, 30, 15, 0, tzinfo=UTC)),  # 23:59 JST
        (datetime(2026, 11, 30, 15, 1, tzinfo=UTC), datetime(2026, 12, 31, 15, 0, tzinfo=UTC)),  # Dec 1 JST
        (datetime(2026, 12, 31, 15, 30, tzinfo=UTC), datetime(2027, 1, 31, 15, 0, tzinfo=UTC)),  # Jan 1 JST
    ],
)
def test_next_month_start_is_in_japan_time(now, reset):
    assert next_month_start_jst(now) == reset


def test_text_longer_than_5000_is_too_long(sandbox, hook):
    hook.publish_once(OutgoingPost(text="あ" * 5000), idempotency_key="5000")
    with pytest.raises(PermanentlyRejected) as exc:
        hook.publish_once(OutgoingPost(text="あ" * 5001), idempotency_key="5001")
    assert exc.value.kind == "too_long" and "messages[0].text" in str(exc.value)
    assert len(sent(sandbox)) == 1


def test_expired_or_revoked_token_is_auth_expired(sandbox, hook):
    sandbox.fault("line", "expired_token", operation="publish")
    with pytest.raises(AuthExpired):
        hook.publish_once(NOTICE, idempotency_key="exp")
    sandbox.admin("POST", f"/accounts/line/{HANDLE}/revoke")
    with pytest.raises(AuthExpired):
        hook.verify_credentials()
    assert sent(sandbox) == []


def test_duplicate_without_an_accepted_request_is_rejected(sandbox, hook):
    sandbox.fault("line", "duplicate", operation="publish")
    with pytest.raises(PermanentlyRejected) as exc:
        hook.publish_once(NOTICE, idempotency_key="dup")
    assert exc.value.kind == "duplicate" and sent(sandbox) == []


def test_server_error_on_a_read_is_retried(sandbox, hook, waits):
    sandbox.fault("line", "server_error", operation="metrics", count=2)
    assert hook.account_metrics().followers == 1200
    assert len(waits) == 2


# --------------------------------------------------------------------------- webhooks


def test_webhook_signature_and_messages(sandbox, city, hook, channel_secret):
    sandbox.comment("line", city["account_id"], "住民A", "粗大ごみの申し込み方法を教えてください")
    body, signature = signed_webhook(sandbox.state, city["account_id"])
    assert verify_webhook_signature(body, signature, channel_secret)
    assert not verify_webhook_signature(body + b" ", signature, channel_secret)
    assert not verify_webhook_signature(body, signature, "0" * 32)
    assert not verify_webhook_signature(body, "", channel_secret)

    [comment] = hook.handle_webhook(body, signature)
    assert (comment.text, comment.author, comment.post_id) == (
        "粗大ごみの申し込み方法を教えてください",
        line_user_id("住民A"),
        None,
    )
    assert comment.created_at is not None and comment.created_at.tzinfo is not None
    with pytest.raises(PermanentlyRejected):
        hook.handle_webhook(body.replace("粗大".encode(), "小型".encode()), signature)


def test_parse_webhook_skips_other_events_and_marks_non_text():
    body = json.dumps(
        {
            "destination": "U0",
            "events": [
                {"type": "follow", "timestamp": 1, "source": {"type": "user", "userId": "U1"}},
                {
                    "type": "message",
                    "timestamp": 1_700_000_000_000,
                    "source": {"type": "user", "userId": "U2"},
                    "message": {"id": "9", "type": "sticker", "packageId": "1", "stickerId": "2"},
                },
            ],
        }
    ).encode()
    [comment] = parse_webhook(body)
    assert (comment.remote_id, comment.text, comment.author) == ("9", "[sticker]", "U2")
    assert comment.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


# --------------------------------------------------------------------------- secrecy


def test_token_never_reaches_exceptions_or_logs(sandbox, city, hook, channel_secret, caplog):
    caplog.set_level(logging.DEBUG)
    hook.verify_credentials()
    hook.publish_once(NOTICE, idempotency_key="log")
    errors = []
    sandbox.fault("line", "server_error", operation="metrics", count=10)
    with pytest.raises(TransientError) as failed:
        hook.account_metrics()
    errors.append(str(failed.value))
    sandbox.admin("DELETE", "/faults")
    sandbox.admin("POST", f"/accounts/line/{HANDLE}/revoke")
    with pytest.raises(AuthExpired) as expired:
        hook.verify_credentials()
    errors.append(str(expired.value))
    for secret in (city["token"], channel_secret):
        assert secret not in caplog.text
        assert all(secret not in e for e in errors)
