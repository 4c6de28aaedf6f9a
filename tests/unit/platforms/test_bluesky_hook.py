"""The Bluesky hook against the real sandbox: sessions, records, facets, reconciliation, faults, secrecy.

Bluesky has no idempotency key, so "exactly once" rests on reading the repository and matching
text *and* createdAt; and it has sessions rather than tokens, so the tests count logins and
refreshes on the sandbox to prove the hook keeps its session instead of logging in per post.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets as pysecrets
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from koho.platforms.base import RetryPolicy
from koho.platforms.bluesky import (
    BlueskyHook,
    build_facets,
    iso_millis,
    jwt_expiry,
    split_at_uri,
    tid_for,
    tid_time,
)
from koho.platforms.errors import AuthExpired, PermanentlyRejected, RateLimited, TransientError, UnknownOutcome
from koho.platforms.types import OutgoingPost
from sandbox.platforms.bluesky import session_counts

POLICY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02, max_wait=120)
HANDLE = "kohocity-sample.bsky.social"
MAX_GRAPHEMES = 300
GOMI = (
    "ごみ収集日が変わります。詳しくは https://www.city.example.jp/kurashi/gomi/2026.html をご覧ください。#こほ市 #ごみ"
)


def at(minutes: int = 0) -> datetime:
    """A planned createdAt (fixed by the caller, with sub-millisecond noise Bluesky will drop)."""
    return datetime.now(UTC).replace(microsecond=123456) + timedelta(minutes=minutes)


@pytest.fixture
def password() -> str:
    return pysecrets.token_urlsafe(16)


@pytest.fixture
def city(sandbox, password):
    return sandbox.add_account("bluesky", HANDLE, password=password, display_name="こほ市公式", followers=321)


@pytest.fixture
def make_hook(connect, city, waits):
    def _make(**extra) -> BlueskyHook:
        return BlueskyHook(connect("bluesky", city, **extra), retry=POLICY, sleep=waits.append)

    return _make


def stored(sandbox, uri: str):
    return sandbox.state.post("bluesky", uri)


def counts(sandbox, city) -> dict[str, int]:
    return session_counts(sandbox.state, city["account_id"])


# --------------------------------------------------------------------------- the cycle


def test_publish_read_metrics_comments_delete(sandbox, city, hook):
    post = hook.publish_once(OutgoingPost(text=GOMI, created_at=at()), idempotency_key="cal-1:bsky:1")
    _, collection, rkey = split_at_uri(post.remote_id)
    assert collection == "app.bsky.feed.post"
    assert post.url == f"https://bsky.app/profile/{HANDLE}/post/{rkey}"
    assert [p["post_id"] for p in sandbox.posts("bluesky")] == [post.remote_id]

    remote = hook.get_post(post.remote_id)
    assert remote.text == GOMI and remote.created_at == post.created_at

    stored(sandbox, post.remote_id).metrics.update(likes=12, reposts=3, quotes=1, replies=2)
    sandbox.comment("bluesky", HANDLE, "resident.bsky.social", "分別表はどこで貰えますか？", post_id=post.remote_id)
    metrics = hook.post_metrics(post.remote_id)
    assert (metrics.likes, metrics.reposts, metrics.quotes, metrics.replies) == (12, 3, 1, 3)
    assert metrics.impressions is None  # Bluesky publishes no view counts

    page = hook.comments_since(None)
    assert [(c.text, c.author, c.post_id) for c in page.comments] == [
        ("分別表はどこで貰えますか？", "resident.bsky.social", post.remote_id)
    ]
    assert page.comments[0].url.startswith("https://bsky.app/profile/resident.bsky.social/post/")

    hook.delete(post.remote_id)
    assert sandbox.posts("bluesky") == []
    with pytest.raises(PermanentlyRejected) as exc:
        hook.get_post(post.remote_id)
    assert exc.value.kind == "not_found"
    hook.delete(post.remote_id)  # deleting again is a no-op, as on a PDS


def test_verify_credentials_account_metrics_and_look_alikes(sandbox, city, hook):
    sandbox.add_account("bluesky", "kohocity-official.bsky.social", display_name="こほ市公式（ファン）")
    info = hook.verify_credentials()
    assert (info.remote_id, info.handle, info.display_name, info.followers) == (
        city["account_id"],
        HANDLE,
        "こほ市公式",
        321,
    )
    # App passwords do not expire; the session's refresh token (90 days) is the date to watch.
    assert timedelta(days=89) < info.token_expires_at - datetime.now(UTC) <= timedelta(days=90)

    hook.publish_once(OutgoingPost(text="テスト投稿", created_at=at()), idempotency_key="k")
    metrics = hook.account_metrics()
    assert (metrics.followers, metrics.posts) == (321, 1)

    found = {a.handle: a for a in hook.search_accounts("こほ市公式")}
    assert set(found) == {HANDLE, "kohocity-official.bsky.social"}
    assert found["kohocity-official.bsky.social"].url == "https://bsky.app/profile/kohocity-official.bsky.social"


def test_configured_rotation_date_wins_over_the_session_end(make_hook):
    hook = make_hook(token_expires_at="2027-03-31T00:00:00+09:00")
    assert hook.verify_credentials().token_expires_at == datetime(2027, 3, 30, 15, tzinfo=UTC)


def test_comments_cursor_returns_only_newer_and_filters_by_post(sandbox, city, hook):
    first = hook.publish_once(OutgoingPost(text="一件目", created_at=at()), idempotency_key="a")
    second = hook.publish_once(OutgoingPost(text="二件目", created_at=at()), idempotency_key="b")
    sandbox.comment("bluesky", HANDLE, "alice.bsky.social", "一件目への返信", post_id=first.remote_id)
    page = hook.comments_since(None)
    assert [c.text for c in page.comments] == ["一件目への返信"]
    assert hook.comments_since(page.cursor).comments == []

    sandbox.comment("bluesky", HANDLE, "bob.bsky.social", "二件目への返信", post_id=second.remote_id)
    sandbox.comment("bluesky", HANDLE, "山田花子", "市役所の開庁時間は？")  # a mention, no post
    newer = hook.comments_since(page.cursor)
    by_text = {c.text: c for c in newer.comments}
    assert set(by_text) == {"二件目への返信", f"@{HANDLE} 市役所の開庁時間は？"}
    mention = by_text[f"@{HANDLE} 市役所の開庁時間は？"]
    assert mention.post_id is None and mention.author.endswith(".bsky.social")
    only_second = hook.comments_since(page.cursor, post_ids=[second.remote_id])
    assert [c.author for c in only_second.comments] == ["bob.bsky.social"]
    assert hook.comments_since(newer.cursor).comments == []


# --------------------------------------------------------------------------- the record


def test_link_facets_are_utf8_byte_ranges(sandbox, hook):
    post = hook.publish_once(OutgoingPost(text=GOMI, created_at=at()), idempotency_key="facets")
    record = stored(sandbox, post.remote_id).extra["record"]
    data = record["text"].encode("utf-8")
    by_kind = {f["features"][0]["$type"].rsplit("#", 1)[1]: f for f in record["facets"]}
    link = by_kind["link"]
    url = link["features"][0]["uri"]
    assert url == "https://www.city.example.jp/kurashi/gomi/2026.html"
    start, end = link["index"]["byteStart"], link["index"]["byteEnd"]
    assert data[start:end].decode("utf-8") == url
    assert start != GOMI.index(url)  # Japanese before the URL: characters and bytes differ
    tags = [f for f in record["facets"] if f["features"][0]["$type"].endswith("#tag")]
    assert [
        (data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode(), f["features"][0]["tag"]) for f in tags
    ] == [("#こほ市", "こほ市"), ("#ごみ", "ごみ")]
    assert record["langs"] == ["ja"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("詳細はhttps://example.jp/a?b=1をご覧ください", ["https://example.jp/a?b=1"]),
        ("(https://example.jp/x) と https://example.jp/y.", ["https://example.jp/x", "https://example.jp/y"]),
        ("#防災の日。備えを #2026 #ＢＣＰ", ["#防災の日", "#ＢＣＰ"]),
        ("備えましょう。#防災 C#は対象外 a#b", ["#防災"]),
        ("https://example.jp/#top を見て", ["https://example.jp/#top"]),
    ],
)
def test_build_facets_finds_links_and_tags(text, expected):
    data = text.encode("utf-8")
    assert [data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in build_facets(text)] == expected


def test_link_outside_the_text_becomes_a_card_and_replies_keep_their_root(sandbox, hook):
    top = hook.publish_once(
        OutgoingPost(text="防災訓練のお知らせ", link="https://example.jp/bousai", created_at=at()),
        idempotency_key="top",
    )
    record = stored(sandbox, top.remote_id).extra["record"]
    assert record["embed"]["external"]["uri"] == "https://example.jp/bousai"
    assert "facets" not in record

    reply = hook.publish_once(
        OutgoingPost(text="続報です", reply_to=top.remote_id, created_at=at()), idempotency_key="r1"
    )
    again = hook.publish_once(
        OutgoingPost(text="さらに続報", reply_to=reply.remote_id, created_at=at()), idempotency_key="r2"
    )
    refs = stored(sandbox, again.remote_id).extra["record"]["reply"]
    assert refs["root"]["uri"] == top.remote_id and refs["parent"]["uri"] == reply.remote_id
    assert hook.post_metrics(top.remote_id).replies == 1


def test_images_are_uploaded_as_blobs(sandbox, hook, tmp_path):
    image = tmp_path / "map.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + pysecrets.token_bytes(64))
    post = hook.publish_once(
        OutgoingPost(text="避難所マップ", image_urls=(str(image),), created_at=at()), idempotency_key="img"
    )
    embed = stored(sandbox, post.remote_id).extra["record"]["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    assert embed["images"][0]["image"]["mimeType"] == "image/png"
    assert sandbox.posts("bluesky")[0]["media"] == [embed["images"][0]["image"]["ref"]["$link"]]


def test_text_limit_is_300_graphemes_not_code_points(sandbox, hook):
    voiced = "か\u3099" * MAX_GRAPHEMES  # 300 graphemes, 600 code points
    hook.publish_once(OutgoingPost(text=voiced, created_at=at()), idempotency_key="300")
    with pytest.raises(PermanentlyRejected) as exc:
        hook.publish_once(OutgoingPost(text="あ" * (MAX_GRAPHEMES + 1), created_at=at()), idempotency_key="301")
    assert exc.value.kind == "too_long" and "grapheme too big (maximum 300, got 301)" in str(exc.value)
    assert len(sandbox.posts("bluesky")) == 1


def test_text_over_3000_utf8_bytes_is_too_long_in_the_pds_s_words(sandbox, hook):
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 1 grapheme, 25 bytes
    text = "防災" * 100 + family * 100  # 300 graphemes, 3,100 bytes
    with pytest.raises(PermanentlyRejected) as exc:
        hook.publish_once(OutgoingPost(text=text, created_at=at()), idempotency_key="bytes")
    assert exc.value.kind == "too_long"
    assert "string too big (maximum 3000, got 3100) at $.record.text" in str(exc.value)
    assert sandbox.posts("bluesky") == []


def test_verify_credentials_with_the_appview_down_reports_the_profile_unknown(sandbox, city, hook, waits):
    sandbox.fault("bluesky", "server_error", operation="metrics", count=POLICY.max_attempts)
    info = hook.verify_credentials()  # the login and getSession worked: the credentials are fine
    assert (info.remote_id, info.handle) == (city["account_id"], HANDLE)
    assert (info.display_name, info.followers) == (None, None)
    assert len(waits) == POLICY.max_attempts - 1  # a passing fault was given its retries first


def test_get_profile_answers_502_upstream_failure_when_the_appview_is_down(sandbox, city, hook):
    hook.verify_credentials()
    sandbox.fault("bluesky", "server_error", operation="metrics")
    answer = requests.get(
        f"{sandbox.url}/bluesky/xrpc/app.bsky.actor.getProfile",
        params={"actor": HANDLE},
        headers={"Authorization": f"Bearer {hook._access_token()}"},
        timeout=5,
    )
    assert (answer.status_code, answer.json()["error"]) == (502, "UpstreamFailure")


def test_publish_once_without_the_planned_created_at_is_refused_before_sending(sandbox, hook):
    # A time taken per call would mint a new record key each time: one key, two posts.
    with pytest.raises(ValueError, match="planned created_at"):
        hook.publish_once(OutgoingPost(text="時刻のない投稿"), idempotency_key="no-time")
    with pytest.raises(ValueError, match="planned created_at"):
        hook.publish_once(OutgoingPost(text="時刻のない投稿"), idempotency_key="no-time")
    assert sandbox.posts("bluesky") == []


# --------------------------------------------------------------------------- sessions


def test_session_is_kept_across_posts_and_reads(sandbox, city, hook):
    for n in range(3):
        hook.publish_once(OutgoingPost(text=f"お知らせ{n}", created_at=at()), idempotency_key=f"s{n}")
    hook.verify_credentials()
    hook.comments_since(None)
    assert counts(sandbox, city) == {"logins": 1, "login_attempts": 1, "refreshes": 0}
    assert hook.rate_limit_window("write").remaining == 5000 - 3 * 3  # createRecord costs 3 points


def test_expired_access_token_is_refreshed_not_logged_in_again(sandbox, city, hook):
    hook.verify_credentials()
    sandbox.fault("bluesky", "expired_token", operation="publish")
    post = hook.publish_once(OutgoingPost(text="更新後に投稿", created_at=at()), idempotency_key="exp")
    assert stored(sandbox, post.remote_id) is not None
    assert counts(sandbox, city) == {"logins": 1, "login_attempts": 1, "refreshes": 1}


def test_access_token_about_to_expire_is_refreshed_before_sending(sandbox, city, hook):
    hook.verify_credentials()
    hook._access = _forge_expiring(hook._access)  # as if two hours had passed since login
    hook.account_metrics()
    assert counts(sandbox, city)["refreshes"] == 1
    assert jwt_expiry(hook._access) > datetime.now(UTC) + timedelta(hours=1)


def _token(claims: dict, header: dict | None = None) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header or {'typ': 'at+jwt', 'alg': 'ES256K'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "token, expected",
    [
        (_token({"exp": 1_900_000_000}), datetime.fromtimestamp(1_900_000_000, UTC)),
        (_token({"exp": 1_000}), datetime.fromtimestamp(1_000, UTC)),  # expired: still read, to renew it
        (_token({"sub": "did:plc:x"}), None),
        (_token({"exp": "soon"}), None),
        (_token({"exp": 10**20}), None),
        ("not.a.jwt", None),
        ("", None),
        (None, None),
    ],
)
def test_jwt_expiry_reads_exp_without_verifying_and_never_raises(token, expected):
    assert jwt_expiry(token) == expected


def _forge_expiring(token: str) -> str:
    """The same token with an ``exp`` in 10 seconds; the PDS would reject it, the hook must not send it."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = int(datetime.now(UTC).timestamp()) + 10
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def test_invalid_session_after_a_pds_restart_logs_in_again(sandbox, city, hook):
    hook.verify_credentials()
    sandbox.state.scratch["bluesky"]["secret"] = pysecrets.token_bytes(32)  # every token now InvalidToken
    assert hook.account_metrics().followers == 321
    assert counts(sandbox, city)["logins"] == 2


