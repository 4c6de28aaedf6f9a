"""emergency_broadcast on a real Airflow (FAB auth manager, LocalExecutor, the sandbox platforms):

* only the crisis role may trigger it: the staff member's POST is refused with 403 by the REST API,
  the crisis officer's is accepted (and a wrong confirmation word then posts nothing);
* a broadcast reaches every demo account and the website, with the same words, while a calendar
  load due at the same instant is being sent in the koho_publish pool; the summary (return value,
  log, mail to the crisis and PR addresses) lists every account with its link;
* a follow-up answers the original post on platforms with replies, is a new post elsewhere, and an
  all-clear takes the website's emergency banner down.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from harness.koho_stack import KohoStack
from harness.waiting import wait_for
from koho.emergency.broadcast import emergency_entry_id
from koho.ledger.db import Ledger
from koho.ledger.models import CalendarEntry, Delivery

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

REPLY_PLATFORMS = {"x", "bluesky", "mastodon", "threads"}
CONFIRM = "緊急配信"


def posting_rows(stack: KohoStack) -> list[dict]:
    return [r for r in stack.rows if r["status"] == "active" and r["platform"] != "youtube"]


def entry_of(run: dict) -> str:
    return emergency_entry_id(run["dag_run_id"], datetime.fromisoformat(run["run_after"].replace("Z", "+00:00")))


def deliveries(stack: KohoStack, entry_id: str) -> list[Delivery]:
    with Ledger(stack.ledger_url).session(readonly=True) as session:
        return list(
            session.scalars(
                select(Delivery).where(Delivery.entry_id == entry_id).order_by(Delivery.account_id, Delivery.part_index)
            )
        )


def local(handle: str) -> str:
    """A handle without '@' and instance (the sandbox stores Mastodon's local part)."""
    return handle.lstrip("@").split("@")[0]


def website_dir(stack: KohoStack) -> Path:
    return stack.config_dir.parent / "website"


# -- who may trigger ----------------------------------------------------------------------------


def test_only_the_crisis_role_may_trigger(stack: KohoStack):
    before = len(stack.sandbox.posts())
    form = {"message": "【訓練】誤配信防止の確認", "confirmation": CONFIRM}

    refused = stack.trigger_as("staff", "emergency_broadcast", form)
    assert refused.status_code == 403, refused.text
    anonymous = stack.http.post(
        f"{stack.api}/api/v2/dags/emergency_broadcast/dagRuns", json={"logical_date": None, "conf": form}, timeout=10
    )
    assert anonymous.status_code == 401
    # the staff member may still trigger the ad-hoc form, and read the emergency DAG
    assert stack.as_user("staff", "GET", "/api/v2/dags/emergency_broadcast").status_code == 200
    assert stack.as_user("staff", "GET", "/api/v2/dags/adhoc_post").status_code == 200

    # the crisis officer is let in; a mistyped confirmation word then stops the run before any post
    accepted = stack.trigger_as("crisis", "emergency_broadcast", {**form, "confirmation": "きんきゅう"})
    assert accepted.status_code == 200, accepted.text
    run_id = accepted.json()["dag_run_id"]
    assert stack.wait_run("emergency_broadcast", run_id, timeout=180) == "failed"
    log = stack.task_log("emergency_broadcast", run_id, "broadcast")
    assert "confirmation" in log and "nothing was posted" in log
    assert len(stack.sandbox.posts()) == before
    assert not deliveries(stack, entry_of(accepted.json()))


# -- the broadcast under a calendar load ----------------------------------------------------------


@pytest.fixture(scope="module")
def broadcast(stack: KohoStack) -> dict:
    """One broadcast triggered at the instant 30 calendar entries (x 8 text accounts) fall due."""
    load, due, calendar_run = stack.calendar_load(
        entries=30, lead_seconds=25, prefix="load", text="カレンダー投稿 {i:03d}: 市からのお知らせです。"
    )
    message = (
        "【緊急】こほ市に避難指示を発令しました。対象は市内全域です。直ちに最寄りの避難所へ避難してください。"
        "避難所: 市内全小学校、市民体育館。"
    )
    started = datetime.now(UTC)
    response = stack.trigger_as(
        "crisis",
        "emergency_broadcast",
        {
            "message": message,
            "confirmation": CONFIRM,
            "severity": "critical",
            "link": "https://www.city.example.jp/bousai/",
        },
    )
    assert response.status_code == 200, response.text
    run = response.json()
    entry_id = entry_of(run)
    expected = len(posting_rows(stack)) + 1  # + the website

    def published():
        rows = deliveries(stack, entry_id)
        return len({d.account_id for d in rows}) == expected and all(d.status == "published" for d in rows) and rows

    rows = wait_for(
        published,
        timeout=120,
        interval=0.1,
        what="the broadcast on every account",
        on_timeout=lambda: stack.tail("scheduler"),
    )
    seconds = (max(d.published_at for d in rows) - started).total_seconds()
    state = stack.wait_run("emergency_broadcast", run["dag_run_id"], timeout=120)
    return {
        "run": run,
        "entry_id": entry_id,
        "message": message,
        "seconds": seconds,
        "state": state,
        "load": load,
        "due": due,
        "calendar_run": calendar_run,
    }


def test_broadcast_reaches_every_account_during_a_calendar_load(stack: KohoStack, broadcast: dict):
    assert broadcast["state"] == "success"
    # seconds, not minutes, even with the calendar load going out at the same instant (the figures
    # are bench/emergency.py's business; this only catches a broadcast stuck behind the calendar)
    assert broadcast["seconds"] < 60, broadcast["seconds"]
    posts = [p for p in stack.sandbox.posts() if p["text"].startswith("【緊急】こほ市に避難指示")]
    by_handle = {}
    for post in posts:
        by_handle.setdefault((post["platform"], local(post["handle"])), []).append(post)
    expected = {(r["platform"], local(r["handle"])) for r in posting_rows(stack)}
    assert set(by_handle) == expected
    for key, found in by_handle.items():
        head = [p for p in found if not p["reply_to"]]
        assert len(head) == 1, f"{key}: posted {len(head)} times"
        text = "".join(p["text"] for p in found)
        assert broadcast["message"][:40] in text, "the same words everywhere"
    summary = stack.xcom("emergency_broadcast", broadcast["run"]["dag_run_id"], "broadcast")
    assert summary["published"] == summary["total"] == len(expected) + 1
    # each delivery names its run, so the calendar view links straight to it
    assert {d.dag_run_id for d in deliveries(stack, broadcast["entry_id"])} == {
        f"emergency_broadcast/{broadcast['run']['dag_run_id']}"
    }
    for row in summary["accounts"]:
        assert row["status"] == "published"
        assert row["url"] or row["platform"] == "line"  # a LINE broadcast has no public link
    log = stack.task_log("emergency_broadcast", broadcast["run"]["dag_run_id"], "broadcast")
    assert "link or reason" in log and "city-x" in log
    mails = [m for m in stack.mailbox.messages if "published" in str(m["Subject"]) and "緊急情報" in str(m["Subject"])]
    assert mails, stack.mailbox.subjects()
    # one mail per recipient: the crisis team and the PR section each get the summary, once
    last = mails[-2:]
    to = [str(m["To"]).strip() for m in last]
    assert sorted(to) == ["kiki@city.example.jp", "koho@city.example.jp"], to
    assert all(f"{len(expected) + 1}/{len(expected) + 1} published" in str(m["Subject"]) for m in last)
    banner = (website_dir(stack) / "emergency.html").read_text(encoding="utf-8")
    assert broadcast["entry_id"] in banner or "避難指示" in banner
    # the calendar load was sent too, each post exactly once
    wait_for(
        lambda: all(d.status == "published" for e in broadcast["load"] for d in deliveries(stack, e)),
        timeout=240,
        what="the calendar load to be published",
    )
    load_posts = [p for p in stack.sandbox.posts() if p["text"].startswith("カレンダー投稿")]
    assert len(load_posts) == len({(p["platform"], p["handle"], p["text"]) for p in load_posts}) == 30 * 8


def test_follow_up_answers_the_original_and_all_clear_lifts_the_banner(stack: KohoStack, broadcast: dict):
    original = {d.account_id: d for d in deliveries(stack, broadcast["entry_id"]) if d.status == "published"}
    platforms = {r["id"]: r["platform"] for r in posting_rows(stack)}

    update = stack.trigger_as(
        "crisis",
        "emergency_broadcast",
        {
            "message": "【続報】避難所に市民体育館を追加しました。",
            "confirmation": CONFIRM,
            "kind": "update",
            "follow_up_of": broadcast["entry_id"],
        },
    )
    assert update.status_code == 200, update.text
    assert stack.wait_run("emergency_broadcast", update.json()["dag_run_id"], timeout=180) == "success"
    follow = {d.account_id: d for d in deliveries(stack, entry_of(update.json()))}
    posts = {(p["platform"], p["post_id"]): p for p in stack.sandbox.posts()}
    for account_id, platform in platforms.items():
        delivery = follow[account_id]
        assert delivery.status == "published"
        if platform in REPLY_PLATFORMS:
            assert delivery.parent_delivery_id == original[account_id].id, account_id
            post = next(
                p for (plat, pid), p in posts.items() if plat == platform and (delivery.remote_id or "").endswith(pid)
            )
            assert post["reply_to"] and original[account_id].remote_id.endswith(post["reply_to"].split("/")[-1]), (
                f"{account_id}: {post['reply_to']} does not answer {original[account_id].remote_id}"
            )
        else:
            assert delivery.parent_delivery_id is None, f"{account_id}: {platform} has no replies: a new post"

    clear = stack.trigger_as(
        "crisis",
        "emergency_broadcast",
        {
            "message": "【解除】避難指示を解除しました。",
            "confirmation": CONFIRM,
            "kind": "all_clear",
            "follow_up_of": broadcast["entry_id"],
            "severity": "advisory",
        },
    )
    assert clear.status_code == 200
    assert stack.wait_run("emergency_broadcast", clear.json()["dag_run_id"], timeout=180) == "success"
    banner = website_dir(stack) / "emergency.html"
    assert not banner.exists() or broadcast["entry_id"] not in banner.read_text(encoding="utf-8")
    with Ledger(stack.ledger_url).session(readonly=True) as session:
        entry = session.get(CalendarEntry, entry_of(clear.json()))
    assert entry.origin == "emergency" and entry.payload["all_clear"] is True
    assert entry.payload["follow_up_of"] == broadcast["entry_id"]
