"""FacebookHook against the sandbox's Graph API: the Page contract, the error taxonomy, exactly once."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests

from koho.platforms.errors import (
    AuthExpired,
    NotSupported,
    PermanentlyRejected,
    RateLimited,
    TransientError,
)
from koho.platforms.facebook import FacebookHook
from koho.platforms.types import OutgoingPost
from tests.unit.platforms.hook_helpers import errors_under_faults, sleep_until

P = "facebook"
NEWS = "年末年始（12月29日〜1月3日）は市役所の窓口をお休みします。"


@pytest.fixture
def page(sandbox):
    return sandbox.add_account(P, "koho_city", display_name="光歩市役所", followers=1200)


@pytest.fixture
def make_hook(hook_factory, page):
    return hook_factory(FacebookHook, P, page)


def live_posts(sandbox) -> list[dict]:
    return sandbox.posts(P)


def test_publish_read_metrics_comments_delete(sandbox, hook, page):
    post = OutgoingPost(NEWS, link="https://www.city.koho.example.jp/news/1229")
    published = hook.publish_once(post, idempotency_key="d-1")

    assert published.remote_id.startswith(f"{page['account_id']}_")
    assert published.url.endswith(published.remote_id.split("_")[1])
    [stored] = live_posts(sandbox)
    assert (stored["text"], stored["link"]) == (NEWS, post.link)

    remote = hook.get_post(published.remote_id)
    assert remote.text == NEWS and remote.created_at.tzinfo is not None

    sandbox.state.post(P, published.remote_id).metrics.update(
        {"impressions": 340, "likes": 12, "reposts": 2, "replies": 1, "clicks": 7}
    )
    sandbox.comment(P, "koho_city", "住民A", "ありがとうございます", post_id=published.remote_id)
    metrics = hook.post_metrics(published.remote_id)
    assert (metrics.impressions, metrics.likes, metrics.reposts, metrics.replies, metrics.clicks) == (340, 12, 2, 2, 7)

    first = hook.comments_since(None)
    assert [(c.author, c.text, c.post_id) for c in first.comments] == [
        ("住民A", "ありがとうございます", published.remote_id)
    ]
    sandbox.comment(P, "koho_city", "住民B", "駐車場は使えますか？", post_id=published.remote_id)
    second = hook.comments_since(first.cursor)
    assert [c.text for c in second.comments] == ["駐車場は使えますか？"]
    assert hook.comments_since(second.cursor).comments == []

    hook.delete(published.remote_id)
    assert live_posts(sandbox) == []
    with pytest.raises(PermanentlyRejected) as gone:
        hook.get_post(published.remote_id)
    assert gone.value.kind == "not_found"


def test_comments_in_the_same_second_are_not_lost_or_repeated(sandbox, hook):
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-2")
    for n in range(3):
        sandbox.comment(P, "koho_city", f"住民{n}", f"コメント{n}", post_id=published.remote_id)
    page1 = hook.comments_since(None)
    sandbox.comment(P, "koho_city", "住民3", "コメント3", post_id=published.remote_id)
    page2 = hook.comments_since(page1.cursor)
    assert [c.text for c in page1.comments] == ["コメント0", "コメント1", "コメント2"]
    assert [c.text for c in page2.comments] == ["コメント3"]


def test_comments_are_read_across_pages(sandbox, hook):
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-2b")
    for n in range(120):  # the comments edge pages by 100
        sandbox.comment(P, "koho_city", f"住民{n}", f"ご意見{n}", post_id=published.remote_id)
    page = hook.comments_since(None)
    assert len({c.remote_id for c in page.comments}) == 120
    assert page.comments[0].text == "ご意見0" and page.comments[-1].text == "ご意見119"


def test_images_go_through_photos(sandbox, hook):
    one = hook.publish_once(
        OutgoingPost("花火大会のお知らせ", image_urls=("https://cdn.example.jp/hanabi.jpg",)), idempotency_key="d-3"
    )
    two = hook.publish_once(
        OutgoingPost("紅葉の写真です", image_urls=("https://cdn.example.jp/a.jpg", "https://cdn.example.jp/b.jpg")),
        idempotency_key="d-4",
    )
    media = {p["post_id"]: p["media"] for p in live_posts(sandbox)}
    assert media == {
        one.remote_id: ["https://cdn.example.jp/hanabi.jpg"],
        two.remote_id: ["https://cdn.example.jp/a.jpg", "https://cdn.example.jp/b.jpg"],
    }


def test_replies_are_not_supported(hook):
    assert hook.capabilities.replies is False
    with pytest.raises(NotSupported):
        hook.publish(OutgoingPost("続報です", reply_to="1_2"), idempotency_key="d-5")


def test_verify_credentials_reads_token_expiry(sandbox, connect):
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=50)
    account = sandbox.add_account(
        P, "koho_kanko", display_name="光歩市観光課", followers=88, token_expires_at=expires.isoformat()
    )
    info = FacebookHook(connect(P, account)).verify_credentials()
    assert (info.remote_id, info.handle, info.display_name, info.followers) == (
        account["account_id"],
        "koho_kanko",
        "光歩市観光課",
        88,
    )
    assert info.token_expires_at == expires


def test_page_token_without_expiry(hook, page):
    assert hook.verify_credentials().token_expires_at is None
    assert hook.account_metrics().followers == 1200


def test_search_finds_lookalike(sandbox, hook):
    sandbox.add_account(P, "koho_city_fan", token=None, display_name="光歩市役所ファンクラブ")
    sandbox.add_account(P, "other_town", token=None, display_name="隣町役場")
    found = {a.handle: a.display_name for a in hook.search_accounts("光歩市役所")}
    assert found == {"koho_city": "光歩市役所", "koho_city_fan": "光歩市役所ファンクラブ"}


def test_rate_limit_waits_for_announced_reset(sandbox, hook, waits):
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-6")
    sandbox.fault(P, "rate_limit", operation="read", delay=90)
    assert hook.get_post(published.remote_id).text == NEWS
    # estimated_time_to_regain_access is in whole minutes: 90 s is announced as 2 minutes.
    assert 115 <= waits[0] <= 121
    assert all(w <= 121 for w in waits)


def test_usage_at_100_percent_waits_before_sending(sandbox, hook, waits):
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-7")
    sandbox.limit(P, "calls", 2, 120)
    hook.get_post(published.remote_id)
    hook.get_post(published.remote_id)  # spends the window: usage 100 %, regain in 2 minutes
    window = hook.rate_limit_window("usage")
    assert (window.limit, window.remaining) == (100, 0)
    waits.clear()
    with pytest.raises(PermanentlyRejected):
        hook.get_post("0_0")  # waits first, then is answered (not throttled)
    assert 115 <= waits[0] <= 121
    assert sandbox.admin("GET", "/stats")["rate_limited"] == []


def test_server_error_on_read_is_retried(sandbox, hook, waits):
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-8")
    sandbox.fault(P, "server_error", operation="read")
    assert hook.get_post(published.remote_id).remote_id == published.remote_id
    assert len(waits) == 1


def test_server_error_on_publish_posts_exactly_once(sandbox, hook):
    sandbox.fault(P, "server_error", operation="publish")
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-9")
    assert [p["post_id"] for p in live_posts(sandbox)] == [published.remote_id]


def test_lost_response_is_reconciled_by_published_posts(sandbox, hook):
    sandbox.fault(P, "lost_response", operation="publish")
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-10")
    assert published.reconciled
    assert [p["post_id"] for p in live_posts(sandbox)] == [published.remote_id]


def test_maybe_sent_before_finds_the_post_instead_of_posting(sandbox, hook, make_hook):
    first = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-11")
    again = make_hook().publish_once(OutgoingPost(NEWS), idempotency_key="d-11", maybe_sent_before=True)
    assert again.reconciled and again.remote_id == first.remote_id
    assert len(live_posts(sandbox)) == 1


def test_duplicate_is_rejected_as_duplicate(sandbox, hook):
    sandbox.fault(P, "duplicate", operation="publish")
    with pytest.raises(PermanentlyRejected) as fault:
        hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-12")
    assert fault.value.kind == "duplicate"
    hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-13")
    with pytest.raises(PermanentlyRejected) as repeat:  # Facebook's own check: same as the latest post
        hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-14")
    assert repeat.value.kind == "duplicate" and repeat.value.code == "506/1455006"
    assert len(live_posts(sandbox)) == 1


def test_expired_and_revoked_tokens(sandbox, hook, connect):
    sandbox.fault(P, "expired_token")
    with pytest.raises(AuthExpired) as expired:
        hook.verify_credentials()
    assert "expired" in str(expired.value)
    old = sandbox.add_account(P, "koho_old", token_expires_at=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    with pytest.raises(AuthExpired):
        FacebookHook(connect(P, old)).verify_credentials()
    sandbox.admin("POST", "/accounts/facebook/koho_city/revoke")
    with pytest.raises(AuthExpired):
        hook.account_metrics()


def test_delete_after_a_lost_response_is_done(sandbox, hook):
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-15")
    sandbox.fault(P, "lost_response", operation="delete")
    hook.delete(published.remote_id)
    assert live_posts(sandbox) == []


def test_retired_metric_names_are_reported_not_fatal(sandbox, make_hook, capsys):
    hook = make_hook(post_metrics="post_impressions,post_clicks")
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-16")
    sandbox.state.post(P, published.remote_id).metrics.update({"likes": 4, "impressions": 99})
    capsys.readouterr()
    metrics = hook.post_metrics(published.remote_id)
    assert (metrics.likes, metrics.impressions) == (4, None)
    # Hook logs go through Airflow's structlog logger, which writes to stdout.
    assert "update the connection extra 'post_metrics'" in capsys.readouterr().out
    configured = make_hook(post_metrics='["post_media_view"]').post_metrics(published.remote_id)
    assert (configured.impressions, configured.clicks) == (99, None)


def _response(status: int, body: dict, headers: dict | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update({"Content-Type": "application/json", **(headers or {})})
    return response


@pytest.mark.parametrize(
    ("code", "subcode", "expected", "kind"),
    [
        (1, None, TransientError, None),
        (2, None, TransientError, None),
        (4, None, RateLimited, None),
        (17, None, RateLimited, None),
        (32, None, RateLimited, None),
        (613, None, RateLimited, None),
        (80001, None, RateLimited, None),
        (190, 463, AuthExpired, None),
        (10, None, PermanentlyRejected, "forbidden"),
        (200, None, PermanentlyRejected, "forbidden"),
        (299, None, PermanentlyRejected, "forbidden"),
        (368, None, PermanentlyRejected, "forbidden"),
        (506, 1455006, PermanentlyRejected, "duplicate"),
        (100, None, PermanentlyRejected, "invalid"),
        (100, 33, PermanentlyRejected, "not_found"),
    ],
)
def test_graph_error_codes_map_to_the_taxonomy(hook, code, subcode, expected, kind):
    err = {"message": "m", "type": "OAuthException", "code": code, "fbtrace_id": "Axyz"}
    if subcode:
        err["error_subcode"] = subcode
    error = hook.classify_error(_response(400, {"error": err}))
    assert type(error) is expected
    assert getattr(error, "kind", None) == kind
    assert "fbtrace_id Axyz" in str(error)


def test_throttle_reset_comes_from_business_use_case_header(hook):
    usage = {
        "1": [
            {
                "type": "pages",
                "call_count": 100,
                "total_cputime": 20,
                "total_time": 20,
                "estimated_time_to_regain_access": 3,
            }
        ]
    }
    error = hook.classify_error(
        _response(400, {"error": {"message": "m", "code": 80001}}, {"X-Business-Use-Case-Usage": json.dumps(usage)})
    )
    assert isinstance(error, RateLimited)
    assert 175 <= error.seconds_to_wait() <= 180
    info = hook.parse_rate_limit(
        _response(200, {}, {"X-App-Usage": json.dumps({"call_count": 42, "total_cputime": 7, "total_time": 9})})
    )
    assert (info.limit, info.remaining, info.reset_at) == (100, 58, None)


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def test_token_never_appears_in_errors_or_logs(sandbox, hook, page, caplog, capsys):
    token = page["token"]
    caplog.set_level(logging.DEBUG)
    # urllib3's own logger, read directly: caplog depends on propagation, which Airflow's
    # logging set-up (imported by other tests) may have turned off.
    wire = _ListHandler()
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.addHandler(wire)
    previous_level = urllib3_log.level
    urllib3_log.setLevel(logging.DEBUG)
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="d-17")
    hook.verify_credentials()  # sends the token as debug_token's input_token
    messages = errors_under_faults(
        sandbox,
        P,
        ("expired_token", "rate_limit", "server_error"),
        lambda _kind: hook.get_post(published.remote_id),
        count=5,
    )
    assert len(messages) == 3
    assert all(token not in m for m in messages)
    urllib3_log.removeHandler(wire)
    urllib3_log.setLevel(previous_level)
    assert "input_token=***" in wire.text  # urllib3's request line was captured, redacted
    assert token not in wire.text
    assert token not in caplog.text
    assert token not in "".join(capsys.readouterr())  # the hook's own (structlog) log lines


def test_an_unanswered_post_is_given_time_to_land_before_the_account_is_read(sandbox, page, hook_factory):
    """The first request outlives the hook's timeout and is applied later; meanwhile another post
    becomes the Page's latest, so Facebook's duplicate check would not catch a second copy. The
    hook waits ``in_flight_grace`` before reading, finds the late post and does not send again."""
    time_out_after = 0.3
    make_hook = hook_factory(FacebookHook, P, page, timeout=time_out_after)
    hook, other = make_hook(), make_hook()
    sandbox.fault(P, "slow", operation="publish", delay=1.0, count=1)
    asked: list[float] = []
    hook._sleep = sleep_until(lambda: any(p["text"] == NEWS for p in live_posts(sandbox)), asked)
    published = hook.publish_once(OutgoingPost(NEWS), idempotency_key="late-1")
    other.publish_once(OutgoingPost("別のお知らせです。"), idempotency_key="other-1")

    assert published.reconciled
    assert FacebookHook.in_flight_grace in asked
    assert [p["text"] for p in live_posts(sandbox)].count(NEWS) == 1
