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

    status = api.status_post(
        "防災無線の試験放送を行います\n#幸保市 https://city.example.jp/musen", visibility="public", language="ja"
    )
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


PNG = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + (64).to_bytes(4, "big") + (48).to_bytes(4, "big")


def test_media_post_then_status_with_media_ids(sandbox, account):
    api = _api(sandbox, account["token"])
    media = [api.media_post(PNG + bytes([n]) * 32, mime_type="image/png", description=f"地図 {n}") for n in range(4)]
    assert all(m.type == "image" and m.url and m.meta.original.width == 64 for m in media)

    status = api.status_post("避難所マップ", media_ids=media, idempotency_key="delivery-44")
    assert [(a.id, a.description) for a in status.media_attachments] == [
        (m.id, f"地図 {n}") for n, m in enumerate(media)
    ]
    assert [a.id for a in api.status(status.id).media_attachments] == [m.id for m in media]

    with pytest.raises(MastodonAPIError) as reused:  # attached media cannot go on a second status
        api.status_post("もう一度", media_ids=[media[0]])
    assert reused.value.args[1] == 422 and "already attached" in reused.value.args[3]
    with pytest.raises(MastodonAPIError) as too_many:
        api.status_post("五枚", media_ids=[api.media_post(PNG, mime_type="image/png") for _ in range(5)])
    assert "more than 4" in too_many.value.args[3]
    with pytest.raises(MastodonAPIError) as not_image:
        api.media_post(b"not an image", mime_type="image/png")
    assert not_image.value.args[1] == 422
    assert [p["post_id"] for p in sandbox.posts("mastodon")] == [str(status.id)]


def test_media_still_processing_reads_as_mastodon_py_expects(sandbox):
    account = sandbox.add_account("mastodon", "koho_slow", extra={"media_processing_reads": 1})
    api = _api(sandbox, account["token"])
    uploaded = api.media_post(PNG, mime_type="image/png")
    assert uploaded.url is None  # the 202 of a file still processing
    with pytest.raises(MastodonAPIError, match="not finished processing"):
        api.status_post("まだ処理中", media_ids=[uploaded])
    assert api.media(uploaded).url is None  # 206 Partial Content
    assert api.media(uploaded).url  # 200: processed
    assert api.status_post("処理済み", media_ids=[uploaded]).media_attachments[0].id == uploaded.id
