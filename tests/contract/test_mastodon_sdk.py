"""Mastodon.py drives the sandbox unchanged: statuses, idempotency keys, paging, errors.

The only setting that differs from production is ``api_base_url`` (and no version check, since
a version check would ask the instance before the first call).
"""

from __future__ import annotations

import time

import pytest
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonUnauthorizedError,
)


@pytest.fixture
def account(sandbox):
    return sandbox.add_account("mastodon", "koho_city", display_name="幸保市", followers=77)


def _api(sandbox, token: str, **kwargs) -> Mastodon:
    return Mastodon(api_base_url=f"{sandbox.url}/mastodon", access_token=token, version_check_mode="none", **kwargs)


def test_post_read_delete(sandbox, account):
    api = _api(sandbox, account["token"])
    me = api.account_verify_credentials()
    assert (str(me.id), me.acct, me.followers_count) == (account["account_id"], "koho_city", 77)

    status = api.status_post("防災無線の試験放送を行います\n#幸保市 https://city.example.jp/musen",
                             visibility="public", language="ja")
    assert "<br />" in status.content and 'class="mention hashtag"' in status.content
    assert status.created_at.tzinfo is not None and status.account.id == me.id

    read = api.status(status.id)
    assert (read.id, read.replies_count, read.url) == (status.id, 0, status.url)

    deleted = api.status_delete(status.id)
    assert deleted.text.startswith("防災無線の試験放送を行います")  # Mastodon returns the source for redrafting
    with pytest.raises(MastodonNotFoundError):
        api.status(status.id)


def test_idempotent_retry_gives_one_status(sandbox, account):
    api = _api(sandbox, account["token"])
    first = api.status_post("臨時休館のお知らせ", idempotency_key="delivery-42")
    retry = api.status_post("臨時休館のお知らせ", idempotency_key="delivery-42")
    assert retry.id == first.id
    assert [p["post_id"] for p in sandbox.posts("mastodon")] == [str(first.id)]


def test_lost_answer_then_idempotent_retry(sandbox, account):
    api = _api(sandbox, account["token"])
    sandbox.fault("mastodon", "lost_response", operation="publish")
    with pytest.raises(MastodonAPIError):
        api.status_post("停電情報", idempotency_key="delivery-43")  # the gateway's 504: did it post?
    retry = api.status_post("停電情報", idempotency_key="delivery-43")
    assert [p["post_id"] for p in sandbox.posts("mastodon")] == [str(retry.id)]


def test_link_paging_and_notifications(sandbox, account):
    api = _api(sandbox, account["token"])
    for n in range(5):
        api.status_post(f"お知らせ {n}")
    first = api.account_statuses(account["account_id"], limit=2)
    pages = api.fetch_remaining(first)
    assert [s.content for s in pages] == [f"<p>お知らせ {n}</p>" for n in reversed(range(5))]

    sandbox.comment("mastodon", "koho_city", "shimin_1", "ありがとうございます", post_id=str(pages[0].id))
    mentions = api.notifications(types=["mention"])
    assert mentions[0].type == "mention" and mentions[0].status.in_reply_to_id == pages[0].id
    assert api.status_context(pages[0].id).descendants[0].account.acct == "shimin_1"


def test_search_and_instance(sandbox, account):
    sandbox.add_account("mastodon", "koho_city_news", token=None, display_name="幸保市ニュース")
    api = _api(sandbox, account["token"])
    found = api.search_v2("koho_city", result_type="accounts")
    assert {a.acct for a in found.accounts} == {"koho_city", "koho_city_news"}
    assert api.instance_v2().configuration.statuses.max_characters == 500


def test_errors_and_rate_limit_headers(sandbox, account):
    api = _api(sandbox, account["token"], ratelimit_method="throw")
    with pytest.raises(MastodonAPIError) as too_long:
        api.status_post("あ" * 501)
    assert too_long.value.args[1] == 422 and "character limit" in too_long.value.args[3]

    api.account_verify_credentials()
    assert api.ratelimit_limit == 300 and api.ratelimit_reset > time.time()  # parsed from ISO 8601

    sandbox.fault("mastodon", "rate_limit", operation="verify", delay=10)
    with pytest.raises(MastodonRatelimitError):
        api.account_verify_credentials()

    with pytest.raises(MastodonUnauthorizedError) as unauthorized:
        _api(sandbox, "not-a-token").account_verify_credentials()
    assert unauthorized.value.args[3] == "The access token is invalid"
