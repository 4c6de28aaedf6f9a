"""InstagramHook against the sandbox: containers, polling, quotas, reconciliation by container status."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from koho.platforms.errors import (
    AuthExpired,
    NotSupported,
    PermanentlyRejected,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from koho.platforms.instagram import InstagramHook
from koho.platforms.types import OutgoingPost
from tests.unit.platforms.hook_helpers import errors_under_faults, sleep_until, wait_until

P = "instagram"
IMAGE = "https://cdn.city.koho.example.jp/media/sakura.jpg"
CAPTION = "桜まつりは4月5日から。#光歩市 #桜"


def photo(text: str = CAPTION, *urls: str, **kw) -> OutgoingPost:
    return OutgoingPost(text, image_urls=urls or (IMAGE,), **kw)


@pytest.fixture
def account(sandbox):
    return sandbox.add_account(P, "koho_city", display_name="光歩市", followers=5400)


@pytest.fixture
def make_hook(hook_factory, account):
    return hook_factory(InstagramHook, P, account, container_poll_seconds=3)


def live_posts(sandbox) -> list[dict]:
    return sandbox.posts(P)


def containers(sandbox) -> dict:
    return sandbox.state.scratch.get(P, {}).get("containers", {})


def test_publish_read_metrics_comments_and_no_delete(sandbox, hook):
    published = hook.publish_once(photo(), idempotency_key="i-1")
    [stored] = live_posts(sandbox)
    assert (stored["post_id"], stored["text"], stored["media"]) == (published.remote_id, CAPTION, [IMAGE])
    assert published.url.startswith("https://www.instagram.com/p/")
    assert hook.get_post(published.remote_id).text == CAPTION

    sandbox.state.post(P, published.remote_id).metrics.update({"impressions": 800, "likes": 31, "reposts": 4})
    sandbox.comment(P, "koho_city", "hanako_k", "きれい！", post_id=published.remote_id)
    metrics = hook.post_metrics(published.remote_id)
    assert (metrics.impressions, metrics.likes, metrics.replies, metrics.reposts) == (800, 31, 1, 4)
    assert metrics.extra["reach"] == 560

    page = hook.comments_since(None)
    assert [(c.author, c.text) for c in page.comments] == [("hanako_k", "きれい！")]
    assert hook.comments_since(page.cursor).comments == []

    assert hook.capabilities.delete is False
    with pytest.raises(NotSupported):
        hook.delete(published.remote_id)
    assert len(live_posts(sandbox)) == 1
    assert hook.account_metrics().followers == 5400 and hook.account_metrics().posts == 1


def test_text_only_is_refused_before_any_call(sandbox, hook):
    assert hook.capabilities.image_required
    with pytest.raises(PermanentlyRejected) as refused:
        hook.publish_once(OutgoingPost("画像なしのお知らせ"), idempotency_key="i-2")
    assert refused.value.kind == "bad_media"
    assert containers(sandbox) == {}


def test_container_is_polled_until_finished(sandbox, connect, waits):
    slow = sandbox.add_account(P, "koho_slow", extra={"container_polls": 2})
    hook = InstagramHook(connect(P, slow, container_poll_seconds=3), sleep=waits.append)
    hook.publish_once(photo(), idempotency_key="i-3")
    assert waits == [3.0, 3.0]
    assert len(sandbox.posts(P)) == 1


def test_a_container_still_processing_after_the_checks_is_left_for_a_later_try(sandbox, connect, waits):
    slow = sandbox.add_account(P, "koho_stuck", extra={"container_polls": 50})
    hook = InstagramHook(connect(P, slow, container_poll_seconds=3, container_poll_attempts=3), sleep=waits.append)
    with pytest.raises(TransientError, match="still processing after 3 checks"):
        hook.publish(photo(), idempotency_key="i-stuck")
    assert waits == [3.0, 3.0]  # between the three checks, not after the last
    assert sandbox.posts(P) == []


def test_reels_and_carousels(sandbox, hook, waits):
    reel = hook.publish_once(photo("動画でご紹介", "https://cdn.example.jp/tour.mp4"), idempotency_key="i-4")
    assert waits == [3.0, 3.0]  # videos process before they can be published
    album = hook.publish_once(
        photo(
            "写真3枚", "https://cdn.example.jp/1.jpg", "https://cdn.example.jp/2.jpg", "https://cdn.example.jp/3.jpg"
        ),
        idempotency_key="i-5",
    )
    kinds = {p.post_id: p.extra["media_type"] for p in sandbox.state.posts[P].values()}
    assert kinds == {reel.remote_id: "REELS", album.remote_id: "CAROUSEL"}
    assert len(sandbox.state.post(P, album.remote_id).media) == 3


@pytest.mark.parametrize(
    "caption", ["あ" * 2201, " ".join(f"#tag{n}" for n in range(31)), " ".join(f"@user{n}" for n in range(21))]
)
def test_caption_limits_are_the_apis_to_enforce(sandbox, hook, caption):
    with pytest.raises(PermanentlyRejected) as refused:
        hook.publish_once(photo(caption), idempotency_key="i-6")
    assert refused.value.kind == "too_long" and refused.value.code == "36004/2207010"
    assert live_posts(sandbox) == []


def test_media_that_fails_processing_is_bad_media(sandbox, hook):
    with pytest.raises(PermanentlyRejected) as refused:
        hook.publish_once(photo(CAPTION, "https://cdn.example.jp/broken.jpg"), idempotency_key="i-7")
    assert refused.value.kind == "bad_media"


def test_publishing_quota(sandbox, hook):
    assert hook.publishing_quota().total == 50
    sandbox.limit(P, "publish", 1, 86400)
    hook.publish_once(photo(), idempotency_key="i-8")
    quota = hook.publishing_quota()
    assert (quota.used, quota.total, quota.remaining, quota.window_seconds) == (1, 1, 0, 86400)
    with pytest.raises(RateLimited) as limited:
        hook.publish_once(photo("二件目"), idempotency_key="i-9")
    assert limited.value.seconds_to_wait() > 23 * 3600  # beyond max_wait: raised, not slept on
    assert len(live_posts(sandbox)) == 1


def test_lost_publish_is_reconciled_by_container_status(sandbox, hook):
    container = hook.prepare(photo(), idempotency_key="i-10")  # e.g. before the scheduled time
    sandbox.fault(P, "lost_response", operation="publish")
    published = hook.publish_once(photo(), idempotency_key="i-10")
    assert published.reconciled
    assert containers(sandbox)[container]["status_code"] == "PUBLISHED"
    assert [p["post_id"] for p in live_posts(sandbox)] == [published.remote_id]


def test_lost_container_creation_still_posts_once(sandbox, hook):
    sandbox.fault(P, "lost_response", operation="publish")
    hook.publish_once(photo(), idempotency_key="i-11")
    assert len(live_posts(sandbox)) == 1


def test_server_error_on_publish_posts_once(sandbox, hook):
    hook.prepare(photo(), idempotency_key="i-12")
    sandbox.fault(P, "server_error", operation="publish")
    hook.publish_once(photo(), idempotency_key="i-12")
    assert len(live_posts(sandbox)) == 1
    assert len(containers(sandbox)) == 1  # the retry reused the container


def test_maybe_sent_before_matches_the_caption(sandbox, hook, make_hook):
    first = hook.publish_once(photo(), idempotency_key="i-13")
    fresh = make_hook()  # a new worker: no remembered container
    again = fresh.publish_once(photo(), idempotency_key="i-13", maybe_sent_before=True)
    assert again.reconciled and again.remote_id == first.remote_id
    assert len(live_posts(sandbox)) == 1


def test_duplicate_and_expired_token(sandbox, hook):
    sandbox.fault(P, "duplicate", operation="publish")
    with pytest.raises(PermanentlyRejected) as duplicate:
        hook.publish_once(photo(), idempotency_key="i-14")
    assert duplicate.value.kind == "duplicate"
    sandbox.fault(P, "expired_token")
    with pytest.raises(AuthExpired):
        hook.verify_credentials()


def test_rate_limit_waits_then_reads(sandbox, hook, waits):
    published = hook.publish_once(photo(), idempotency_key="i-15")
    sandbox.fault(P, "rate_limit", operation="read", delay=20)
    assert hook.get_post(published.remote_id).remote_id == published.remote_id
    assert 55 <= waits[0] <= 61  # one minute, as estimated_time_to_regain_access says


def test_server_error_on_read_is_retried(sandbox, hook, waits):
    published = hook.publish_once(photo(), idempotency_key="i-16")
    sandbox.fault(P, "server_error", operation="read")
    assert hook.get_post(published.remote_id).text == CAPTION
    assert len(waits) == 1


def test_slow_read_times_out_and_is_retried(sandbox, hook, make_hook, waits):
    published = hook.publish_once(photo(), idempotency_key="i-17")
    impatient = make_hook(timeout=0.3)
    sandbox.fault(P, "slow", operation="read", delay=1.0)
    assert impatient.get_post(published.remote_id).text == CAPTION
    assert len(waits) == 1  # one timeout (a TransientError on a read), one retry


def test_slow_publish_is_unknown_then_reconciled_by_container_status(sandbox, make_hook):
    """media_publish outlives the timeout and is applied later: the hook cannot know, and must find
    the published container rather than publish again."""
    hook = make_hook(timeout=0.3)
    container = hook.prepare(photo(), idempotency_key="i-18")
    sandbox.fault(P, "slow", operation="publish", delay=1.0)
    with pytest.raises(UnknownOutcome):
        hook.publish(photo(), idempotency_key="i-18")
    wait_until(lambda: len(live_posts(sandbox)) == 1, "the late publish")  # before the next claim reconciles
    published = hook.publish_once(photo(), idempotency_key="i-18", maybe_sent_before=True)
    assert published.reconciled
    assert containers(sandbox)[container]["status_code"] == "PUBLISHED"
    assert [p["post_id"] for p in live_posts(sandbox)] == [published.remote_id]


def test_slow_publish_inside_one_attempt_posts_once(sandbox, make_hook):
    """The same, without a second worker: publish_once waits out the in-flight grace, then reconciles."""
    hook = make_hook(timeout=0.3)
    hook.prepare(photo(), idempotency_key="i-19")
    sandbox.fault(P, "slow", operation="publish", delay=1.0)
    asked: list[float] = []
    hook._sleep = sleep_until(lambda: len(live_posts(sandbox)) == 1, asked)
    published = hook.publish_once(photo(), idempotency_key="i-19")
    assert published.reconciled and InstagramHook.in_flight_grace in asked
    assert [p["post_id"] for p in live_posts(sandbox)] == [published.remote_id]


def test_verify_credentials(sandbox, connect):
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=59)
    account = sandbox.add_account(
        P, "koho_bousai", display_name="光歩市防災", followers=75, token_expires_at=expires.isoformat()
    )
    info = InstagramHook(connect(P, account)).verify_credentials()
    assert (info.handle, info.display_name, info.followers, info.token_expires_at) == (
        "koho_bousai",
        "光歩市防災",
        75,
        expires,
    )


def test_search_looks_up_candidate_usernames(sandbox, hook):
    sandbox.add_account(P, "koho_city_official", token=None, display_name="光歩市(公式?)", followers=12)
    found = {a.handle: a.followers for a in hook.search_accounts("Koho City")}
    assert found == {"koho_city": 5400, "koho_city_official": 12}
    assert hook.search_accounts("光歩市") == []  # no username can be derived from Japanese text


def test_token_never_appears_in_errors_or_logs(sandbox, hook, account, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    hook.verify_credentials()
    messages = errors_under_faults(
        sandbox,
        P,
        ("expired_token", "server_error", "duplicate"),
        lambda kind: hook.publish_once(photo(f"{kind} のテスト"), idempotency_key=f"leak-{kind}"),
        count=50,
    )
    assert len(messages) == 3
    token = account["token"]
    assert all(token not in m for m in messages)
    assert token not in caplog.text
    assert token not in "".join(capsys.readouterr())
