"""The YouTube hook against the real sandbox: reads, quota, faults, token refresh, secrecy.

YouTube is read-only in Koho, so the publish/delete half of the usual cycle is "NotSupported,
and nothing was sent"; the rest (uploads, metrics, comments, search) runs end to end.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from datetime import UTC, datetime, timedelta

import pytest
import requests

from koho.platforms.base import RetryPolicy
from koho.platforms.errors import AuthExpired, NotSupported, PermanentlyRejected, RateLimited
from koho.platforms.types import OutgoingPost
from koho.platforms.youtube import YouTubeHook, next_pacific_midnight
from sandbox.platforms.youtube import add_video, channel_id_for, uploads_playlist_id
from tests.unit.platforms.hook_helpers import requests_seen

NOW = datetime.now(UTC).replace(microsecond=0)
POLICY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, max_wait=60)


@pytest.fixture
def city(sandbox):
    return sandbox.add_account(
        "youtube",
        "kohocity",
        account_id=channel_id_for("kohocity"),
        display_name="湖北市公式チャンネル",
        followers=12345,
    )


@pytest.fixture
def make_hook(connect, waits):
    def _make(account: dict, conn_id: str | None = None, **extra) -> YouTubeHook:
        return YouTubeHook(connect("youtube", account, conn_id, **extra), retry=POLICY, sleep=waits.append)

    return _make


@pytest.fixture
def hook(make_hook, city) -> YouTubeHook:
    return make_hook(city)


def _logged(caplog, capsys) -> str:
    """Everything logged: stdlib records (caplog) and Airflow's structlog output (stdout/stderr)."""
    out = capsys.readouterr()
    return caplog.text + out.out + out.err


def _comment(sandbox, account_id: str, author: str, text: str, post_id: str | None, at: datetime) -> str:
    return sandbox.admin(
        "POST",
        "/comments",
        json={
            "platform": "youtube",
            "account": account_id,
            "author": author,
            "text": text,
            "post_id": post_id,
            "created_at": at.isoformat(),
        },
    )["comment_id"]


# ----------------------------------------------------------------------------- read side only


def test_write_side_is_not_supported_and_sends_nothing(sandbox, hook):
    assert not hook.capabilities.publish and not hook.capabilities.delete and not hook.capabilities.replies
    before = requests_seen(sandbox, "youtube")
    post = OutgoingPost(text="ごみ収集日のお知らせ")
    with pytest.raises(NotSupported, match="YouTube"):
        hook.publish(post, idempotency_key="k1")
    with pytest.raises(NotSupported):
        hook.publish_once(post, idempotency_key="k1", maybe_sent_before=True)
    with pytest.raises(NotSupported):
        hook.delete("abcdefghijk")
    assert requests_seen(sandbox, "youtube") == before
    assert sandbox.posts("youtube") == []


# ----------------------------------------------------------------------------- channel


def test_verify_credentials_reads_own_channel(make_hook, city):
    hook = make_hook(city, token_expires_at="2030-01-01T00:00:00Z")
    info = hook.verify_credentials()
    assert info.remote_id == city["account_id"]
    assert info.handle == "kohocity"
    assert info.display_name == "湖北市公式チャンネル"
    assert info.followers == 12300  # public subscriber counts have three significant figures
    assert info.url == "https://www.youtube.com/@kohocity"
    assert info.token_expires_at == datetime(2030, 1, 1, tzinfo=UTC)


def test_verify_credentials_rejects_a_token_of_another_channel(sandbox, make_hook, city):
    other = sandbox.add_account("youtube", "otherchannel", account_id=channel_id_for("other"))
    hook = make_hook({**other, "account_id": city["account_id"]}, conn_id="youtube_mixed")
    with pytest.raises(PermanentlyRejected) as err:
        hook.verify_credentials()
    assert err.value.kind == "forbidden"
    assert city["account_id"] in str(err.value)


def test_verify_without_account_id_asks_mine(make_hook, city):
    hook = make_hook({**city, "account_id": ""}, conn_id="youtube_noid")
    assert hook.verify_credentials().remote_id == city["account_id"]
    assert hook.channel_id == city["account_id"]


