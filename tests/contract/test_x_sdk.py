"""tweepy (X's most used Python SDK) drives the sandbox unchanged: the sandbox speaks X API v2.

tweepy hard-codes ``https://api.twitter.com``; a requests adapter mounted on ``client.session``
sends those requests to the sandbox instead. Nothing else about tweepy is touched, so OAuth 1.0a
signatures are made for the real host, as they would be in production, and the sandbox checks
them.
"""

from __future__ import annotations

import time

import pytest
import requests
import tweepy

REAL_HOST = "https://api.twitter.com"


class _ToSandbox(requests.adapters.HTTPAdapter):
    """Send requests for the real API host to the sandbox's ``/x`` router."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def send(self, request: requests.PreparedRequest, **kwargs):
        request.url = self.target + request.url[len(REAL_HOST):]
        return super().send(request, **kwargs)


def _client(sandbox, **credentials) -> tweepy.Client:
    client = tweepy.Client(**credentials)
    client.session.mount(REAL_HOST, _ToSandbox(f"{sandbox.url}/x"))
    return client


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
    mentions = client.get_users_mentions(account["account_id"], expansions=["author_id"],
                                         tweet_fields=["referenced_tweets"], user_auth=False)
    assert mentions.data[0].text == "@koho_city 公園の遊具が壊れています"
    assert mentions.data[0].referenced_tweets[0].id == int(post)
    assert mentions.includes["users"][0].username == "shimin_1"


def test_oauth1_user_context_signatures_are_checked(sandbox):
    account = sandbox.add_account("x", "koho_signed", extra={
        "oauth1_consumer_secret": "consumer-secret-for-test", "oauth1_token_secret": "token-secret-for-test"})
    signed = _client(sandbox, consumer_key="ck", consumer_secret="consumer-secret-for-test",
                     access_token=account["token"], access_token_secret="token-secret-for-test")
    created = signed.create_tweet(text="OAuth 1.0a で投稿")  # tweepy's default: user_auth=True
    assert signed.get_me().data.username == "koho_signed"
    assert [p["post_id"] for p in sandbox.posts("x")] == [created.data["id"]]

    forged = _client(sandbox, consumer_key="ck", consumer_secret="wrong-secret",
                     access_token=account["token"], access_token_secret="token-secret-for-test")
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
