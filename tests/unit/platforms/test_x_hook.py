"""XHook against the real sandbox: the X API v2 contract, the error taxonomy and "did it post?"."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from koho.platforms.base import RetryPolicy
from koho.platforms.errors import (
    AuthExpired,
    PermanentlyRejected,
    PlatformError,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from koho.platforms.types import OutgoingPost
from koho.platforms.x import XHook, candidate_handles
from tests.unit.platforms.hook_helpers import requests_seen, write_png

NOTICE = "【幸保市】12月1日(日)は総合防災訓練です。詳しくは city.example.jp/bousai & 防災アプリで確認を"


@pytest.fixture
def official(sandbox):
    return sandbox.add_account("x", "koho_city", display_name="幸保市", followers=1200)


@pytest.fixture
def make_hook(hook_factory, official):
    return hook_factory(XHook, "x", official, attempts=4, timeout=5.0)


def test_publish_read_metrics_comments_delete(sandbox, official, make_hook):
    hook = make_hook()
    published = hook.publish(OutgoingPost(NOTICE), idempotency_key="d-1")
    assert published.url == f"https://x.com/koho_city/status/{published.remote_id}"

    remote = hook.get_post(published.remote_id)
    # X wraps every URL (even without a scheme) in t.co and the hook unescapes "&amp;".
    assert "https://t.co/" in remote.text and "city.example.jp" not in remote.text
    assert "& 防災アプリ" in remote.text
    assert remote.created_at is not None and remote.created_at.tzinfo is not None

    sandbox.comment("x", "koho_city", "shimin_1", "参加します！", post_id=published.remote_id)
    metrics = hook.post_metrics(published.remote_id)
    assert metrics.replies == 1 and metrics.remote_id == published.remote_id

    page = hook.comments_since(None)
    assert [(c.author, c.text, c.post_id) for c in page.comments] == [("shimin_1", "参加します！", published.remote_id)]
    assert hook.comments_since(page.cursor).comments == []
    sandbox.comment("x", "koho_city", "shimin_2", "@koho_city 駐車場はありますか")
    newer = hook.comments_since(page.cursor)
    assert [(c.author, c.text, c.post_id) for c in newer.comments] == [("shimin_2", "駐車場はありますか", None)]
    assert int(newer.cursor) > int(page.cursor)

    hook.delete(published.remote_id)
    hook.delete(published.remote_id)  # already gone: not an error
    assert sandbox.posts("x") == []
    with pytest.raises(PermanentlyRejected) as missing:
        hook.get_post(published.remote_id)
    assert missing.value.kind == "not_found"


def test_verify_credentials_reads_me_and_expiry(make_hook):
    hook = make_hook(token_expires_at="2026-12-01T09:00:00+09:00")
    info = hook.verify_credentials()
    assert (info.handle, info.display_name, info.followers) == ("koho_city", "幸保市", 1200)
    assert info.token_expires_at == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def test_user_id_is_looked_up_when_the_connection_has_none(sandbox, official, make_hook):
    hook = make_hook(account_id=None)
    hook.publish(OutgoingPost("市役所の窓口時間が変わります"), idempotency_key="d-1")
    assert hook.user_id() == official["account_id"]
    assert [p.text for p in hook.list_recent_posts(datetime.now(UTC) - timedelta(minutes=5))] == [
        "市役所の窓口時間が変わります"
    ]


def test_account_metrics(sandbox, make_hook):
    hook = make_hook()
    hook.publish(OutgoingPost("一件目"), idempotency_key="a")
    metrics = hook.account_metrics()
    assert (metrics.followers, metrics.posts) == (1200, 1)


def test_list_recent_posts_pages_and_respects_since(sandbox, make_hook):
    hook = make_hook()
    hook.page_size = 5
    for n in range(7):
        hook.publish(OutgoingPost(f"お知らせ {n}"), idempotency_key=f"k{n}")
    posts = hook.list_recent_posts(datetime.now(UTC) - timedelta(minutes=5))
    assert [p.text for p in posts] == [f"お知らせ {n}" for n in reversed(range(7))]
    assert hook.list_recent_posts(datetime.now(UTC) + timedelta(minutes=1)) == []


def test_search_accounts_finds_a_lookalike(sandbox, make_hook):
    sandbox.add_account("x", "koho_city_jp", token=None, display_name="幸保市（公式）")
    sandbox.add_account("x", "other_town", token=None, display_name="別の町")
    found = {a.handle for a in make_hook().search_accounts("koho_city")}
    assert "koho_city_jp" in found and "other_town" not in found


def test_search_falls_back_to_handle_lookup_below_pro_access(sandbox, make_hook):
    tiered = sandbox.add_account("x", "koho_town", display_name="幸保町", extra={"access_tier": "basic"})
    sandbox.add_account("x", "koho_town_jp", token=None, display_name="幸保町")
    sandbox.add_account("x", "kohotown_fan", token=None, display_name="ファン")
    hook = make_hook(tiered, lookalike_handles="kohotown_fan, not a handle")
    found = [a.handle for a in hook.search_accounts("koho_town")]
    assert set(found) == {"koho_town", "koho_town_jp", "kohotown_fan"}


def test_candidate_handles_are_valid_and_unique():
    names = candidate_handles("@koho_city", "koho_city, Koho-City!, kohocity_info")
    assert names[0] == "koho_city" and len(names) == len(set(names))
    assert "koho_city_jp" in names and "kohocity_info" in names and "Koho-City!" not in names
    assert all(len(n) <= 15 for n in names)


def test_rate_buckets_separate_posting_from_reading(sandbox, make_hook, waits):
    hook = make_hook()
    assert hook.rate_bucket("POST", "/2/tweets") == "tweets:create"
    assert hook.rate_bucket("DELETE", "/2/tweets/123") == "tweets:delete"
    assert hook.rate_bucket("GET", "/2/tweets/123") == "tweets:lookup"
    assert hook.rate_bucket("GET", "/2/users/9/tweets") == "users:tweets"
    assert hook.rate_bucket("GET", "/2/users/by/username/koho") == "users:lookup"
    sandbox.limit("x", "tweets:create", 1, 600)
    published = hook.publish(OutgoingPost("投稿枠を使い切る"), idempotency_key="k")
    window = hook.rate_limit_window("tweets:create")
    assert window is not None and window.remaining == 0 and window.limit == 1
    hook.get_post(published.remote_id)  # another bucket: no wait although posting is used up
    assert waits == []
    assert hook.rate_limit_window("tweets:lookup").remaining > 0


def test_rate_limit_waits_for_the_announced_reset_then_succeeds(sandbox, make_hook, waits):
    hook = make_hook()
    published = hook.publish(OutgoingPost("混雑状況のお知らせ"), idempotency_key="k")
    sandbox.fault("x", "rate_limit", operation="read", delay=20)
    assert hook.get_post(published.remote_id).remote_id == published.remote_id
    assert 15 <= waits[0] <= 21.5  # x-rate-limit-reset is whole epoch seconds


def test_rate_limit_beyond_max_wait_is_raised(sandbox, make_hook):
    hook = make_hook()
    hook.retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_wait=5)
    sandbox.fault("x", "rate_limit", operation="verify", delay=60)
    with pytest.raises(RateLimited) as exc:
        hook.verify_credentials()
    assert 50 < exc.value.seconds_to_wait() <= 61


def test_server_error_on_a_read_is_retried(sandbox, make_hook, waits):
    hook = make_hook()
    sandbox.fault("x", "server_error", operation="verify", count=2)
    assert hook.verify_credentials().handle == "koho_city"
    assert len(waits) == 2


def test_slow_read_times_out_and_is_retried(sandbox, make_hook, waits):
    hook = make_hook(timeout=0.3)
    sandbox.fault("x", "slow", operation="verify", delay=1.0)
    assert hook.verify_credentials().handle == "koho_city"
    assert len(waits) == 1


def test_server_error_on_publish_reconciles_then_posts_once(sandbox, make_hook):
    hook = make_hook()
    sandbox.fault("x", "server_error", operation="publish")
    published = hook.publish_once(OutgoingPost(NOTICE), idempotency_key="d-1")
    assert published.reconciled is False
    assert [p["post_id"] for p in sandbox.posts("x")] == [published.remote_id]


def test_lost_response_on_publish_is_found_by_text(sandbox, make_hook):
    hook = make_hook()
    sandbox.fault("x", "lost_response", operation="publish")
    published = hook.publish_once(OutgoingPost(NOTICE, link="https://city.example.jp/a?b=1"), idempotency_key="d-1")
    posts = sandbox.posts("x")
    assert len(posts) == 1 and published.remote_id == posts[0]["post_id"]
    assert published.reconciled is True
    assert "t.co" in posts[0]["text"]  # matched although X rewrote both links


def test_maybe_sent_before_finds_the_post_instead_of_posting_again(sandbox, make_hook):
    post = OutgoingPost("避難所の開設状況をお知らせします https://city.example.jp/hinan")
    sandbox.fault("x", "lost_response", operation="publish")
    with pytest.raises(UnknownOutcome):
        make_hook().publish(post, idempotency_key="d-7")
    retried = make_hook().publish_once(post, idempotency_key="d-7", maybe_sent_before=True)
    assert retried.reconciled is True
    assert [p["post_id"] for p in sandbox.posts("x")] == [retried.remote_id]


def test_duplicate_is_permanently_rejected(sandbox, make_hook):
    hook = make_hook()
    sandbox.fault("x", "duplicate", operation="publish")
    with pytest.raises(PermanentlyRejected) as injected:
        hook.publish_once(OutgoingPost("同じ本文"), idempotency_key="d-1")
    assert injected.value.kind == "duplicate" and injected.value.status == 403
    hook.publish(OutgoingPost("同じ本文"), idempotency_key="d-2")
    with pytest.raises(PermanentlyRejected) as real:
        hook.publish(OutgoingPost("同じ本文"), idempotency_key="d-3")
    assert real.value.kind == "duplicate"
    assert len(sandbox.posts("x")) == 1


def test_text_over_280_weighted_characters_is_too_long(sandbox, make_hook):
    hook = make_hook()
    with pytest.raises(PermanentlyRejected) as exc:
        hook.publish(OutgoingPost("あ" * 141), idempotency_key="d-1")  # CJK weighs 2: 282
    assert exc.value.kind == "too_long"
    assert hook.publish(OutgoingPost("あ" * 140), idempotency_key="d-2").remote_id


def _read_back_media(hook: XHook, tweet_id: str) -> tuple[list[str], list[dict]]:
    """(attachments.media_keys, includes.media) as X returns them for the expansion."""
    body = hook.call(
        "GET",
        f"/2/tweets/{tweet_id}",
        params={"expansions": "attachments.media_keys", "media.fields": "width,height,url"},
    ).json()
    return body["data"].get("attachments", {}).get("media_keys", []), body.get("includes", {}).get("media", [])


@pytest.mark.parametrize("count", [1, 4])
def test_images_are_uploaded_and_attached(sandbox, make_hook, tmp_path, count):
    hook = make_hook()
    images = tuple(write_png(tmp_path / f"map{n}.png", width=40 + n, height=30) for n in range(count))
    published = hook.publish(OutgoingPost("避難所マップ", image_urls=images), idempotency_key="d-1")

    keys, media = _read_back_media(hook, published.remote_id)
    assert len(keys) == count and [m["media_key"] for m in media] == keys
    assert [(m["type"], m["width"], m["height"]) for m in media] == [("photo", 40 + n, 30) for n in range(count)]
    [stored] = sandbox.posts("x")
    assert [f"3_{m}" for m in stored["media"]] == keys
    assert hook.get_post(published.remote_id).text.startswith("避難所マップ https://t.co/")  # X's photo link


def test_too_many_or_too_large_images_are_refused_before_any_request(sandbox, make_hook, tmp_path):
    hook = make_hook()
    before = requests_seen(sandbox, "x")
    five = tuple(write_png(tmp_path / f"p{n}.png") for n in range(5))
    with pytest.raises(PermanentlyRejected, match="at most 4 images") as many:
        hook.publish_once(OutgoingPost("写真五枚", image_urls=five), idempotency_key="d-1")
    big = write_png(tmp_path / "big.png", size=5 * 1024 * 1024 + 1)
    small = write_png(tmp_path / "small.png")
    with pytest.raises(PermanentlyRejected, match="5,242,880 bytes") as large:
        hook.publish_once(OutgoingPost("大きな写真", image_urls=(small, big)), idempotency_key="d-2")
    assert many.value.kind == large.value.kind == "bad_media"
    assert requests_seen(sandbox, "x") == before and sandbox.posts("x") == []


def test_unknown_media_ids_are_refused_as_x_does(sandbox, make_hook):
    hook = make_hook()
    with pytest.raises(PermanentlyRejected) as refused:
        hook.call("POST", "/2/tweets", json={"text": "写真", "media": {"media_ids": ["1234567890"]}})
    assert refused.value.kind == "bad_media" and "media IDs are invalid" in str(refused.value)
    assert sandbox.posts("x") == []


def test_lost_answer_to_a_post_with_images_is_reconciled_to_one_post(sandbox, make_hook, tmp_path):
    """The uploads succeed, the post is applied but its answer lost: reconciliation finds it by its
    text (X's photo link ignored like every URL), and the media is uploaded only once."""
    hook = make_hook()
    images = (write_png(tmp_path / "a.png"), write_png(tmp_path / "b.png"))
    sandbox.fault("x", "lost_response", operation="publish")
    published = hook.publish_once(OutgoingPost(NOTICE, image_urls=images), idempotency_key="d-1")
    assert published.reconciled is True
    [stored] = sandbox.posts("x")
    assert stored["post_id"] == published.remote_id and len(stored["media"]) == 2
    assert len(sandbox.state.scratch["x"]["media"]) == 2  # no second upload for the retry


def test_lost_answer_to_an_upload_is_retried_without_a_second_post(sandbox, make_hook, tmp_path):
    hook = make_hook()
    sandbox.fault("x", "lost_response", operation="media")
    published = hook.publish_once(
        OutgoingPost("写真つき", image_urls=(write_png(tmp_path / "a.png"),)), idempotency_key="d-1"
    )
    [stored] = sandbox.posts("x")
    assert stored["post_id"] == published.remote_id and len(stored["media"]) == 1
    assert len(sandbox.state.scratch["x"]["media"]) == 2  # the orphan of the lost answer is no post


def test_images_given_as_file_urls_are_read(sandbox, make_hook, tmp_path):
    """Images reach the hook as paths or URLs (file://, http(s)://); all are read the same way."""
    write_png(tmp_path / "gomi.png")
    hook = make_hook()
    published = hook.publish(
        OutgoingPost("ごみ", image_urls=((tmp_path / "gomi.png").as_uri(),)), idempotency_key="d-1"
    )
    assert len(_read_back_media(hook, published.remote_id)[0]) == 1


def test_expired_and_revoked_tokens_are_auth_expired(sandbox, make_hook):
    hook = make_hook()
    sandbox.fault("x", "expired_token", operation="publish")
    with pytest.raises(AuthExpired):
        hook.publish_once(OutgoingPost("期限切れ"), idempotency_key="d-1")
    sandbox.admin("POST", "/accounts/x/koho_city/revoke")
    with pytest.raises(AuthExpired):
        hook.verify_credentials()
    assert sandbox.posts("x") == []


def test_oauth1_user_context_is_signed(sandbox, make_hook, caplog):
    caplog.set_level(logging.DEBUG)
    account = sandbox.add_account(
        "x",
        "koho_oauth1",
        extra={"oauth1_consumer_secret": "sandbox-consumer-secret", "oauth1_token_secret": "sandbox-token-secret"},
    )
    good = make_hook(
        account,
        consumer_key="ck",
        consumer_secret="sandbox-consumer-secret",
        access_token_secret="sandbox-token-secret",
    )
    published = good.publish(OutgoingPost("署名つき投稿 ?&="), idempotency_key="d-1")
    assert good.list_recent_posts(datetime.now(UTC) - timedelta(minutes=1))[0].remote_id == published.remote_id
    bad = make_hook(
        account,
        conn_id="x_bad_signature",
        consumer_key="ck",
        consumer_secret="wrong",
        access_token_secret="sandbox-token-secret",
    )
    with pytest.raises(AuthExpired) as rejected:
        bad.verify_credentials()
    assert account["token"] not in str(rejected.value) + caplog.text


def test_token_never_appears_in_errors_or_logs(sandbox, official, make_hook, caplog):
    caplog.set_level(logging.DEBUG)
    hook = make_hook(attempts=2)
    messages: list[str] = []
    for kind in ("expired_token", "duplicate", "server_error", "rate_limit"):
        sandbox.fault("x", kind, operation="publish", delay=1)
        hook.retry = RetryPolicy(max_attempts=1, base_delay=0.01, max_wait=0.5)
        try:
            hook.publish(OutgoingPost(f"試験 {kind}"), idempotency_key=kind)
        except (PlatformError, TransientError) as exc:
            messages.append(str(exc))
    assert len(messages) == 4
    for text in [*messages, caplog.text]:
        assert official["token"] not in text