def test_revoked_app_password_is_auth_expired_and_not_retried(sandbox, city, hook, password):
    hook.verify_credentials()
    sandbox.admin("POST", f"/accounts/bluesky/{HANDLE}/revoke")
    with pytest.raises(AuthExpired) as exc:
        hook.publish_once(OutgoingPost(text="届かない投稿", created_at=at()), idempotency_key="rev")
    assert "Invalid identifier or password" in str(exc.value) and password not in str(exc.value)
    with pytest.raises(AuthExpired):
        hook.account_metrics()
    assert counts(sandbox, city)["login_attempts"] == 2  # the first login, then one refused re-login
    assert sandbox.posts("bluesky") == []


def test_expired_everywhere_is_auth_expired(sandbox, hook):
    sandbox.fault("bluesky", "expired_token", count=10)
    with pytest.raises(AuthExpired):
        hook.verify_credentials()


def test_login_limit_is_enforced_and_reported(sandbox, make_hook):
    sandbox.limit("bluesky", "session", 2, 300)
    make_hook().verify_credentials()
    make_hook().verify_credentials()
    with pytest.raises(RateLimited) as exc:
        make_hook().verify_credentials()
    assert 295 < exc.value.seconds_to_wait() <= 301


def test_xrpc_auth_errors_have_bluesky_status_codes(sandbox):
    url = f"{sandbox.url}/bluesky/xrpc/com.atproto.server.getSession"
    missing = requests.get(url, timeout=5)
    garbled = requests.get(url, headers={"Authorization": "Bearer not.a.jwt"}, timeout=5)
    assert (missing.status_code, missing.json()["error"]) == (401, "AuthenticationRequired")
    assert (garbled.status_code, garbled.json()["error"]) == (400, "InvalidToken")