def test_api_key_reads_public_data_but_needs_the_channel_id(sandbox, make_hook):
    key = pysecrets.token_urlsafe(20)
    acc = sandbox.add_account(
        "youtube", "keyed", account_id=channel_id_for("keyed"), token="", followers=50, extra={"api_key": key}
    )
    add_video(sandbox.state, acc["account_id"], "防災訓練のご案内", published_at=NOW)
    hook = make_hook({**acc, "token": None}, conn_id="youtube_key", api_key=key)
    assert hook.verify_credentials().followers == 50
    assert [p.text for p in hook.list_recent_posts(NOW - timedelta(days=1))] == ["防災訓練のご案内"]
    nameless = make_hook({**acc, "token": None, "account_id": ""}, conn_id="youtube_key_noid", api_key=key)
    with pytest.raises(PermanentlyRejected, match="account_id"):
        nameless.account_metrics()


def test_account_metrics_parse_string_statistics(sandbox, hook, city):
    add_video(sandbox.state, city["account_id"], "子育て支援センターの紹介", views=300)
    add_video(sandbox.state, city["account_id"], "観光マップ", views=45)
    metrics = hook.account_metrics()
    assert (metrics.followers, metrics.posts, metrics.views) == (12300, 2, 345)


def test_hidden_subscriber_count_is_none_not_zero(sandbox, make_hook):
    acc = sandbox.add_account(
        "youtube", "hidden", account_id=channel_id_for("hidden"), followers=999, extra={"hidden_subscriber_count": True}
    )
    hook = make_hook(acc)
    assert hook.account_metrics().followers is None
    assert hook.verify_credentials().followers is None


# ----------------------------------------------------------------------------- videos


def test_recent_videos_follow_pages_and_stop_at_since(sandbox, hook, city):
    for hours in range(60):
        add_video(sandbox.state, city["account_id"], f"動画{hours}", published_at=NOW - timedelta(hours=hours))
    posts = hook.list_recent_posts(NOW - timedelta(hours=54, minutes=30))
    assert [p.text for p in posts] == [f"動画{h}" for h in range(55)]
    assert all(p.url.startswith("https://www.youtube.com/watch?v=") for p in posts)
    assert hook.quota_units["quota"] == 1 + 2  # channel (uploads playlist id) + two playlist pages

    limited = hook.list_recent_posts(NOW - timedelta(days=30), limit=10)
    assert [p.text for p in limited] == [f"動画{h}" for h in range(10)]
    assert hook.quota_units["quota"] == 3 + 1  # channel cached; one page was enough


def test_get_post_and_metrics(sandbox, hook, city):
    video = add_video(
        sandbox.state,
        city["account_id"],
        "ごみの出し方 2026年版",
        description="分別の方法を解説します。",
        published_at=NOW - timedelta(hours=3),
        views=120,
        likes=8,
        comments=2,
    )
    sandbox.comment("youtube", city["account_id"], "resident1", "わかりやすかったです", post_id=video.post_id)

    post = hook.get_post(video.post_id)
    assert post.text == "ごみの出し方 2026年版\n分別の方法を解説します。"
    assert post.created_at == NOW - timedelta(hours=3)
    assert post.url == f"https://www.youtube.com/watch?v={video.post_id}"

    metrics = hook.post_metrics(video.post_id)
    assert (metrics.impressions, metrics.likes, metrics.replies) == (120, 8, 3)
    assert metrics.extra == {"views": 120}

    with pytest.raises(PermanentlyRejected) as err:
        hook.get_post("doesnotexis")
    assert err.value.kind == "not_found"


def test_metrics_of_many_videos_cost_one_unit_per_fifty(sandbox, hook, city):
    ids = [add_video(sandbox.state, city["account_id"], f"v{i}", views=i).post_id for i in range(55)]
    metrics = hook.post_metrics_many([*ids, "missingvid0"])
    assert len(metrics) == 55 and metrics[ids[7]].impressions == 7
    assert hook.quota_units["quota"] == 2


# ----------------------------------------------------------------------------- comments


