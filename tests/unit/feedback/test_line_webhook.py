"""The LINE webhook receiver: signatures, bad input of every kind, and storage once per event.

Bodies are signed with the sandbox's signer (the contract test pins it to the LINE SDK's), and
stored in a real ledger: SQLite here, and Postgres for the storage-once cases.
"""

from __future__ import annotations

import json
import secrets as pysecrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from koho.feedback.line_webhook import (
    NUL_SYMBOL,
    LineChannel,
    channels_from_connections,
    receive,
    storable_text,
)
from koho.ledger import repo
from koho.ledger.db import Ledger, dispose_engine
from koho.ledger.models import Base, FeedbackItem
from sandbox.platforms.line import sign
from tests.unit.ledger.conftest import postgres  # noqa: F401 - the Postgres server fixture
from tests.unit.ledger.ledger_factories import account_row

NOW = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
BOT = "U" + "a" * 32
OTHER_BOT = "U" + "b" * 32
RESIDENT = "U" + "1" * 32


@pytest.fixture
def city() -> LineChannel:
    return LineChannel("city-line", BOT, pysecrets.token_hex(16))


@pytest.fixture
def kosodate() -> LineChannel:
    return LineChannel("kosodate-line", OTHER_BOT, pysecrets.token_hex(16))


@pytest.fixture(scope="module")
def postgres_url(postgres) -> str:  # noqa: F811 - the imported fixture is this one's argument
    """One migrated Postgres database for this module; each test empties it first."""
    url = postgres.create_database("line_webhook")
    Ledger(url).migrate()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path) -> Iterator[Ledger]:
    """A migrated ledger holding just the two LINE accounts, on SQLite and on Postgres."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        Ledger(url).migrate()
    else:
        url = request.getfixturevalue("postgres_url")
    ledger = Ledger(url)
    with ledger.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    with ledger.session() as s:
        repo.upsert_accounts(s, [account_row(a, platform="line") for a in ("city-line", "kosodate-line")])
    yield ledger
    if request.param == "sqlite":
        dispose_engine(url)


def event(event_id: str = "01HV0000000000000000000001", text: str = "公園の遊具が壊れています", **overrides) -> dict:
    """A text message event as LINE delivers it."""
    value = {
        "type": "message",
        "mode": "active",
        "timestamp": int(NOW.timestamp() * 1000),
        "source": {"type": "user", "userId": RESIDENT},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False},
        "replyToken": "r" * 32,
        "message": {"id": "468789577898262530", "type": "text", "quoteToken": "q", "text": text},
    }
    value.update(overrides)
    return value


def body_of(*events: dict, destination: str = BOT) -> bytes:
    return json.dumps({"destination": destination, "events": list(events)}, ensure_ascii=False).encode("utf-8")


def deliver(ledger: Ledger, body: bytes, secret: str | None, channels: list[LineChannel], **kw):
    signature = sign(body, secret) if secret else None
    return receive(body, signature, channels, ledger, now=NOW, **kw)


def stored(ledger: Ledger) -> list[FeedbackItem]:
    with ledger.session(readonly=True) as s:
        return list(s.scalars(select(FeedbackItem).order_by(FeedbackItem.id)))


def test_a_signed_message_is_stored_with_its_event_id_sender_and_time(ledger, city, kosodate):
    answer = deliver(ledger, body_of(event()), city.channel_secret, [kosodate, city])
    assert (answer.status, answer.stored, answer.account_id) == (200, 1, "city-line")
    [item] = stored(ledger)
    assert (item.account_id, item.platform, item.remote_id, item.author) == (
        "city-line",
        "line",
        "01HV0000000000000000000001",
        RESIDENT,
    )
    assert item.text == "公園の遊具が壊れています"
    assert item.created_at.replace(tzinfo=UTC) == NOW


def test_a_redelivered_event_is_stored_once(ledger, city):
    assert deliver(ledger, body_of(event()), city.channel_secret, [city]).stored == 1
    again = event(deliveryContext={"isRedelivery": True})
    answer = deliver(ledger, body_of(again), city.channel_secret, [city])
    assert (answer.status, answer.stored, answer.duplicates) == (200, 0, 1)
    assert len(stored(ledger)) == 1


def test_a_replayed_body_stores_nothing_new(ledger, city):
    body = body_of(event("01HV0000000000000000000001"), event("01HV0000000000000000000002", "二件目"))
    assert deliver(ledger, body, city.channel_secret, [city]).stored == 2
    replay = deliver(ledger, body, city.channel_secret, [city])
    assert (replay.status, replay.stored, replay.duplicates) == (200, 0, 2)
    assert [i.text for i in stored(ledger)] == ["公園の遊具が壊れています", "二件目"]


def test_the_same_event_twice_in_one_body_is_stored_once(ledger, city):
    answer = deliver(ledger, body_of(event(), event()), city.channel_secret, [city])
    assert (answer.stored, answer.duplicates) == (1, 1)
    assert len(stored(ledger)) == 1


def test_an_unsigned_call_is_refused_and_nothing_stored(ledger, city):
    answer = deliver(ledger, body_of(event()), None, [city])
    assert (answer.status, answer.message) == (401, "no X-Line-Signature header")
    assert stored(ledger) == []


def test_a_signature_with_a_wrong_secret_is_refused(ledger, city):
    answer = deliver(ledger, body_of(event()), pysecrets.token_hex(16), [city])
    assert answer.status == 401 and stored(ledger) == []


def test_the_signature_of_a_different_body_is_refused(ledger, city):
    signature = sign(body_of(event(text="こんにちは")), city.channel_secret)
    forged = body_of(event(text="<script>alert(1)</script>"))
    answer = receive(forged, signature, [city], ledger, now=NOW)
    assert answer.status == 401 and stored(ledger) == []


def test_a_body_signed_by_one_channel_for_another_destination_is_refused(ledger, city, kosodate):
    answer = deliver(ledger, body_of(event(), destination=OTHER_BOT), city.channel_secret, [city, kosodate])
    assert answer.status == 401 and "another channel" in answer.message
    assert stored(ledger) == []


def test_an_unknown_destination_is_refused_so_that_line_keeps_the_messages(ledger, city):
    stranger = "U" + "f" * 32
    answer = deliver(ledger, body_of(event(), destination=stranger), city.channel_secret, [city])
    assert answer.status == 403 and stranger in answer.message
    assert stored(ledger) == []


def test_an_oversized_body_is_refused_before_the_signature_is_checked(ledger, city):
    body = body_of(event(text="あ" * 400))
    answer = deliver(ledger, body, city.channel_secret, [city], max_bytes=len(body) - 1)
    assert answer.status == 413 and stored(ledger) == []
    assert deliver(ledger, body, city.channel_secret, [city], max_bytes=len(body)).status == 200


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe{}", b"[]", b'{"destination": "x"}', b'{"events": {}}'])
def test_malformed_json_is_a_400_even_when_signed(ledger, city, raw):
    answer = deliver(ledger, raw, city.channel_secret, [city])
    assert answer.status == 400 and stored(ledger) == []


def test_a_nul_is_stored_as_the_null_symbol(ledger, city):
    deliver(ledger, body_of(event(text="ごみ\x00収集")), city.channel_secret, [city])
    assert stored(ledger)[0].text == f"ごみ{NUL_SYMBOL}収集"


@pytest.mark.parametrize(
    "text",
    [
        "abc\u202edcba\u202c 住所変更",  # RTL override
        "🙏🙏🙏",  # emoji only
        "👨‍👩‍👧",  # one emoji of joined code points
        "<script>alert('x')</script><img src=x onerror=alert(1)>",  # stored as sent, escaped when shown
        "あ" * 50_000,
        "",  # an empty text is a real message
    ],
    ids=["rtl-override", "emoji-only", "zwj-emoji", "html-script", "50000-chars", "empty"],
)
def test_text_is_stored_exactly_as_received(ledger, city, text):
    answer = deliver(ledger, body_of(event(text=text)), city.channel_secret, [city])
    assert answer.stored == 1
    assert stored(ledger)[0].text == text
    assert text not in json.dumps(answer.body(), ensure_ascii=False) or text == ""


def test_a_lone_surrogate_becomes_the_replacement_character(ledger, city):
    body = body_of(event()).replace("公園の遊具が壊れています".encode(), b"a\\ud800b")
    deliver(ledger, body, city.channel_secret, [city])
    assert stored(ledger)[0].text == "a\ufffdb"


def test_follow_unfollow_and_other_events_are_acknowledged_not_stored(ledger, city):
    follow = {"type": "follow", "webhookEventId": "01HVF", "timestamp": 1, "source": {"userId": RESIDENT}}
    unfollow = {"type": "unfollow", "webhookEventId": "01HVU", "timestamp": 1, "source": {"userId": RESIDENT}}
    answer = deliver(ledger, body_of(follow, unfollow, event()), city.channel_secret, [city])
    assert (answer.status, answer.stored, answer.ignored) == (200, 1, 2)
    assert [i.remote_id for i in stored(ledger)] == ["01HV0000000000000000000001"]


def test_the_console_verify_call_without_events_is_acknowledged(ledger, city):
    answer = deliver(ledger, body_of(), city.channel_secret, [city])
    assert (answer.status, answer.stored) == (200, 0)


def test_a_non_text_message_is_stored_as_a_placeholder(ledger, city):
    sticker = event(message={"id": "1", "type": "sticker", "packageId": "446", "stickerId": "1988"})
    deliver(ledger, body_of(sticker), city.channel_secret, [city])
    assert stored(ledger)[0].text == "[sticker]"


@pytest.mark.parametrize(
    ("broken", "field"),
    [
        ("not an event", "events[0].event"),
        (event(webhookEventId=None), "events[0].webhookEventId"),
        (event(webhookEventId="x" * 300), "events[0].webhookEventId"),
        (event(message="hello"), "events[0].message"),
        (event(message={"id": "1", "type": "text", "text": 42}), "events[0].message.text"),
        (event(timestamp="yesterday"), "events[0].timestamp"),
        (event(timestamp=10**20), "events[0].timestamp"),
        (event(source={"userId": "U" * 400}), "events[0].source.userId"),
    ],
)
def test_a_malformed_event_is_reported_by_field_and_the_others_are_stored(ledger, city, broken, field):
    answer = deliver(ledger, body_of(broken, event("01HV0000000000000000000009")), city.channel_secret, [city])
    assert (answer.status, answer.stored) == (200, 1)
    [problem] = answer.problems
    assert (problem.where.field, problem.where.account) == (field, "city-line")
    assert [i.remote_id for i in stored(ledger)] == ["01HV0000000000000000000009"]


def test_storable_text_leaves_ordinary_text_alone():
    assert storable_text("Ｒ６年度　申請\n\t改行") == "Ｒ６年度　申請\n\t改行"


def test_channels_from_connections_reports_an_account_lacking_a_field():
    channels, problems = channels_from_connections(
        [
            ("city-line", {"account_id": BOT, "channel_secret": "s3cret-value"}),
            ("kosodate-line", {"account_id": OTHER_BOT}),
        ]
    )
    assert [c.account_id for c in channels] == ["city-line"]
    assert problems == ["LINE account kosodate-line: connection extra channel_secret is empty"]
    assert "s3cret-value" not in repr(channels)