# --------------------------------------------------------------------------- faults and exactly once


def test_rate_limit_waits_for_the_announced_reset(sandbox, hook, waits):
    hook.verify_credentials()
    sandbox.fault("bluesky", "rate_limit", operation="publish", delay=30)
    post = hook.publish_once(OutgoingPost(text="混雑時の投稿", created_at=at()), idempotency_key="rl")
    assert 28 < waits[0] <= 31.1 and all(w <= 31.1 for w in waits)
    assert [p["post_id"] for p in sandbox.posts("bluesky")] == [post.remote_id]


def test_server_error_on_a_read_is_retried(sandbox, hook, waits):
    post = hook.publish_once(OutgoingPost(text="読み取り", created_at=at()), idempotency_key="rd")
    sandbox.fault("bluesky", "server_error", operation="metrics", count=2)
    assert hook.post_metrics(post.remote_id).likes == 0
    assert len(waits) == 2


def test_server_error_on_publish_reconciles_then_posts_once(sandbox, hook):
    hook.verify_credentials()
    sandbox.fault("bluesky", "server_error", operation="publish")
    post = hook.publish_once(OutgoingPost(text="障害時の投稿", created_at=at()), idempotency_key="5xx")
    assert not post.reconciled
    assert [p["post_id"] for p in sandbox.posts("bluesky")] == [post.remote_id]


