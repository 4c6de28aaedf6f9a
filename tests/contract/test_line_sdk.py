"""The official LINE SDK (``line-bot-sdk`` v3) drives the LINE sandbox unchanged, apart from the host.

The retry key is the part that matters most: a repeat of an accepted key must come back as the
SDK's ``ApiException`` with status 409 and ``x-line-accepted-request-id``, and send nothing.
The SDK's own webhook parser checks the sandbox's signed webhook calls, and Koho's webhook receiver
reads the same events and refuses exactly the signatures the SDK's validator refuses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as pysecrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from linebot.v3 import SignatureValidator, WebhookParser
from linebot.v3 import insight as line_insight
from linebot.v3 import oauth as line_oauth
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    BroadcastRequest,
    Configuration,
    ErrorResponse,
    MessagingApi,
    PushMessageRequest,
    TextMessage,
)
from linebot.v3.webhooks import MessageEvent, TextMessageContent

from koho.feedback.line_webhook import LineChannel, feedback_item, receive
from koho.ledger import repo
from koho.ledger.db import Ledger
from sandbox.platforms.line import JST, sign, signed_webhook

HANDLE = "kohocity-sample"


@pytest.fixture
def channel_secret() -> str:
    return pysecrets.token_hex(16)


@pytest.fixture
def city(sandbox, channel_secret):
    return sandbox.add_account(
        "line",
        HANDLE,
        display_name="こほ市公式",
        followers=800,
        extra={"channel_secret": channel_secret, "message_quota": 5000},
    )


@pytest.fixture
def api(sandbox, city):
    with ApiClient(Configuration(host=f"{sandbox.url}/line", access_token=city["token"])) as client:
        yield MessagingApi(client)


def test_broadcast_with_a_retry_key_is_sent_once(sandbox, api):
    request = BroadcastRequest(messages=[TextMessage(text="【こほ市】明日は資源ごみの日です。")])
    key = str(uuid.uuid4())
    first = api.broadcast_with_http_info(request, x_line_retry_key=key)
    request_id = first.headers["x-line-request-id"]
    assert first.status_code == 200

    with pytest.raises(ApiException) as repeat:
        api.broadcast(request, x_line_retry_key=key)
    assert repeat.value.status == 409
    assert repeat.value.headers["x-line-accepted-request-id"] == request_id
    assert ErrorResponse.from_json(repeat.value.body).message == "The retry key is already accepted"
    assert [p["post_id"] for p in sandbox.posts("line")] == [request_id]


def test_push_conflict_repeats_the_sent_messages(sandbox, api):
    request = PushMessageRequest(to="U" + "1" * 32, messages=[TextMessage(text="職員向けテスト配信")])
    key = str(uuid.uuid4())
    sent = api.push_message(request, x_line_retry_key=key)
    with pytest.raises(ApiException) as repeat:
        api.push_message(request, x_line_retry_key=key)
    error = ErrorResponse.from_json(repeat.value.body)
    assert repeat.value.status == 409 and error.sent_messages[0].id == sent.sent_messages[0].id
    assert len(sandbox.posts("line")) == 1


def test_validation_errors_have_details(api):
    with pytest.raises(ApiException) as too_long:
        api.broadcast(BroadcastRequest(messages=[TextMessage(text="あ" * 5001)]))
    error = ErrorResponse.from_json(too_long.value.body)
    assert too_long.value.status == 400
    detail = error.details[0]
    assert (detail.var_property, detail.message) == ("messages[0].text", "Length must be between 0 and 5000")


def test_quota_bot_info_and_statistics(sandbox, city, api):
    api.broadcast(BroadcastRequest(messages=[TextMessage(text="お知らせ")]), x_line_retry_key=str(uuid.uuid4()))
    quota = api.get_message_quota()
    assert (quota.type, quota.value) == ("limited", 5000)
    assert api.get_message_quota_consumption().total_usage == 800  # one message per friend
    bot = api.get_bot_info()
    assert (bot.user_id, bot.basic_id, bot.display_name, bot.chat_mode) == (
        city["account_id"],
        "@kohocity-sample",
        "こほ市公式",
        "chat",
    )

    config = line_insight.Configuration(host=f"{sandbox.url}/line", access_token=city["token"])
    with line_insight.ApiClient(config) as client:
        insight = line_insight.Insight(client)
        yesterday = (datetime.now(JST) - timedelta(days=1)).strftime("%Y%m%d")
        followers = insight.get_number_of_followers(var_date=yesterday)
        assert (followers.status, followers.followers) == ("ready", 800)
        today = datetime.now(JST).strftime("%Y%m%d")
        assert insight.get_number_of_message_deliveries(var_date=today).status == "unready"
        [post] = sandbox.posts("line")
        event = insight.get_message_event(request_id=post["post_id"])
        assert event.overview.request_id == post["post_id"] and event.overview.delivered == 800


def test_token_verification(sandbox, city):
    config = line_oauth.Configuration(host=f"{sandbox.url}/line")
    with line_oauth.ApiClient(config) as client:
        tokens = line_oauth.ChannelAccessToken(client)
        assert tokens.verify_channel_token(access_token=city["token"]).expires_in == 0  # long-lived
        assert tokens.verify_channel_token_by_jwt(access_token=city["token"]).client_id == city["account_id"]


def test_sdk_webhook_parser_accepts_the_sandbox_signature(sandbox, city, channel_secret):
    sandbox.comment("line", HANDLE, "住民B", "公園の遊具が壊れています")
    body, signature = signed_webhook(sandbox.state, HANDLE)
    [event] = WebhookParser(channel_secret).parse(body.decode("utf-8"), signature)
    assert isinstance(event, MessageEvent) and isinstance(event.message, TextMessageContent)
    assert event.message.text == "公園の遊具が壊れています"
    with pytest.raises(InvalidSignatureError):
        WebhookParser(pysecrets.token_hex(16)).parse(body.decode("utf-8"), signature)


@pytest.mark.parametrize(
    "text",
    ["公園の遊具が壊れています", "abc\u202edcba", "🙏🙏", "<b>x</b>", "あ" * 50_000],
    ids=["japanese", "rtl-override", "emoji-only", "html", "50000-chars"],
)
def test_koho_reads_the_events_the_sdk_reads(sandbox, city, channel_secret, text):
    sandbox.comment("line", HANDLE, "住民C", text)
    body, signature = signed_webhook(sandbox.state, HANDLE)
    [sdk_event] = WebhookParser(channel_secret).parse(body.decode("utf-8"), signature)
    [koho_event] = json.loads(body)["events"]
    item = feedback_item(koho_event, "city-line", now=datetime.now(UTC))
    assert item is not None
    assert (item["remote_id"], item["author"], item["text"]) == (
        sdk_event.webhook_event_id,
        sdk_event.source.user_id,
        sdk_event.message.text,
    )
    assert item["created_at"] == datetime.fromtimestamp(sdk_event.timestamp / 1000, UTC)


def test_koho_and_the_sdk_agree_on_every_signature(sandbox, city, channel_secret, tmp_path):
    """Koho refuses exactly the calls the SDK's SignatureValidator refuses, and stores the others."""
    sandbox.comment("line", HANDLE, "住民D", "ごみの収集日を教えてください")
    body, good = signed_webhook(sandbox.state, HANDLE)
    other_body = body.replace("ごみ".encode(), "ゴミ".encode())
    cases = {
        "good": (body, good),
        "other secret": (body, sign(body, pysecrets.token_hex(16))),
        "other body": (other_body, good),
        "truncated": (body, good[:-4]),
        "empty": (body, ""),
        "trailing newline in body": (body + b"\n", good),
        "hex instead of base64": (body, hmac.new(channel_secret.encode(), body, hashlib.sha256).hexdigest()),
    }
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    with ledger.session() as s:
        repo.upsert_accounts(
            s, [{"id": "city-line", "platform": "line", "handle": HANDLE, "display_name": "こほ市", "department": "pr"}]
        )
    validator = SignatureValidator(channel_secret)
    channel = LineChannel("city-line", city["account_id"], channel_secret)
    for name, (payload, signature) in cases.items():
        sdk_accepts = validator.validate(payload.decode("utf-8"), signature)
        koho_accepts = receive(payload, signature, [channel], ledger).status != 401
        assert koho_accepts == sdk_accepts, name
    assert validator.validate(body.decode("utf-8"), good)
