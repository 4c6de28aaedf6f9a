"""Published items on a stand-in platform link to its timeline; real platforms' items do not."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from koho.ledger.models import Account, CalendarEntry, Delivery
from koho.timeline_links import post_link, preview_link, timeline_of, timelines
from koho.ui.app import create_app
from tests.conftest import set_connection
from tests.unit.ui.test_calendar_view import mounted

AT = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)  # 2026-12-03 10:00 JST
SANDBOX = "http://127.0.0.1:8750/_timeline"


@pytest.fixture
def posted(ledger):
    """One entry published on a sandbox account and on a real-platform account, planned on a third."""
    with ledger.session() as session:
        for account_id, platform, conn_id in (
            ("sand-x", "x", "c_sand"),
            ("real-x", "x", "c_real"),
            ("later", "bluesky", "c_sand"),
        ):
            fields = {"handle": account_id, "display_name": account_id, "department": "pr", "connection_id": conn_id}
            session.add(Account(id=account_id, platform=platform, **fields))
        session.add(
            CalendarEntry(
                id="e1",
                origin="calendar",
                source="demo-live.yaml",
                title="お知らせ",
                publish_at=AT,
                payload={"text": "お知らせ"},
                content_hash="e1",
            )
        )
        session.flush()
        for account, status, remote in (
            ("sand-x", "published", "1001"),
            ("real-x", "published", "2002"),
            ("later", "planned", None),
        ):
            session.add(
                Delivery(
                    entry_id="e1",
                    account_id=account,
                    revision=1,
                    part_index=0,
                    idempotency_key=f"e1/{account}",
                    due_at=AT,
                    status=status,
                    text="お知らせ",
                    planned_created_at=AT,
                    remote_id=remote,
                    remote_url=f"https://x.com/a/status/{remote}" if remote else None,
                )
            )
    return ledger


def items(ledger, found: dict[str, str]) -> dict[str, dict]:
    asked: list[tuple[str, ...]] = []

    def lookup(ids: tuple[str, ...]) -> dict[str, str]:
        asked.append(ids)
        return {k: v for k, v in found.items() if k in ids}

    client = mounted(create_app(ledger, require_auth=False, dag_ids={}, timelines=lookup))
    data = client.get("calendar.json", params={"date": "2026-12-03"}).json()
    html = client.get("calendar", params={"date": "2026-12-03"}).text
    assert asked and all(ids == ("c_real", "c_sand") for ids in asked)  # published items' connections only
    return {"html": html, **{i["account_id"]: i for d in data["days"] for i in d["items"]}}


def test_a_published_sandbox_post_links_to_its_timeline_page(posted):
    got = items(posted, {"c_sand": SANDBOX})
    assert got["sand-x"]["timeline_url"] == f"{SANDBOX}/post?platform=x&id=1001"
    assert got["real-x"]["timeline_url"] is None and got["later"]["timeline_url"] is None
    assert 'class="timeline" href="http://127.0.0.1:8750/_timeline/post?platform=x&amp;id=1001"' in got["html"]
    assert got["html"].count('class="timeline"') == 1


def test_without_stand_in_connections_nothing_links(posted):
    got = items(posted, {})
    assert 'class="timeline"' not in got["html"] and got["sand-x"]["url"]  # the platform's own link stays


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"timeline_url": SANDBOX + "/"}, SANDBOX),
        (json.dumps({"timeline_url": SANDBOX}), SANDBOX),
        ({"timeline_url": "javascript:alert(1)"}, None),
        ({"account_id": "1"}, None),
        ("not json", None),
        (None, None),
    ],
)
def test_only_a_web_address_in_the_extra_is_a_timeline(extra, expected):
    assert timeline_of(extra) == expected


def test_connections_are_read_for_their_extra_and_unreadable_ones_skipped(monkeypatch):
    set_connection(
        monkeypatch,
        "c_sand",
        conn_type="koho_x",
        host="http://127.0.0.1:8750/x",
        extra=json.dumps({"timeline_url": SANDBOX}),
    )
    set_connection(monkeypatch, "c_real", conn_type="koho_x", password="secret-token")
    assert timelines(["c_sand", "c_real", "c_missing"]) == {"c_sand": SANDBOX}


def test_links_encode_ids_and_texts():
    assert post_link(SANDBOX, "bluesky", "at://did:plc:x/app.bsky.feed.post/3k") == (
        f"{SANDBOX}/post?platform=bluesky&id=at%3A%2F%2Fdid%3Aplc%3Ax%2Fapp.bsky.feed.post%2F3k"
    )
    link = preview_link(SANDBOX, platform="x", parts=["1/2 a&b", "2/2 #c"], images=["p.png"], link="https://e.jp/?q=1")
    assert link.startswith(f"{SANDBOX}/preview?platform=x&") and "part=1%2F2+a%26b&part=2%2F2+%23c" in link
    assert "image=p.png" in link and "link=https%3A%2F%2Fe.jp%2F%3Fq%3D1" in link