def test_lost_response_on_publish_is_found_not_posted_again(sandbox, hook):
    hook.verify_credentials()
    sandbox.fault("bluesky", "lost_response", operation="publish")
    post = hook.publish_once(OutgoingPost(text="応答が消えた投稿", created_at=at()), idempotency_key="lost")
    assert post.reconciled
    assert [p["post_id"] for p in sandbox.posts("bluesky")] == [post.remote_id]


def test_a_lost_answer_is_settled_by_looking_up_the_delivery_s_record_key(sandbox, hook):
    hook.verify_credentials()
    sandbox.fault("bluesky", "lost_response", operation="publish")
    post = hook.publish(OutgoingPost(text="応答が失われた投稿", created_at=at()), idempotency_key="lost")
    assert post.reconciled
    assert [p["post_id"] for p in sandbox.posts("bluesky")] == [post.remote_id]


def test_maybe_sent_before_finds_the_post_of_a_killed_worker(sandbox, make_hook):
    planned = OutgoingPost(text="再起動後の確認", created_at=at())
    first = make_hook()
    first.verify_credentials()
    sandbox.fault("bluesky", "lost_response", operation="publish")
    sandbox.fault("bluesky", "server_error", operation="read", count=10)  # the worker dies before it looks
    with pytest.raises(UnknownOutcome):
        first.publish(planned, idempotency_key="kill")
    sandbox.admin("DELETE", "/faults")
    again = make_hook().publish_once(planned, idempotency_key="kill", maybe_sent_before=True)
    assert again.reconciled
    assert [p["post_id"] for p in sandbox.posts("bluesky")] == [again.remote_id]