def test_comments_since_cursor_returns_only_newer_comments(sandbox, hook, city):
    video = add_video(sandbox.state, city["account_id"], "防災マップの使い方")
    t0 = NOW - timedelta(minutes=30)
    _comment(sandbox, city["account_id"], "yamada", "避難所はどこですか？ <b>急ぎ</b>", video.post_id, t0)
    _comment(sandbox, city["account_id"], "sato", "字幕をつけてください", video.post_id, t0 + timedelta(minutes=1))
    _comment(sandbox, city["account_id"], "suzuki", "チャンネル登録しました", None, t0 + timedelta(minutes=2))

    first = hook.comments_since(None)
    assert [c.author for c in first.comments] == ["@yamada", "@sato", "@suzuki"]
    assert first.comments[0].text == "避難所はどこですか？ <b>急ぎ</b>"  # plain text, not YouTube's HTML
    assert first.comments[0].post_id == video.post_id
    assert first.comments[0].url.endswith(f"v={video.post_id}&lc={first.comments[0].remote_id}")
    assert first.comments[2].post_id is None and first.comments[2].url is None

    again = hook.comments_since(first.cursor)
    assert again.comments == [] and again.cursor == first.cursor

    # Same second as the newest one seen: still new, because its id was not seen.
    _comment(sandbox, city["account_id"], "tanaka", "同じ秒の投稿", video.post_id, t0 + timedelta(minutes=2))
    later = hook.comments_since(again.cursor)
    assert [c.text for c in later.comments] == ["同じ秒の投稿"]
    assert hook.comments_since(later.cursor).comments == []


def test_comments_of_given_videos_skip_missing_ones(sandbox, hook, city):
    a = add_video(sandbox.state, city["account_id"], "観光PR動画")
    b = add_video(sandbox.state, city["account_id"], "市長会見")
    sandbox.comment("youtube", city["account_id"], "visitor", "行ってみたい！", post_id=a.post_id)
    sandbox.comment("youtube", city["account_id"], "citizen", "会見の字幕は？", post_id=b.post_id)
    page = hook.comments_since(None, post_ids=[a.post_id, "gone1234567"])
    assert [c.text for c in page.comments] == ["行ってみたい！"]


# ----------------------------------------------------------------------------- search


def test_search_accounts_finds_lookalike_with_subscribers(sandbox, hook, city):
    sandbox.add_account(
        "youtube",
        "kohocity_official",
        token=None,
        account_id=channel_id_for("fake"),
        display_name="湖北市公式チャンネル（本物）",
        followers=40,
    )
    found = {a.handle: a for a in hook.search_accounts("kohocity")}
    assert set(found) == {"kohocity", "kohocity_official"}
    assert found["kohocity_official"].followers == 40
    assert found["kohocity_official"].url == "https://www.youtube.com/@kohocity_official"
    assert hook.quota_units == {"search": 1, "quota": 1}
    assert hook.search_accounts("存在しない名前") == []


# ----------------------------------------------------------------------------- faults and quota


def test_server_error_on_a_read_is_retried(sandbox, hook, city, waits):
    video = add_video(sandbox.state, city["account_id"], "広報動画", views=5)
    sandbox.fault("youtube", "server_error", operation="metrics")
    assert hook.post_metrics(video.post_id).impressions == 5
    assert len(waits) == 1 and 0.005 <= waits[0] <= 0.01
    assert hook.quota_units["quota"] == 2


def test_lost_response_on_a_read_is_retried(sandbox, hook, city, waits):
    video = add_video(sandbox.state, city["account_id"], "広報動画")
    sandbox.fault("youtube", "lost_response", operation="read")
    assert hook.get_post(video.post_id).remote_id == video.post_id
    assert len(waits) == 1


@pytest.mark.parametrize("operation", ["read", "metrics", "comments"])
def test_slow_read_times_out_and_is_retried(sandbox, connect, city, waits, operation):
    """YouTube is read-only here, so a slow answer is only ever a read: a TransientError, retried."""
    video = add_video(sandbox.state, city["account_id"], "広報動画", views=7)
    hook = YouTubeHook(connect("youtube", city), retry=POLICY, sleep=waits.append, timeout=0.3)
    sandbox.fault("youtube", "slow", operation=operation, delay=1.0)
    read = {
        "read": lambda: hook.get_post(video.post_id).remote_id == video.post_id,
        "metrics": lambda: hook.post_metrics(video.post_id).impressions == 7,
        "comments": lambda: hook.comments_since(None, post_ids=[video.post_id]).comments == [],
    }[operation]
    assert read()
    assert len(waits) == 1  # one timeout, one retry


def test_short_rate_limit_backs_off_then_succeeds(sandbox, hook, city, waits):
    sandbox.fault("youtube", "rate_limit", operation="comments")
    assert hook.comments_since(None, post_ids=[]).comments == []
    assert len(waits) == 1 and waits[0] <= POLICY.max_delay


