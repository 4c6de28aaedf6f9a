"""Retracting a published entry (the calendar_retract DAG's logic) against the sandbox: deleted where
the API can, a "delete by hand" instruction where it cannot, and the entry cancelled."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from koho.calendar.retract import RetractError, delete_one, finish, retract_targets
from koho.channels.website import WebsiteAdapter
from koho.delivery.publishers import Publication
from koho.ledger.models import CalendarEntry, Delivery
from tests.unit.calendar.calendar_helpers import write_config
from tests.unit.delivery.delivery_helpers import T0, add_entry, plan, soon
from tests.unit.delivery.test_delivery_planner import LONG
from tests.unit.delivery.test_delivery_sender import sender


def test_retract_deletes_where_possible_and_says_what_to_do_by_hand(ledger, sandbox, city):
    city("city-x", "x")
    city("city-line", "line")
    add_entry(ledger, "oops", accounts=["city-x", "city-line"], text=LONG, due=soon(-1))
    ids = plan(ledger, "oops").deliveries
    s = sender(ledger)
    for delivery_id in sorted(ids):
        assert s.send(delivery_id).status == "published"
    assert len(sandbox.posts("x")) >= 2 and len(sandbox.posts("line")) == 1

    with pytest.raises(RetractError, match="no published post on city-facebook"):
        retract_targets(ledger, "oops", ["city-facebook"])
    targets = retract_targets(ledger, "oops")
    x_parts = [t for t in targets if t["account_id"] == "city-x"]
    assert [t["part_index"] for t in x_parts] == sorted((t["part_index"] for t in x_parts), reverse=True)

    results = [delete_one(t) for t in targets]

    assert {r["status"] for r in results if r["account_id"] == "city-x"} == {"deleted"}
    [line] = [r for r in results if r["account_id"] == "city-line"]
    assert line["status"] == "manual" and "by hand" in line["instruction"]
    assert sandbox.posts("x") == []  # every part of the thread is gone
    summary = finish(ledger, "oops", results, by="suzuki")
    assert len(summary["deleted"]) == len(x_parts) and len(summary["manual"]) == 1 and not summary["failed"]
    with ledger.session(readonly=True) as session:
        assert session.get(CalendarEntry, "oops").status == "cancelled"
        assert {d.status for d in session.scalars(select(Delivery))} == {"published"}  # the history stays


def test_the_website_page_and_feed_entry_are_removed_by_koho(tmp_path):
    city = write_config(tmp_path / "config", website_dir=tmp_path / "site")
    news = WebsiteAdapter(city).publish_once(
        Publication(
            entry_id="gomi", origin="calendar", title="ごみ", text="収集日", payload={"text": "収集日"}, due_at=T0
        ),
        idempotency_key="k",
    )
    page, feed = tmp_path / "site" / "news" / "gomi.html", tmp_path / "site" / "feed.xml"
    assert page.exists() and "gomi.html" in feed.read_text(encoding="utf-8")
    target = {"platform": "website", "account_id": "website", "remote_id": "gomi", "conn_id": "", "url": news.url}

    result = delete_one(target, config=city)

    assert result["status"] == "deleted", result
    assert not page.exists() and "gomi.html" not in feed.read_text(encoding="utf-8")
    assert delete_one(target, config=city)["status"] == "deleted", "already gone: nothing left to do by hand"