def test_reconciliation_matches_created_at_not_only_text(sandbox, hook):
    """The same text planned for another slot is another post, not the earlier attempt."""
    earlier = hook.publish_once(OutgoingPost(text="毎朝のお知らせ", created_at=at(-5)), idempotency_key="d1")
    slot = at()
    later = hook.publish_once(
        OutgoingPost(text="毎朝のお知らせ", created_at=slot), idempotency_key="d2", maybe_sent_before=True
    )
    assert not later.reconciled and later.remote_id != earlier.remote_id
    assert len(sandbox.posts("bluesky")) == 2
    assert stored(sandbox, later.remote_id).extra["record"]["createdAt"] == iso_millis(slot)
    # ...while the same slot again is recognised as already sent.
    same = hook.publish_once(
        OutgoingPost(text="毎朝のお知らせ", created_at=slot), idempotency_key="d2", maybe_sent_before=True
    )
    assert same.reconciled and same.remote_id == later.remote_id
    assert len(sandbox.posts("bluesky")) == 2


def test_created_at_is_sent_in_milliseconds_with_z(sandbox, hook):
    planned = datetime(2026, 11, 3, 9, 0, 0, 987654, tzinfo=UTC)
    post = hook.publish_once(
        OutgoingPost(text="文化の日", created_at=planned), idempotency_key="ms", since=planned - timedelta(minutes=10)
    )
    assert stored(sandbox, post.remote_id).extra["record"]["createdAt"] == "2026-11-03T09:00:00.987Z"
    # The record key follows from createdAt and the delivery's key: every attempt names the same record.
    assert split_at_uri(post.remote_id)[2] == tid_for(planned, "ms")
    minted = tid_time(split_at_uri(post.remote_id)[2])
    assert planned.replace(microsecond=987000) <= minted < planned.replace(microsecond=988000)


