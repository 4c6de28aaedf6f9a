"""The LINE receiver service: the body limit while reading, failures, logs, channels from Airflow,
and the sandbox delivering a resident's message to it over HTTP as LINE would."""

from __future__ import annotations

import json
import logging
import secrets as pysecrets
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select

from koho import secrets
from koho.accounts.sync import registry_rows
from koho.config import load_config
from koho.feedback.line_receiver import PATH, CachedChannels, channels_from_airflow, create_app
from koho.feedback.line_webhook import LineChannel, channels_from_connections, signing_channel
from koho.ledger import repo
from koho.ledger.db import Ledger
from koho.ledger.models import FeedbackItem
from sandbox.bootstrap import load_or_create_secrets, register_accounts
from sandbox.platforms.line import sign, signed_webhook
from sandbox.server import SandboxServer, free_port
from tests.unit.ledger.ledger_factories import account_row

BOT = "U" + "a" * 32
TEXT = "市役所前の街灯が消えています"


@pytest.fixture
def channel() -> LineChannel:
    return LineChannel("city-line", BOT, pysecrets.token_hex(16))


@pytest.fixture
def line_ledger(ledger: Ledger) -> Ledger:
    with ledger.session() as s:
        repo.upsert_accounts(s, [account_row("city-line", platform="line")])
    return ledger


@pytest.fixture
def client(channel, line_ledger) -> TestClient:
    return TestClient(create_app(lambda: [channel], lambda: line_ledger, max_bytes=2_000))


def body_of(text: str = TEXT, event_id: str = "01HV0000000000000000000001") -> bytes:
    event = {
        "type": "message",
        "timestamp": 1_775_000_000_000,
        "source": {"type": "user", "userId": "U" + "1" * 32},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False},
        "message": {"id": "1", "type": "text", "text": text},
    }
    return json.dumps({"destination": BOT, "events": [event]}, ensure_ascii=False).encode("utf-8")


def texts(ledger: Ledger) -> list[str]:
    with ledger.session(readonly=True) as s:
        return list(s.scalars(select(FeedbackItem.text)))


def test_a_signed_call_is_stored_and_answered_with_counts_only(client, channel, line_ledger):
    body = body_of()
    response = client.post(PATH, content=body, headers={"X-Line-Signature": sign(body, channel.channel_secret)})
    assert response.status_code == 200
    assert response.json() == {"message": "ok", "stored": 1, "duplicates": 0, "ignored": 0}
    assert texts(line_ledger) == [TEXT]


def test_an_unsigned_call_is_a_401_with_nothing_stored(client, line_ledger):
    response = client.post(PATH, content=body_of())
    assert response.status_code == 401 and texts(line_ledger) == []


def test_a_declared_length_over_the_limit_is_refused_unread(client, channel, line_ledger):
    body = body_of("あ" * 1_000)
    response = client.post(PATH, content=body, headers={"X-Line-Signature": sign(body, channel.channel_secret)})
    assert response.status_code == 413 and texts(line_ledger) == []


def test_a_chunked_body_growing_past_the_limit_is_refused(client, channel, line_ledger):
    body = body_of("あ" * 1_000)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
        yield from (body[i : i + 500] for i in range(0, len(body), 500))

    response = client.post(PATH, content=chunks(), headers={"X-Line-Signature": sign(body, channel.channel_secret)})
    assert response.status_code == 413 and texts(line_ledger) == []


def test_a_ledger_failure_is_a_500_that_line_may_redeliver_and_logs_no_secret_or_text(channel, caplog):
    def broken() -> Ledger:
        raise RuntimeError(f"cannot connect with {channel.channel_secret}")

    secrets.register(channel.channel_secret)
    client = TestClient(create_app(lambda: [channel], broken))
    body = body_of()
    with caplog.at_level(logging.INFO, logger="koho.feedback.line_receiver"):
        response = client.post(PATH, content=body, headers={"X-Line-Signature": sign(body, channel.channel_secret)})
    assert response.status_code == 500
    assert "RuntimeError" in caplog.text
    assert channel.channel_secret not in caplog.text and channel.channel_secret not in response.text
    assert TEXT not in caplog.text


def test_logs_of_a_stored_call_hold_counts_not_the_residents_text(client, channel, caplog):
    body = body_of()
    with caplog.at_level(logging.INFO, logger="koho.feedback.line_receiver"):
        client.post(PATH, content=body, headers={"X-Line-Signature": sign(body, channel.channel_secret)})
    assert "1 stored" in caplog.text and TEXT not in caplog.text


