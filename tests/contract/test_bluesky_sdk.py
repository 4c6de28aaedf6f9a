"""The official Python SDK (``atproto``) drives the Bluesky sandbox unchanged, apart from the base URL.

If the SDK's models parse what the sandbox answers, the sandbox speaks Bluesky's shapes; and if
the SDK reads back what Koho's hook wrote, the hook writes records the real clients understand.
"""

from __future__ import annotations

import secrets as pysecrets
from datetime import UTC, datetime, timedelta

import pytest
from atproto import Client, client_utils, models
from atproto_client.exceptions import AtProtocolError, BadRequestError, RateLimitExceededError, UnauthorizedError
from atproto_server.auth.jwt import get_jwt_payload

from koho.platforms.base import RetryPolicy
from koho.platforms.bluesky import BlueskyHook, build_facets
from koho.platforms.types import OutgoingPost
from sandbox.platforms.bluesky import session_counts

HANDLE = "kohocity-sample.bsky.social"
POST = "app.bsky.feed.post"


@pytest.fixture
def password() -> str:
    return pysecrets.token_urlsafe(16)


@pytest.fixture
def city(sandbox, password):
    return sandbox.add_account("bluesky", HANDLE, password=password, display_name="こほ市公式", followers=321)


@pytest.fixture
def client(sandbox) -> Client:
    return Client(base_url=f"{sandbox.url}/bluesky/xrpc")


def test_create_session_and_refresh_session(client, city, password):
    session = client.com.atproto.server.create_session(
        models.ComAtprotoServerCreateSession.Data(identifier=HANDLE, password=password)
    )
    assert (session.did, session.handle) == (city["account_id"], HANDLE)
    claims = get_jwt_payload(session.access_jwt)  # the SDK reads exp to decide when to refresh
    assert claims.sub == city["account_id"] and claims.exp > datetime.now(UTC).timestamp()

    renewed = client.com.atproto.server.refresh_session(headers={"Authorization": f"Bearer {session.refresh_jwt}"})
    assert renewed.did == session.did and renewed.refresh_jwt != session.refresh_jwt
    with pytest.raises(BadRequestError) as reused:  # refresh tokens rotate
        client.com.atproto.server.refresh_session(headers={"Authorization": f"Bearer {session.refresh_jwt}"})
    assert reused.value.response.content.error == "ExpiredToken"
    with pytest.raises(UnauthorizedError):
        client.com.atproto.server.create_session(
            models.ComAtprotoServerCreateSession.Data(identifier=HANDLE, password="not-the-app-password")
        )


def test_login_post_read_back_and_delete(sandbox, client, city, password):
    profile = client.login(HANDLE, password)  # createSession, then getProfile as on bsky.social
    assert (profile.did, profile.display_name, profile.followers_count) == (city["account_id"], "こほ市公式", 321)

    text = (
        client_utils.TextBuilder()
        .text("粗大ごみの受付は ")
        .link("こちら", "https://www.city.example.jp/gomi")
        .tag(" #こほ市", "こほ市")
    )
    created = client.send_post(text, langs=["ja"])
    records = client.com.atproto.repo.list_records(
        models.ComAtprotoRepoListRecords.Params(repo=client.me.did, collection=POST)
    )
    [record] = records.records
    assert record.uri == created.uri and record.value.text == "粗大ごみの受付は こちら #こほ市"
    assert record.value.facets[0].features[0].uri == "https://www.city.example.jp/gomi"

    [view] = client.get_posts([created.uri]).posts
    assert (view.author.handle, view.like_count, view.reply_count) == (HANDLE, 0, 0)
    assert client.get_author_feed(HANDLE).feed[0].post.uri == created.uri

    assert client.delete_post(created.uri)
    assert (
        client.com.atproto.repo.list_records(
            models.ComAtprotoRepoListRecords.Params(repo=client.me.did, collection=POST)
        ).records
        == []
    )
    assert sandbox.posts("bluesky") == []


def test_sdk_reads_what_the_koho_hook_wrote(sandbox, connect, city, client, password):
    hook = BlueskyHook(connect("bluesky", city), retry=RetryPolicy(base_delay=0.01), sleep=lambda _: None)
    text = "ごみ収集日のお知らせ。詳しくは https://www.city.example.jp/gomi をご覧ください。#こほ市"
    published = hook.publish_once(OutgoingPost(text=text, created_at=datetime.now(UTC)), idempotency_key="k")
    client.login(HANDLE, password)
    record = client.get_post(published.remote_id.rsplit("/", 1)[1], city["account_id"])
    assert isinstance(record.value, models.AppBskyFeedPost.Record)
    data = record.value.text.encode("utf-8")
    slices = [data[f.index.byte_start : f.index.byte_end].decode() for f in record.value.facets]
    assert slices == ["https://www.city.example.jp/gomi", "#こほ市"]