def test_deliveries_of_one_slot_get_distinct_record_keys():
    """A slot sends many posts with one createdAt: the delivery's key must spread them, not the time."""
    slot = datetime(2026, 11, 25, 19, 5, 38, tzinfo=UTC)
    keys = {tid_for(slot, f"delivery-{i}") for i in range(1000)}
    assert len(keys) >= 999  # a million keys per millisecond: one meeting in a thousand is already rare
    assert tid_for(slot, "delivery-1", 1) != tid_for(slot, "delivery-1")
    assert tid_for(slot, "delivery-1", 1) == tid_for(slot, "delivery-1", 1)


def test_a_record_key_held_by_another_post_moves_to_the_delivery_s_next_key(sandbox, hook):
    """Two deliveries meeting on one record key: the second is published under its next key, and a
    retry of it finds itself there instead of posting again."""
    slot = at()
    hook.verify_credentials()
    taken = tid_for(parse_millis(slot), "second")
    hook.call(
        "POST",
        "/xrpc/com.atproto.repo.createRecord",
        json={
            "repo": hook.did,
            "collection": "app.bsky.feed.post",
            "rkey": taken,
            "record": {"$type": "app.bsky.feed.post", "text": "先に同じ鍵を取った投稿", "createdAt": iso_millis(slot)},
        },
    )
    planned = OutgoingPost(text="鍵が重なった投稿", created_at=slot)

    post = hook.publish_once(planned, idempotency_key="second")
    assert not post.reconciled
    assert split_at_uri(post.remote_id)[2] == tid_for(parse_millis(slot), "second", 1)
    assert stored(sandbox, post.remote_id).text == "鍵が重なった投稿"

    again = hook.publish(planned, idempotency_key="second")  # a retry that never learnt the outcome
    assert again.reconciled and again.remote_id == post.remote_id
    assert sorted(p["text"] for p in sandbox.posts("bluesky")) == sorted(["先に同じ鍵を取った投稿", "鍵が重なった投稿"])


