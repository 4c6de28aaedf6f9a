"""The watcher's wiring without Airflow: the windowed trigger ends its window, drafts are recorded
once per key, a new watch starts from the ledger's keys, and an approval becomes the broadcast form."""

from __future__ import annotations

import asyncio
import importlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from koho.emergency.drafts import EmergencyDraft
from koho.emergency.watch import (
    WindowedJmaFeedTrigger,
    broadcast_conf,
    draft_entry_id,
    recent_draft_keys,
    record_drafts,
    review_requests,
    settle_draft,
)

FEED = "/jma/developer/xml/feed/extra.xml"
KINDS = ["大雨特別警報", "大雨警報", "洪水警報", "暴風警報"]


def draft(key: str, text: str = "【こほ市】こほ市に大雨警報が発表されました。") -> EmergencyDraft:
    return EmergencyDraft(key=key, message=text, severity="high", link="https://www.jma.go.jp/x", source="doc.xml")


def test_windowed_trigger_round_trips():
    trigger = WindowedJmaFeedTrigger(
        until="2026-12-01T00:00:00+00:00",
        feed_url="http://127.0.0.1:1/f.xml",
        area_codes=["1229900"],
        kinds=KINDS,
        seen_keys=["a"],
        settle_until="2026-11-30T23:30:15+00:00",
    )
    path, kwargs = trigger.serialize()
    assert path == "koho.emergency.watch.WindowedJmaFeedTrigger"
    assert kwargs["settle_until"] == "2026-11-30T23:30:15+00:00"
    module, _, name = path.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (path, kwargs)
    with pytest.raises(ValueError, match="time zone"):
        WindowedJmaFeedTrigger(
            until="2026-12-01T00:00:00", feed_url="http://x/f.xml", area_codes=["1229900"], kinds=KINDS
        )


async def _first(trigger):
    events = trigger.run()
    try:
        return await asyncio.wait_for(anext(events), 15)
    finally:
        await events.aclose()


def test_window_ends_with_nothing_new(sandbox):
    """Everything in the feed is already seen: the trigger fires window_end at its deadline."""
    first = asyncio.run(
        _first(
            WindowedJmaFeedTrigger(
                until=(datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
                feed_url=sandbox.url + FEED,
                area_codes=["1229900"],
                kinds=KINDS,
                poll_interval=0.05,
            )
        )
    )
    assert first.payload["kind"] == "jma_warnings" and len(first.payload["warnings"]) == 1
    seen = [w["key"] for w in first.payload["warnings"]]
    again = asyncio.run(
        _first(
            WindowedJmaFeedTrigger(
                until=(datetime.now(UTC) + timedelta(seconds=0.5)).isoformat(),
                feed_url=sandbox.url + FEED,
                area_codes=["1229900"],
                kinds=KINDS,
                poll_interval=0.05,
                seen_keys=seen,
            )
        )
    )
    assert again.payload["kind"] == "window_end"
    assert set(again.payload["state"]["seen_keys"]) >= set(seen)


def test_a_warning_found_as_the_watch_begins_waits_for_the_settling(sandbox):
    """The resumed task must not start within seconds of the deferral (apache/airflow#72716)."""
    settle = datetime.now(UTC) + timedelta(seconds=1)
    event = asyncio.run(
        _first(
            WindowedJmaFeedTrigger(
                until=(datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
                settle_until=settle.isoformat(),
                feed_url=sandbox.url + FEED,
                area_codes=["1229900"],
                kinds=KINDS,
                poll_interval=0.05,
            )
        )
    )
    assert event.payload["kind"] == "jma_warnings"
    assert datetime.now(UTC) >= settle


def test_drafts_are_recorded_once_per_key(ledger):
    key = "jma:1229900:20250709T201205Z:0123456789abcdef"
    new = record_drafts(ledger, [draft(key), draft(key)])
    assert [d["entry_id"] for d in new] == [draft_entry_id(key)]
    assert record_drafts(ledger, [draft(key)]) == []  # the next watch, or a repeated event
    assert recent_draft_keys(ledger) == [key]
    (request,) = review_requests(new)
    assert request["trigger_run_id"] == f"draft__{draft_entry_id(key)}"
    assert request["conf"]["message"].startswith("【こほ市】")


def test_approved_text_wins_and_the_form_is_confirmed(posting_settings, monkeypatch):
    monkeypatch.setattr("koho.config.posting.load_posting_settings", lambda: posting_settings)
    params = {"entry_id": "jma-draft-1", "message": "下書き", "severity": "critical", "link": None}
    conf = broadcast_conf(
        params,
        {
            "chosen_options": ["Approve"],
            "params_input": {"message": "修正後の本文"},
            "responded_by_user": {"id": "3", "name": "crisis"},
        },
    )
    assert conf["message"] == "修正後の本文" and conf["confirmation"] == posting_settings.emergency_confirmation
    assert conf["draft_of"] == "jma-draft-1" and conf["targets"] == ["all", "website"]
    assert conf["requested_by"] == "crisis (approved draft)"


def test_unanswered_draft_is_cancelled_and_alerted_once(ledger, mailbox, monkeypatch):
    from sqlalchemy import select

    from koho.ledger.models import Alert, CalendarEntry
    from tests.conftest import smtp_connection

    box, port = mailbox
    smtp_connection(monkeypatch, port)
    mailed = box.messages
    key = "jma:1229900:20250709T201205Z:fedcba9876543210"
    (new,) = record_drafts(ledger, [draft(key)])
    params = {"entry_id": new["entry_id"], "message": new["text"], "document": "doc.xml"}
    result = settle_draft(ledger, params, None, timeout=timedelta(minutes=15))
    assert result["status"] == "cancelled" and result["mailed"] == 1
    settle_draft(ledger, params, None, timeout=timedelta(minutes=15))
    assert len({m["To"] for m in mailed}) == len(mailed) >= 1  # once per recipient
    with ledger.session(readonly=True) as session:
        assert session.get(CalendarEntry, new["entry_id"]).status == "cancelled"
        (alert,) = session.scalars(select(Alert)).all()
    assert alert.kind == "approval_timeout" and alert.severity == "critical"
    rejected = settle_draft(
        ledger,
        params,
        {"chosen_options": ["Reject"], "responded_by_user": {"name": "crisis"}},
        timeout=timedelta(minutes=15),
    )
    assert rejected == {"entry_id": new["entry_id"], "status": "rejected", "by": "crisis", "mailed": 0}
