"""MastodonHook against the real sandbox: idempotency keys, HTML content, taxonomy, paging."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests
import requests_mock

from koho.errors import InputError
from koho.platforms.base import RetryPolicy
from koho.platforms.errors import AuthExpired, PermanentlyRejected, PlatformError, TransientError, UnknownOutcome
from koho.platforms.mastodon import MEDIA_POLLS, MastodonHook, plain_text
from koho.platforms.types import OutgoingPost
from koho.text.fitting import fit
from koho.text.rules import rules_for
from sandbox.platforms.mastodon import set_max_characters
from tests.unit.platforms.hook_helpers import requests_seen, write_png

NOTICE = "【幸保市】ごみ収集日の変更 <年末年始> & 資源ごみ\n詳しくは https://city.example.jp/gomi/2026/nenmatsu-nenshi.html #幸保市\n\n問い合わせ: 環境課"


@pytest.fixture
def official(sandbox):
    return sandbox.add_account("mastodon", "koho_city", display_name="幸保市", followers=350)


@pytest.fixture
def make_hook(hook_factory, official):
    return hook_factory(MastodonHook, "mastodon", official, attempts=4, timeout=5.0)


def test_publish_read_metrics_comments_delete(sandbox, make_hook):
    hook = make_hook()
    published = hook.publish(OutgoingPost(NOTICE), idempotency_key="d-1")
    assert published.url.endswith(f"/@koho_city/{published.remote_id}")
    assert published.created_at is not None

    # content comes back as HTML (links, hashtag, <br />, paragraphs); the hook returns the text.
    assert hook.get_post(published.remote_id).text == NOTICE

    sandbox.comment("mastodon", "koho_city", "shimin_1", "年始は何日からですか？", post_id=published.remote_id)
    assert hook.post_metrics(published.remote_id).replies == 1

    page = hook.comments_since(None)
    assert [(c.author, c.text, c.post_id) for c in page.comments] == [
        ("shimin_1", "年始は何日からですか？", published.remote_id)
    ]
    assert hook.comments_since(page.cursor).comments == []
    sandbox.comment("mastodon", "koho_city", "shimin_2@other.example", "ありがとうございます")
    newer = hook.comments_since(page.cursor)
    assert [(c.author, c.text) for c in newer.comments] == [("shimin_2@other.example", "ありがとうございます")]

    hook.delete(published.remote_id)
    hook.delete(published.remote_id)  # already gone: not an error
    assert sandbox.posts("mastodon") == []
    with pytest.raises(PermanentlyRejected) as missing:
        hook.get_post(published.remote_id)
    assert missing.value.kind == "not_found"


def test_plain_text_handles_mastodon_markup():
    html = (
        '<p><span class="h-card" translate="no"><a href="https://s.example/@koho" class="u-url mention">'
        "@<span>koho</span></a></span> 道路に&lt;穴&gt;があります&amp;危険</p><p>場所:<br />"
        '<a href="https://map.example/x/yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"><span class="invisible">https://</span>'
        '<span class="ellipsis">map.example/x/yyyyyyyyyyyyyyyyy</span>'
        '<span class="invisible">yyyyyyyyyyyyyyyy</span></a></p>'
    )
    assert plain_text(html) == "@koho 道路に<穴>があります&危険\n\n場所:\nhttps://map.example/x/" + "y" * 33


def test_the_same_idempotency_key_gives_the_same_status(sandbox, make_hook):
    hook = make_hook()
    first = hook.publish(OutgoingPost("臨時休館のお知らせ"), idempotency_key="d-1")
    again = hook.publish(OutgoingPost("臨時休館のお知らせ"), idempotency_key="d-1")
    other = hook.publish(OutgoingPost("臨時休館のお知らせ"), idempotency_key="d-2")
    assert again.remote_id == first.remote_id != other.remote_id
    assert len(sandbox.posts("mastodon")) == 2


def test_lost_response_is_retried_with_the_same_key(sandbox, make_hook, waits):
    hook = make_hook()
    sandbox.fault("mastodon", "lost_response", operation="publish")
    published = hook.publish_once(OutgoingPost(NOTICE), idempotency_key="d-1")
    assert [p["post_id"] for p in sandbox.posts("mastodon")] == [published.remote_id]
    assert len(waits) == 1  # one backoff, then the key made the retry safe


def test_server_error_on_publish_posts_once(sandbox, make_hook):
    hook = make_hook()
    sandbox.fault("mastodon", "server_error", operation="publish", count=2)
    published = hook.publish_once(OutgoingPost("雪による臨時ダイヤ"), idempotency_key="d-1")
    assert [p["post_id"] for p in sandbox.posts("mastodon")] == [published.remote_id]


def test_unknown_outcome_when_every_attempt_is_lost(sandbox, make_hook):
    hook = make_hook(attempts=2)
    sandbox.fault("mastodon", "lost_response", operation="publish", count=4)
    with pytest.raises(UnknownOutcome):
        hook.publish(OutgoingPost("届いたかわからない"), idempotency_key="d-1")
    assert len(sandbox.posts("mastodon")) == 1  # every retry carried the key


def test_maybe_sent_before_finds_the_post_instead_of_posting_again(sandbox, make_hook):
    post = OutgoingPost("避難所を開設しました", link="https://city.example.jp/hinan")
    sandbox.fault("mastodon", "lost_response", operation="publish")
    with pytest.raises(UnknownOutcome):
        make_hook(attempts=1).publish(post, idempotency_key="d-7")
    # A later run (the key may be older than Mastodon's hour) reads the account first.
    retried = make_hook().publish_once(post, idempotency_key="d-7", maybe_sent_before=True)
    assert retried.reconciled is True
    assert [p["post_id"] for p in sandbox.posts("mastodon")] == [retried.remote_id]


def test_rate_limit_waits_for_the_iso_reset_then_succeeds(sandbox, make_hook, waits):
    hook = make_hook()
    sandbox.fault("mastodon", "rate_limit", operation="verify", delay=20)
    assert hook.verify_credentials().handle == "koho_city"
    assert 19 <= waits[0] <= 20.5
    window = hook.rate_limit_window("api")
    assert window.limit == 300 and window.reset_at > datetime.now(UTC)


def test_deletes_have_their_own_window(sandbox, make_hook):
    hook = make_hook()
    assert hook.rate_bucket("DELETE", "/api/v1/statuses/5") == "statuses:delete"
    assert hook.rate_bucket("POST", "/api/v1/statuses") == "api"
    published = hook.publish(OutgoingPost("削除します"), idempotency_key="d-1")
    hook.delete(published.remote_id)
    assert hook.rate_limit_window("statuses:delete").limit == 30
    assert hook.rate_limit_window("api").limit == 300


def test_server_error_on_a_read_is_retried(sandbox, make_hook, waits):
    hook = make_hook()
    sandbox.fault("mastodon", "server_error", operation="search", count=2)
    assert hook.search_accounts("koho")[0].handle == "koho_city"
    assert len(waits) == 2


def test_search_accounts_finds_a_lookalike(sandbox, make_hook):
    sandbox.add_account("mastodon", "koho_city_info", token=None, display_name="幸保市 お知らせ")
    sandbox.add_account("mastodon", "tonari_town", token=None, display_name="隣町")
    found = {a.handle for a in make_hook().search_accounts("koho_city")}
    assert "koho_city_info" in found and "tonari_town" not in found


def test_list_recent_posts_follows_link_paging(sandbox, make_hook):
    hook = make_hook()
    hook.page_size = 3
    for n in range(7):
        hook.publish(OutgoingPost(f"お知らせ {n}"), idempotency_key=f"k{n}")
    posts = hook.list_recent_posts(datetime.now(UTC) - timedelta(minutes=5))
    assert [p.text for p in posts] == [f"お知らせ {n}" for n in reversed(range(7))]
    assert hook.list_recent_posts(datetime.now(UTC) - timedelta(minutes=5), limit=4)[-1].text == "お知らせ 3"


def test_comments_page_upwards_from_the_cursor(sandbox, make_hook):
    hook = make_hook()
    hook.page_size = 2
    sandbox.comment("mastodon", "koho_city", "a", "一")
    cursor = hook.comments_since(None).cursor
    for n, text in enumerate(["二", "三", "四", "五", "六"]):
        sandbox.comment("mastodon", "koho_city", f"r{n}", text)
    page = hook.comments_since(cursor)
    assert [c.text for c in page.comments] == ["二", "三", "四", "五", "六"]
    assert hook.comments_since(page.cursor).comments == []


def test_verify_credentials_and_account_metrics(sandbox, make_hook):
    hook = make_hook(account_id=None, token_expires_at="2027-01-01T00:00:00Z")
    info = hook.verify_credentials()
    assert (info.handle, info.display_name, info.followers) == ("koho_city", "幸保市", 350)
    assert info.token_expires_at == datetime(2027, 1, 1, tzinfo=UTC)
    hook.publish(OutgoingPost("一件"), idempotency_key="k")
    metrics = hook.account_metrics()
    assert (metrics.followers, metrics.posts) == (350, 1)
    assert hook.max_characters() == (500, 23)


def test_text_over_the_instance_limit_is_too_long(sandbox, make_hook):
    hook = make_hook()
    long_url = "https://city.example.jp/" + "a" * 200  # counts as 23
    assert hook.publish(OutgoingPost("あ" * 470 + " " + long_url), idempotency_key="ok").remote_id
    with pytest.raises(PermanentlyRejected) as exc:
        hook.publish(OutgoingPost("あ" * 501), idempotency_key="too-long")
    assert exc.value.kind == "too_long" and exc.value.status == 422


def test_rails_is_too_long_wording_is_too_long_too(make_hook):
    # Rails' generic length validator, which forks and other status fields answer with.
    answer = requests.Response()
    answer.status_code = 422
    answer._content = json.dumps({"error": "Validation failed: Text is too long (maximum is 500 characters)"}).encode()
    error = make_hook().classify_error(answer)
    assert (error.kind, error.status) == ("too_long", 422)


@pytest.mark.parametrize("limit", [1000, 300])
def test_the_instance_s_own_limit_is_read_once_and_fits_the_text(sandbox, make_hook, limit):
    set_max_characters(sandbox.state, limit)
    hook = make_hook()
    rule = hook.text_rule(rules_for("mastodon"))
    assert (rule.max_length, hook.max_characters()) == (limit, (limit, 23))
    set_max_characters(sandbox.state, 42)  # read once per hook: a later change is the next hook's
    assert hook.text_rule().max_length == limit and make_hook().text_rule().max_length == 42

    set_max_characters(sandbox.state, limit)
    text = "お知らせです。" * 100  # 700 characters: whole on 1,000, a thread on 300
    fitted = fit("mastodon", text, rule=rule)
    assert fitted.strategy == ("as_is" if limit == 1000 else "thread")
    for n, part in enumerate(fitted.parts):
        assert hook.publish(OutgoingPost(part), idempotency_key=f"part-{n}").remote_id
    with pytest.raises(PermanentlyRejected) as exc:
        hook.publish(OutgoingPost("あ" * (limit + 1)), idempotency_key="over")
    assert exc.value.kind == "too_long" and f"Text character limit of {limit} exceeded" in str(exc.value)


@pytest.mark.parametrize("answer", [{"status_code": 503, "json": {"error": "down"}}, {"json": {"version": "3.5.0"}}])
def test_an_instance_that_does_not_say_leaves_the_configured_rule(sandbox, make_hook, waits, answer):
    hook = make_hook()
    with requests_mock.Mocker(real_http=True) as mock:
        asked = mock.get(f"{sandbox.url}/mastodon/api/v2/instance", **answer)
        assert hook.max_characters() is None
        assert hook.text_rule(rules_for("mastodon", {"mastodon": 450})).max_length == 450
    assert asked.call_count == (4 if answer.get("status_code") else 1)  # retried, then read no more


def test_duplicate_fault_is_permanently_rejected(sandbox, make_hook):
    sandbox.fault("mastodon", "duplicate", operation="publish")
    with pytest.raises(PermanentlyRejected) as exc:
        make_hook().publish_once(OutgoingPost("重複"), idempotency_key="d-1")
    assert exc.value.kind == "duplicate"
    assert sandbox.posts("mastodon") == []


@pytest.mark.parametrize("how, wording", [("fault", "expired"), ("revoke", "revoked"), ("unknown", "invalid")])
def test_token_problems_are_auth_expired(sandbox, official, make_hook, how, wording):
    hook = make_hook()
    if how == "fault":
        sandbox.fault("mastodon", "expired_token", operation="verify")
    elif how == "revoke":
        sandbox.admin("POST", "/accounts/mastodon/koho_city/revoke")
    else:
        hook = make_hook({**official, "token": "not-a-token-of-this-instance"}, conn_id="mastodon_unknown")
    with pytest.raises(AuthExpired) as exc:
        hook.verify_credentials()
    assert wording in str(exc.value)


def test_a_connection_without_host_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MASTODON_NOHOST", json.dumps({"conn_type": "koho_mastodon", "password": "x" * 20}))
    with pytest.raises(InputError, match="host"):
        MastodonHook("mastodon_nohost").verify_credentials()


@pytest.mark.parametrize("count", [1, 4])
def test_images_are_uploaded_and_attached(sandbox, make_hook, tmp_path, count):
    hook = make_hook()
    images = tuple(write_png(tmp_path / f"map{n}.png", width=10 + n, height=5) for n in range(count))
    published = hook.publish(OutgoingPost("避難所マップ", image_urls=images), idempotency_key="d-1")

    status = hook.call("GET", f"/api/v1/statuses/{published.remote_id}").json()
    attachments = status["media_attachments"]
    assert [(a["type"], a["meta"]["original"]["width"]) for a in attachments] == [
        ("image", 10 + n) for n in range(count)
    ]
    assert all(a["url"] for a in attachments)
    assert sandbox.posts("mastodon")[0]["media"] == [a["id"] for a in attachments]


def test_too_many_or_too_large_images_are_refused_before_any_request(sandbox, make_hook, tmp_path):
    hook = make_hook()
    before = requests_seen(sandbox, "mastodon")
    five = tuple(write_png(tmp_path / f"p{n}.png") for n in range(5))
    with pytest.raises(PermanentlyRejected, match="at most 4 images") as many:
        hook.publish_once(OutgoingPost("写真五枚", image_urls=five), idempotency_key="d-1")
    big = write_png(tmp_path / "big.png", size=16 * 1024 * 1024 + 1)
    with pytest.raises(PermanentlyRejected, match="16,777,216 bytes") as large:
        hook.publish_once(OutgoingPost("大きな写真", image_urls=(big,)), idempotency_key="d-2")
    assert many.value.kind == large.value.kind == "bad_media"
    assert requests_seen(sandbox, "mastodon") == before and sandbox.posts("mastodon") == []


def test_media_still_processing_is_waited_for(sandbox, make_hook, tmp_path, waits):
    """A 202 upload (url null) is polled until processed: a status naming it earlier is a 422."""
    slow = sandbox.add_account("mastodon", "koho_slow", extra={"media_processing_reads": 2})
    hook = make_hook(slow)
    published = hook.publish(
        OutgoingPost("大きな地図", image_urls=(write_png(tmp_path / "a.png"),)), idempotency_key="d-1"
    )
    assert len(waits) == 3  # 202 on upload, 206 on two polls, 200 on the third
    status = hook.call("GET", f"/api/v1/statuses/{published.remote_id}").json()
    assert status["media_attachments"][0]["url"]


def test_media_that_never_finishes_is_left_for_a_later_try_after_bounded_polls(sandbox, make_hook, tmp_path, waits):
    slow = sandbox.add_account("mastodon", "koho_stuck", extra={"media_processing_reads": 100})
    hook = make_hook(slow)
    with pytest.raises(TransientError, match="still processing"):
        hook.publish(OutgoingPost("処理中", image_urls=(write_png(tmp_path / "a.png"),)), idempotency_key="d-1")
    assert len(waits) == MEDIA_POLLS  # one pause before each of the polls, none after the last
    assert sandbox.posts("mastodon") == []


def test_unknown_or_reused_media_ids_are_refused_as_mastodon_does(sandbox, make_hook, tmp_path):
    hook = make_hook()
    with pytest.raises(PermanentlyRejected) as unknown:
        hook.call("POST", "/api/v1/statuses", json={"status": "写真", "media_ids": ["999999"]})
    assert unknown.value.kind == "bad_media" and "not found or already attached" in str(unknown.value)
    first = hook.publish(OutgoingPost("一枚目", image_urls=(write_png(tmp_path / "a.png"),)), idempotency_key="d-1")
    [media_id] = sandbox.posts("mastodon")[0]["media"]
    with pytest.raises(PermanentlyRejected, match="already attached"):
        hook.call("POST", "/api/v1/statuses", json={"status": "二枚目", "media_ids": [media_id]})
    assert [p["post_id"] for p in sandbox.posts("mastodon")] == [first.remote_id]


def test_lost_answer_to_a_post_with_images_gives_one_status(sandbox, make_hook, tmp_path):
    """The uploads succeed, the status is applied but its answer lost: the retry with the same
    idempotency key returns that status, with the media uploaded once."""
    hook = make_hook()
    images = (write_png(tmp_path / "a.png"), write_png(tmp_path / "b.png"))
    sandbox.fault("mastodon", "lost_response", operation="publish")
    published = hook.publish_once(OutgoingPost("停電情報", image_urls=images), idempotency_key="d-1")
    [stored] = sandbox.posts("mastodon")
    assert stored["post_id"] == published.remote_id and len(stored["media"]) == 2
    assert len(sandbox.state.scratch["mastodon"]["media"]) == 2


def test_lost_answer_to_an_upload_is_retried_without_a_second_status(sandbox, make_hook, tmp_path):
    hook = make_hook()
    sandbox.fault("mastodon", "lost_response", operation="media")
    published = hook.publish_once(
        OutgoingPost("写真つき", image_urls=(write_png(tmp_path / "a.png"),)), idempotency_key="d-1"
    )
    [stored] = sandbox.posts("mastodon")
    assert stored["post_id"] == published.remote_id and len(stored["media"]) == 1
    assert len(sandbox.state.scratch["mastodon"]["media"]) == 2  # the lost one stays unattached


def test_token_never_appears_in_errors_or_logs(sandbox, official, make_hook, caplog):
    caplog.set_level(logging.DEBUG)
    hook = make_hook()
    hook.retry = RetryPolicy(max_attempts=1, base_delay=0.01, max_wait=0.5)
    messages: list[str] = []
    for kind in ("expired_token", "duplicate", "server_error", "rate_limit"):
        sandbox.fault("mastodon", kind, operation="publish", delay=1)
        with pytest.raises(PlatformError) as exc:
            hook.publish(OutgoingPost(f"試験 {kind}"), idempotency_key=kind)
        messages.append(str(exc.value))
    for text in [*messages, caplog.text]:
        assert official["token"] not in text