def parse_millis(moment: datetime) -> datetime:
    """``moment`` as Bluesky keeps it: to the millisecond."""
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def test_a_slow_first_attempt_landing_after_the_retry_cannot_post_twice(sandbox, city, connect):
    """The first request times out but is applied later; the retry names the same record, so only
    one of the two can create it."""
    slow = BlueskyHook(connect("bluesky", city), retry=POLICY, timeout=0.5, sleep=lambda _s: None)
    slow.verify_credentials()
    sandbox.fault("bluesky", "slow", operation="publish", delay=1.5)
    post = slow.publish_once(OutgoingPost(text="遅れて届く投稿", created_at=at()), idempotency_key="slow-1")
    assert post.remote_id

    def refused_late() -> bool:  # the slow request lands after the retry and is refused (500: the record exists)
        stats = sandbox.admin("GET", "/stats")["counts"]
        return any(c["platform"] == "bluesky" and c["status"] == 500 for c in stats)

    deadline = time.monotonic() + 10
    while not refused_late():
        assert time.monotonic() < deadline, "the slow first request never completed"
        time.sleep(0.05)  # polling the sandbox's counters for the late request, not guessing a duration
    sandbox_posts = [p for p in sandbox.posts("bluesky") if p["text"] == "遅れて届く投稿"]
    assert len(sandbox_posts) == 1 and sandbox_posts[0]["post_id"] == post.remote_id


def test_duplicate_is_permanently_rejected(sandbox, hook):
    hook.verify_credentials()
    sandbox.fault("bluesky", "duplicate", operation="publish")
    with pytest.raises(PermanentlyRejected) as exc:
        hook.publish_once(OutgoingPost(text="重複", created_at=at()), idempotency_key="dup")
    assert exc.value.kind == "duplicate"


def test_secrets_never_reach_exceptions_or_logs(sandbox, city, hook, password, caplog):
    caplog.set_level(logging.DEBUG)
    hook.publish_once(OutgoingPost(text="ログ確認", created_at=at()), idempotency_key="log")
    session_tokens = [hook._access, hook._refresh]
    sandbox.fault("bluesky", "server_error", operation="metrics", count=10)
    errors = []
    with pytest.raises(TransientError) as failed:
        hook.account_metrics()
    errors.append(str(failed.value))
    sandbox.admin("POST", f"/accounts/bluesky/{HANDLE}/revoke")
    sandbox.admin("DELETE", "/faults")
    with pytest.raises(AuthExpired) as exc:
        hook.publish_once(OutgoingPost(text="失効", created_at=at()), idempotency_key="log2")
    errors.append(str(exc.value))
    for secret in [password, *session_tokens]:
        assert secret not in caplog.text
        assert all(secret not in e for e in errors)


def test_points_left_below_a_posts_cost_wait_for_the_window(sandbox, connect, city):
    """16 points per window and 3 per post: the 6th post must wait for the reset, not draw a 429."""
    import time

    sandbox.limit("bluesky", "write", 16, 2.0)
    hook = BlueskyHook(connect("bluesky", city), retry=POLICY)  # real sleeping: the window must really reopen
    started = time.monotonic()
    for n in range(6):
        hook.publish_once(OutgoingPost(text=f"{GOMI}（{n}）", created_at=at(n)), idempotency_key=f"pts-{n}")
    assert time.monotonic() - started >= 1.0  # it waited for the window
    assert sandbox.admin("GET", "/stats")["rate_limited"] == []
    assert len(sandbox.posts("bluesky")) == 6