def test_spent_daily_quota_waits_for_pacific_midnight_without_hammering(sandbox, hook, waits):
    sandbox.limit("youtube", "quota", 2, 86_400)
    hook.account_metrics()
    hook.account_metrics()
    with pytest.raises(RateLimited) as err:
        hook.account_metrics()
    assert err.value.code == "quotaExceeded" and err.value.status == 403
    assert abs((err.value.reset_at - next_pacific_midnight()).total_seconds()) < 5
    assert waits == []  # hours away: raised for Airflow to reschedule, not slept on

    seen = requests_seen(sandbox, "youtube")
    with pytest.raises(RateLimited):
        hook.account_metrics()
    assert requests_seen(sandbox, "youtube") == seen  # known spent: nothing more was sent


def test_search_has_its_own_daily_bucket(sandbox, hook):
    sandbox.limit("youtube", "search", 1, 86_400)
    hook.search_accounts("kohocity")
    with pytest.raises(RateLimited) as err:
        hook.search_accounts("kohocity")
    assert err.value.code == "quotaExceeded"
    assert hook.account_metrics().followers == 12300  # list methods still have quota


def test_expired_token_is_auth_expired(sandbox, hook, city):
    sandbox.fault("youtube", "expired_token")
    with pytest.raises(AuthExpired) as err:
        hook.verify_credentials()
    assert err.value.code == "authError"
    assert city["token"] not in str(err.value)


def test_revoked_token_is_auth_expired(sandbox, hook):
    sandbox.admin("POST", "/accounts/youtube/kohocity/revoke")
    with pytest.raises(AuthExpired) as err:
        hook.account_metrics()
    assert err.value.code == "authError"


def test_expired_access_token_is_refreshed(sandbox, make_hook, caplog, capsys):
    refresh, client_secret = pysecrets.token_urlsafe(24), pysecrets.token_urlsafe(16)
    oauth = {
        "refresh_token": refresh,
        "client_id": "koho-client.apps.googleusercontent.com",
        "client_secret": client_secret,
    }
    acc = sandbox.add_account(
        "youtube",
        "refreshing",
        account_id=channel_id_for("refreshing"),
        token_expires_at=(NOW - timedelta(minutes=1)).isoformat(),
        extra=oauth,
    )
    hook = make_hook(acc, token_uri=f"{sandbox.url}/youtube/token", **oauth)
    with caplog.at_level(logging.DEBUG):
        info = hook.verify_credentials()
    assert info.remote_id == acc["account_id"]
    assert hook.token.startswith("ya29.") and hook.token != acc["token"]
    assert timedelta(minutes=59) < info.token_expires_at - datetime.now(UTC) <= timedelta(hours=1)
    logged = _logged(caplog, capsys)
    assert "access token for refreshing renewed" in logged
    for secret in (acc["token"], hook.token, refresh, client_secret):
        assert secret not in logged


def test_refused_refresh_leaves_auth_expired(sandbox, make_hook, caplog, capsys):
    acc = sandbox.add_account(
        "youtube",
        "stale",
        account_id=channel_id_for("stale"),
        token_expires_at=(NOW - timedelta(minutes=1)).isoformat(),
    )
    wrong = pysecrets.token_urlsafe(24)
    hook = make_hook(
        acc, token_uri=f"{sandbox.url}/youtube/token", refresh_token=wrong, client_id="c", client_secret="s3cr3t-value"
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthExpired) as err:
        hook.account_metrics()
    logged = _logged(caplog, capsys)
    assert "invalid_grant" in logged
    for secret in (acc["token"], wrong, "s3cr3t-value"):
        assert secret not in str(err.value) and secret not in logged


def test_bad_credentials_never_leak_into_messages_or_logs(sandbox, make_hook, city, caplog, capsys):
    bad_token = pysecrets.token_urlsafe(24)
    bad_key = pysecrets.token_urlsafe(20)
    by_token = make_hook({**city, "token": bad_token}, conn_id="youtube_badtoken")
    by_key = make_hook({**city, "token": None}, conn_id="youtube_badkey", api_key=bad_key)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthExpired) as token_err:
            by_token.account_metrics()
        with pytest.raises(AuthExpired) as key_err:
            by_key.account_metrics()
    assert token_err.value.code == "authError" and token_err.value.status == 401
    assert "API key not valid" in str(key_err.value) and key_err.value.status == 400
    logged = _logged(caplog, capsys)
    for secret in (bad_token, bad_key):
        assert secret not in str(token_err.value) and secret not in str(key_err.value)
        assert secret not in logged


def test_next_pacific_midnight_follows_daylight_saving():
    winter = next_pacific_midnight(datetime(2026, 11, 20, 7, 59, tzinfo=UTC))  # 23:59 PST on the 19th
    assert winter == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    summer = next_pacific_midnight(datetime(2026, 7, 1, 12, 0, tzinfo=UTC))  # 05:00 PDT
    assert summer == datetime(2026, 7, 2, 7, 0, tzinfo=UTC)