def test_cached_channels_are_loaded_again_only_after_the_refresh_time(channel):
    now, loads = [0.0], []

    def load() -> list[LineChannel]:
        loads.append(now[0])
        return [channel]

    cached = CachedChannels(load, refresh_seconds=60, clock=lambda: now[0])
    cached()
    now[0] = 59.0
    cached()
    now[0] = 60.0
    assert cached() == [channel]
    assert loads == [0.0, 60.0]


def test_channels_from_airflow_reads_the_registrys_line_accounts_connections(monkeypatch, caplog):
    # include/config/accounts.yaml has two active LINE accounts: koho_city_line and koho_kosodate_line.
    extra = {"account_id": BOT, "channel_secret": "city-channel-secret"}
    monkeypatch.setenv("AIRFLOW_CONN_KOHO_CITY_LINE", json.dumps({"conn_type": "koho_line", "extra": extra}))
    monkeypatch.setenv("AIRFLOW_CONN_KOHO_KOSODATE_LINE", json.dumps({"conn_type": "koho_line", "extra": {}}))
    with caplog.at_level(logging.ERROR):
        channels = channels_from_airflow()
    assert channels == [LineChannel("city-line", BOT, "city-channel-secret")]
    assert "kosodate-line" in caplog.text and "channel_secret" in caplog.text


class ReceiverServer(SandboxServer):
    """The receiver on a loopback port, started and stopped like the sandbox server."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.app = app
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self._thread = threading.Thread(target=self._server.run, name="koho-line-receiver", daemon=True)


def test_the_sandbox_delivers_a_residents_message_signed_as_line_does(sandbox, line_ledger):
    secret = pysecrets.token_hex(16)
    city = sandbox.add_account("line", "kohocity-sample", extra={"channel_secret": secret})
    channel = LineChannel("city-line", city["account_id"], secret)
    with ReceiverServer(create_app(lambda: [channel], lambda: line_ledger)) as receiver:
        url = f"{receiver.url}{PATH}"
        first = sandbox.line_webhook(city["handle"], url, text=TEXT)
        forged = sandbox.line_webhook(city["handle"], url, text="二通目", bad_signature=True)
        assert texts(line_ledger) == [TEXT]
        # LINE redelivers what was not acknowledged: all the account's messages, signed properly.
        again = sandbox.line_webhook(city["handle"], url)
    assert (first["status"], json.loads(first["body"])["stored"]) == (200, 1)
    assert forged["status"] == 401
    assert again["status"] == 200 and len(again["event_ids"]) == 2
    assert json.loads(again["body"]) == {"message": "ok", "stored": 1, "duplicates": 1, "ignored": 0}
    assert sorted(texts(line_ledger)) == sorted([TEXT, "二通目"])


def test_the_health_check_answers_without_touching_channels_or_ledger():
    def untouched():
        raise AssertionError("the health check must not load accounts or open the ledger")

    assert TestClient(create_app(untouched, untouched)).get("/healthz").json() == {"status": "ok"}


def test_the_demo_citys_line_connections_verify_the_sandboxs_webhook_calls(sandbox, tmp_path):
    rows = [row for row in registry_rows(load_config()) if row["platform"] == "line"]
    tokens = load_or_create_secrets(tmp_path / "secrets.json", [row["id"] for row in rows])
    connections = register_accounts(sandbox.url, rows, tokens)
    pairs = [(row["id"], json.loads(connections[row["connection_id"]]["extra"])) for row in rows]
    channels, problems = channels_from_connections(pairs)
    assert problems == [] and {c.account_id for c in channels} == {"city-line", "kosodate-line"}
    for channel in channels:
        sandbox.comment("line", channel.bot_user_id, "住民", f"{channel.account_id} へ")
        body, signature = signed_webhook(sandbox.state, channel.bot_user_id)
        assert signing_channel(body, signature, channels) == channel


def test_accounts_that_cannot_be_loaded_are_a_500_not_a_crash(line_ledger):
    def unreadable() -> list[LineChannel]:
        raise OSError("accounts.yaml not readable")

    client = TestClient(create_app(unreadable, lambda: line_ledger))
    body = body_of()
    response = client.post(PATH, content=body, headers={"X-Line-Signature": "x"})
    assert response.status_code == 500 and texts(line_ledger) == []