FACET_TEXTS = [
    "ごみ収集日が変わります。詳しくは https://www.city.example.jp/kurashi/gomi/2026.html をご覧ください。#こほ市 #ごみ",
    "🎉👨‍👩‍👧‍👦 お祭り https://example.jp/matsuri?x=1&y=2 、#夏祭り 🇯🇵",
    "https://example.jp/gomiをご覧ください。#防災の日。備えを",
    "（詳細：https://example.jp/a_(b)）＃防災 and #Koho2026 👍🏽",
    "絵文字だけ😀😃😄 https://x.example/path#frag",
]


@pytest.mark.parametrize("text", FACET_TEXTS)
def test_facet_byte_ranges_equal_the_sdk_text_builder_s(text):
    """Koho finds links and tags itself (TextBuilder only numbers segments it is given); given
    the same segments, the SDK's builder must put every facet at the same UTF-8 byte range."""
    ours = build_facets(text)
    builder, position = client_utils.TextBuilder(), 0
    for facet in ours:
        start, end = (len(text.encode("utf-8")[: facet["index"][k]].decode("utf-8")) for k in ("byteStart", "byteEnd"))
        feature = facet["features"][0]
        builder.text(text[position:start])
        if feature["$type"].endswith("#link"):
            builder.link(text[start:end], feature["uri"])
        else:
            builder.tag(text[start:end], feature["tag"])
        position = end
    builder.text(text[position:])
    assert builder.build_text() == text
    theirs = [(f.index.byte_start, f.index.byte_end) for f in builder.build_facets()]
    assert theirs == [(f["index"]["byteStart"], f["index"]["byteEnd"]) for f in ours]
    assert len(ours) >= 1


def test_images_notifications_and_search(sandbox, client, city, password):
    client.login(HANDLE, password)
    sent = client.send_image("避難所の地図です", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "避難所マップ")
    [view] = client.get_posts([sent.uri]).posts
    assert view.embed.images[0].alt == "避難所マップ"

    sandbox.comment("bluesky", HANDLE, "resident.bsky.social", "ありがとうございます", post_id=sent.uri)
    [note] = client.app.bsky.notification.list_notifications().notifications
    assert (note.reason, note.author.handle, note.record.text) == (
        "reply",
        "resident.bsky.social",
        "ありがとうございます",
    )
    assert note.record.reply.parent.uri == sent.uri

    sandbox.add_account("bluesky", "kohocity-fan.bsky.social", display_name="こほ市ファン")
    actors = client.app.bsky.actor.search_actors(models.AppBskyActorSearchActors.Params(q="こほ市")).actors
    assert {a.handle for a in actors} == {HANDLE, "kohocity-fan.bsky.social"}


def test_sdk_refreshes_a_session_that_is_about_to_expire(sandbox, client, password):
    account = sandbox.add_account(
        "bluesky", HANDLE, password=password, token_expires_at=(datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    )
    client.login(HANDLE, password)  # the access token ends within 15 minutes: the SDK refreshes first
    assert client.get_profile(HANDLE).handle == HANDLE
    assert session_counts(sandbox.state, account["account_id"])["refreshes"] >= 1


def test_errors_come_out_as_the_sdk_expects(sandbox, client, city, password):
    client.login(HANDLE, password)
    with pytest.raises(BadRequestError) as too_long:
        client.send_post("あ" * 301)
    assert too_long.value.response.content.error == "InvalidRequest"
    assert "grapheme too big (maximum 300, got 301)" in too_long.value.response.content.message

    sandbox.limit("bluesky", "session", 1, 300)
    Client(base_url=f"{sandbox.url}/bluesky/xrpc").login(HANDLE, password)
    with pytest.raises(RateLimitExceededError) as limited:
        Client(base_url=f"{sandbox.url}/bluesky/xrpc").login(HANDLE, password)
    assert (limited.value.limit, limited.value.remaining, limited.value.policy) == (1, 0, "1;w=300")
    assert 295 <= (limited.value.reset_at - datetime.now(UTC)).total_seconds() <= 301


def test_a_second_create_with_the_same_record_key_is_refused(sandbox, client, city, password):
    """What Koho's retry of a Bluesky post relies on: the delivery's record key can be used once.
    A repeat of the create (a retry after a lost answer) is refused (the reference PDS answers 500,
    atproto issue #3718) and leaves one record."""
    client.login(HANDLE, password)
    record = models.AppBskyFeedPost.Record(text="臨時休館のお知らせ", created_at=client.get_current_time_iso())
    data = models.ComAtprotoRepoCreateRecord.Data(
        repo=client.me.did, collection=POST, rkey="3lkohotest2aa", record=record
    )
    created = client.com.atproto.repo.create_record(data)
    assert created.uri.endswith("/3lkohotest2aa")
    with pytest.raises(AtProtocolError):
        client.com.atproto.repo.create_record(data)
    records = client.com.atproto.repo.list_records(
        models.ComAtprotoRepoListRecords.Params(repo=client.me.did, collection=POST)
    ).records
    assert [r.uri for r in records] == [created.uri]
    assert len(sandbox.posts("bluesky")) == 1