# ----------------------------------------------------------------------------- the sandbox's contract


def test_sandbox_speaks_youtube_shapes(sandbox, city):
    base = f"{sandbox.url}/youtube/youtube/v3"
    auth = {"Authorization": f"Bearer {city['token']}"}
    for hours in range(3):
        add_video(sandbox.state, city["account_id"], f"動画{hours}", published_at=NOW - timedelta(hours=hours))

    chan = requests.get(
        f"{base}/channels", params={"part": "statistics,contentDetails", "mine": "true"}, headers=auth, timeout=5
    ).json()
    stats = chan["items"][0]["statistics"]
    assert stats == {"viewCount": "0", "subscriberCount": "12300", "hiddenSubscriberCount": False, "videoCount": "3"}
    uploads = chan["items"][0]["contentDetails"]["relatedPlaylists"]["uploads"]
    assert uploads == uploads_playlist_id(city["account_id"]) and uploads.startswith("UU")

    unknown = requests.get(f"{base}/channels", params={"part": "id", "id": "UCnope"}, headers=auth, timeout=5)
    assert unknown.status_code == 200 and "items" not in unknown.json()

    first = requests.get(
        f"{base}/playlistItems",
        params={"part": "contentDetails", "playlistId": uploads, "maxResults": 2},
        headers=auth,
        timeout=5,
    ).json()
    assert len(first["items"]) == 2 and first["pageInfo"]["totalResults"] == 3
    rest = requests.get(
        f"{base}/playlistItems",
        params={"part": "contentDetails", "playlistId": uploads, "maxResults": 2, "pageToken": first["nextPageToken"]},
        headers=auth,
        timeout=5,
    ).json()
    assert len(rest["items"]) == 1 and "nextPageToken" not in rest

    bad_page = requests.get(
        f"{base}/playlistItems",
        params={"part": "id", "playlistId": uploads, "pageToken": "garbage"},
        headers=auth,
        timeout=5,
    )
    assert bad_page.status_code == 400 and bad_page.json()["error"]["errors"][0]["reason"] == "invalidPageToken"

    too_many = requests.get(
        f"{base}/commentThreads",
        params={"part": "snippet", "maxResults": 101, "allThreadsRelatedToChannelId": city["account_id"]},
        headers=auth,
        timeout=5,
    )
    assert too_many.status_code == 400

    bad_token = requests.get(
        f"{base}/videos", params={"part": "id", "id": "x"}, headers={"Authorization": "Bearer not-a-token"}, timeout=5
    )
    assert bad_token.status_code == 401
    assert bad_token.json()["error"]["errors"] == [
        {
            "message": "Invalid Credentials",
            "domain": "global",
            "reason": "authError",
            "location": "Authorization",
            "locationType": "header",
        }
    ]

    anonymous = requests.get(f"{base}/videos", params={"part": "id", "id": "x"}, timeout=5)
    assert anonymous.status_code == 403 and anonymous.json()["error"]["errors"][0]["reason"] == "forbidden"


def test_sandbox_quota_error_body(sandbox, city):
    sandbox.limit("youtube", "quota", 1, 86_400)
    url = f"{sandbox.url}/youtube/youtube/v3/channels"
    params = {"part": "id", "id": city["account_id"]}
    auth = {"Authorization": f"Bearer {city['token']}"}
    assert requests.get(url, params=params, headers=auth, timeout=5).status_code == 200
    spent = requests.get(url, params=params, headers=auth, timeout=5)
    assert spent.status_code == 403
    error = spent.json()["error"]
    assert error["code"] == 403
    assert error["errors"][0] == {"message": error["message"], "domain": "youtube.quota", "reason": "quotaExceeded"}
    assert "ratelimit" not in " ".join(spent.headers).lower()  # YouTube announces no reset


def test_sandbox_mine_needs_oauth_not_a_key(sandbox):
    key = pysecrets.token_urlsafe(20)
    sandbox.add_account("youtube", "keyonly", account_id=channel_id_for("keyonly"), extra={"api_key": key})
    response = requests.get(
        f"{sandbox.url}/youtube/youtube/v3/channels", params={"part": "id", "mine": "true", "key": key}, timeout=5
    )
    assert response.status_code == 401
    assert response.json()["error"]["errors"][0]["reason"] == "required"
