"""tweepy (X's most used Python SDK) drives the sandbox unchanged: the sandbox speaks X API v2.

tweepy hard-codes ``https://api.twitter.com``; a requests adapter mounted on ``client.session``
sends those requests to the sandbox instead. Nothing else about tweepy is touched, so OAuth 1.0a
signatures are made for the real host, as they would be in production, and the sandbox checks
them.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import tweepy

from koho.platforms.x import _x_text

REAL_HOST = "https://api.twitter.com"
UPLOAD_HOST = "https://upload.twitter.com"  # where tweepy.API sends media uploads (v1.1)
PNG = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + (64).to_bytes(4, "big") + (48).to_bytes(4, "big")


class _ToSandbox(requests.adapters.HTTPAdapter):
    """Send requests for a real API host to the sandbox's ``/x`` router."""

    def __init__(self, target: str, host: str = REAL_HOST) -> None:
        super().__init__()
        self.target, self.host = target, host

    def send(self, request: requests.PreparedRequest, **kwargs):
        request.url = self.target + request.url[len(self.host) :]
        return super().send(request, **kwargs)


def _client(sandbox, **credentials) -> tweepy.Client:
    client = tweepy.Client(**credentials)
    client.session.mount(REAL_HOST, _ToSandbox(f"{sandbox.url}/x"))
    return client


def _signed(sandbox, handle: str) -> tuple[tweepy.Client, tweepy.API]:
    """An account whose OAuth 1.0a signatures the sandbox checks, with tweepy's v2 client and v1.1 API."""
    account = sandbox.add_account(
        "x",
        handle,
        extra={"oauth1_consumer_secret": "consumer-secret-for-test", "oauth1_token_secret": "token-secret-for-test"},
    )
    credentials = {
        "consumer_key": "ck",
        "consumer_secret": "consumer-secret-for-test",
        "access_token": account["token"],
        "access_token_secret": "token-secret-for-test",
    }
    api = tweepy.API(tweepy.OAuth1UserHandler(**credentials))
    api.session.mount(UPLOAD_HOST, _ToSandbox(f"{sandbox.url}/x", UPLOAD_HOST))
    return _client(sandbox, **credentials), api


@pytest.fixture
def account(sandbox):
    return sandbox.add_account("x", "koho_city", display_name="幸保市", followers=42)


def test_bearer_token_publish_read_list_delete(sandbox, account):
    client = _client(sandbox, bearer_token=account["token"])
    me = client.get_me(user_auth=False, user_fields=["public_metrics"]).data
    assert (me.id, me.username, me.public_metrics["followers_count"]) == (int(account["account_id"]), "koho_city", 42)

    created = client.create_tweet(text="防災訓練のお知らせ https://city.example.jp/bousai", user_auth=False)
    tweet_id = created.data["id"]
    assert created.data["text"].startswith("防災訓練のお知らせ https://t.co/")

    tweet = client.get_tweet(tweet_id, tweet_fields=["created_at", "public_metrics"], user_auth=False).data
    assert tweet.created_at.tzinfo is not None and tweet.public_metrics["reply_count"] == 0

    timeline = client.get_users_tweets(me.id, max_results=5, start_time="2020-01-01T00:00:00Z", user_auth=False)
    assert [t.id for t in timeline.data] == [int(tweet_id)] and timeline.meta["result_count"] == 1

    assert client.get_user(username="koho_city", user_auth=False).data.id == me.id
    assert client.get_user(username="nobody_here", user_auth=False).errors[0]["title"] == "Not Found Error"

    assert client.delete_tweet(tweet_id, user_auth=False).data == {"deleted": True}
    missing = client.get_tweet(tweet_id, user_auth=False)
    assert missing.data is None and missing.errors[0]["title"] == "Not Found Error"


def test_paginator_walks_next_tokens(sandbox, account):
    client = _client(sandbox, bearer_token=account["token"])
    for n in range(7):
        client.create_tweet(text=f"お知らせ {n}", user_auth=False)
    pages = list(tweepy.Paginator(client.get_users_tweets, account["account_id"], max_results=5, user_auth=False))
    assert [len(p.data) for p in pages] == [5, 2]
    assert [t.text for p in pages for t in p.data] == [f"お知らせ {n}" for n in reversed(range(7))]


def test_mentions_with_author_expansion(sandbox, account):
    client = _client(sandbox, bearer_token=account["token"])
    post = client.create_tweet(text="ご意見をお寄せください", user_auth=False).data["id"]
    sandbox.comment("x", "koho_city", "shimin_1", "公園の遊具が壊れています", post_id=post)
    mentions = client.get_users_mentions(
        account["account_id"], expansions=["author_id"], tweet_fields=["referenced_tweets"], user_auth=False
    )
    assert mentions.data[0].text == "@koho_city 公園の遊具が壊れています"
    assert mentions.data[0].referenced_tweets[0].id == int(post)
    assert mentions.includes["users"][0].username == "shimin_1"


def test_oauth1_user_context_signatures_are_checked(sandbox):
    account = sandbox.add_account(
        "x",
        "koho_signed",
        extra={"oauth1_consumer_secret": "consumer-secret-for-test", "oauth1_token_secret": "token-secret-for-test"},
    )
    signed = _client(
        sandbox,
        consumer_key="ck",
        consumer_secret="consumer-secret-for-test",
        access_token=account["token"],
        access_token_secret="token-secret-for-test",
    )
    created = signed.create_tweet(text="OAuth 1.0a で投稿")  # tweepy's default: user_auth=True
    assert signed.get_me().data.username == "koho_signed"
    assert [p["post_id"] for p in sandbox.posts("x")] == [created.data["id"]]

    forged = _client(
        sandbox,
        consumer_key="ck",
        consumer_secret="wrong-secret",
        access_token=account["token"],
        access_token_secret="token-secret-for-test",
    )
    with pytest.raises(tweepy.Unauthorized):
        forged.create_tweet(text="署名が違う")
    assert len(sandbox.posts("x")) == 1


def test_errors_reach_tweepy_as_x_sends_them(sandbox, account):
    client = _client(sandbox, bearer_token=account["token"])
    client.create_tweet(text="同じ本文", user_auth=False)
    with pytest.raises(tweepy.Forbidden) as duplicate:
        client.create_tweet(text="同じ本文", user_auth=False)
    assert "duplicate content" in duplicate.value.api_messages[0]

    with pytest.raises(tweepy.BadRequest) as too_long:
        client.create_tweet(text="あ" * 141, user_auth=False)
    assert "too long" in str(too_long.value)

    sandbox.fault("x", "rate_limit", operation="publish", delay=30)
    with pytest.raises(tweepy.TooManyRequests) as limited:
        client.create_tweet(text="混雑", user_auth=False)
    assert time.time() + 25 < limited.value.reset_time <= time.time() + 32

    with pytest.raises(tweepy.Unauthorized):
        _client(sandbox, bearer_token="not-a-token").get_me(user_auth=False)


def test_media_upload_then_create_tweet_with_media_ids(sandbox):
    """tweepy uploads with ``API.media_upload`` (v1.1 simple upload; tweepy has no v2 upload) and
    attaches with ``Client.create_tweet(media_ids=...)``; the read-back expands the media."""
    client, api = _signed(sandbox, "koho_photos")
    uploaded = [
        api.media_upload("map.png", file=io.BytesIO(PNG + bytes([n]) * 32), media_category="tweet_image")
        for n in range(4)
    ]
    assert all(m.media_key == f"3_{m.media_id_string}" and m.image["w"] == 64 for m in uploaded)

    created = client.create_tweet(text="避難所マップ", media_ids=[m.media_id for m in uploaded])
    read = client.get_tweet(
        created.data["id"], expansions=["attachments.media_keys"], media_fields=["width"], user_auth=True
    )
    assert read.data.attachments["media_keys"] == [m.media_key for m in uploaded]
    assert [(m.type, m.width) for m in read.includes["media"]] == [("photo", 64)] * 4

    with pytest.raises(tweepy.BadRequest) as unknown:
        client.create_tweet(text="別の写真", media_ids=["1234"])
    assert "Your media IDs are invalid." in unknown.value.api_messages
    with pytest.raises(tweepy.BadRequest):
        client.create_tweet(text="五枚", media_ids=[m.media_id for m in uploaded] + [uploaded[0].media_id])
    with pytest.raises(tweepy.BadRequest):
        api.media_upload("big.png", file=io.BytesIO(PNG + b"\0" * (5 * 1024 * 1024)))
    assert [p["post_id"] for p in sandbox.posts("x")] == [created.data["id"]]


def test_lost_answer_is_reconciled_by_reading_own_tweets_instead_of_posting_again(sandbox, account):
    """X has no idempotency key, so a create whose answer was lost must not simply be sent again.
    What Koho does instead, done with tweepy: read the account's own tweets since the attempt
    (``Client.get_users_tweets``) and match the text; the post is there, so no second create."""
    client = _client(sandbox, bearer_token=account["token"])
    text = "断水のお知らせ https://city.example.jp/suido"
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    sandbox.fault("x", "lost_response", operation="publish")
    with pytest.raises(tweepy.TwitterServerError):
        client.create_tweet(text=text, user_auth=False)  # the gateway's 504: did it post?

    timeline = client.get_users_tweets(account["account_id"], start_time=started, max_results=5, user_auth=False)
    found = [t for t in timeline.data if _x_text(t.text) == _x_text(text)]
    assert len(found) == 1  # X rewrote the link to t.co; the match ignores URLs
    assert [p["post_id"] for p in sandbox.posts("x")] == [str(found[0].id)]
