"""adhoc_post on a real Airflow (FAB auth manager, LocalExecutor, the sandbox platforms):

* a staff member's post waits for a PR approver; the staff member cannot approve it (403 from the
  HITL REST API), the PR approver can, and it is then published exactly once on every chosen
  account, recorded with origin ``adhoc`` and shown by the Koho calendar view;
* the PR section's own post needs no approval and goes out at the time given;
* a dry run shows the fitted texts and records nothing;
* an invalid form fails the run listing every field and reason, and nothing is recorded;
* a post nobody approves in time is dropped (never posted) and the PR section is alerted by mail.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from harness.koho_stack import KohoStack
from koho.ledger.db import Ledger
from koho.ledger.models import Alert, CalendarEntry, Delivery
from koho.posting.form import adhoc_entry_id
from koho.timeutil import to_local

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

WAITING = {"awaiting_input", "deferred"}
TIMEOUT_TEXT = "【テスト】承認されないまま期限が切れる投稿です。"


@pytest.fixture(scope="module")
def unanswered(stack: KohoStack) -> dict:
    """Triggered first: a staff post nobody answers (the shared stack's approvals time out after a
    minute: ``harness.koho_stack.SHARED_POSTING``)."""
    response = stack.trigger_as(
        "staff", "adhoc_post", {"accounts": ["city-x"], "text": TIMEOUT_TEXT, "requested_by": "道路河川課"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def entry_id_of(run: dict) -> str:
    return adhoc_entry_id(run["dag_run_id"], datetime.fromisoformat(run["run_after"].replace("Z", "+00:00")))


def ledger_entry(stack: KohoStack, entry_id: str) -> tuple[CalendarEntry | None, list[Delivery]]:
    with Ledger(stack.ledger_url).session(readonly=True) as session:
        entry = session.get(CalendarEntry, entry_id)
        rows = list(session.scalars(select(Delivery).where(Delivery.entry_id == entry_id)))
    return entry, rows


def test_staff_post_waits_for_a_pr_approver(stack: KohoStack, unanswered: dict):
    text = "【お知らせ】市役所前の道路で本日14時から水道工事を行います。通行にご注意ください。"
    response = stack.trigger_as(
        "staff",
        "adhoc_post",
        {
            "accounts": ["city-x", "city-bluesky", "city-line"],
            "text": text,
            "link": "https://www.city.example.jp/doro/",
            "requested_by": "道路河川課 山田 <b>太郎</b>",
        },
    )
    assert response.status_code == 200, response.text
    run = response.json()
    run_id = run["dag_run_id"]
    stack.wait_ti("adhoc_post", run_id, "approve", WAITING, timeout=120)

    entry, rows = ledger_entry(stack, entry_id_of(run))
    assert entry.origin == "adhoc" and entry.status == "awaiting_approval"
    assert entry.created_by.startswith("staff (for ")
    assert {d.status for d in rows} == {"awaiting_approval"}
    assert not [p for p in stack.sandbox.posts() if p["text"].startswith("【お知らせ】市役所前")]

    detail = stack.hitl_detail("adhoc_post", run_id, "approve")
    assert "```text\n" + text + "\n```" in detail["body"]
    assert "<b>太郎</b>" in detail["body"].split("```text\n", 2)[2].split("```")[0], "typed text stays inside code"

    # staff may trigger but not approve; the PR approver (admin) may
    refused = stack.respond_as("staff", "adhoc_post", run_id, "approve", "Approve")
    assert refused.status_code == 403, refused.text
    approved = stack.respond_as("admin", "adhoc_post", run_id, "approve", "Approve")
    assert approved.status_code == 200, approved.text
    assert stack.wait_run("adhoc_post", run_id, timeout=180) == "success"

    posts = [p for p in stack.sandbox.posts() if p["text"].startswith("【お知らせ】市役所前")]
    assert sorted(p["platform"] for p in posts) == ["bluesky", "line", "x"]
    entry, rows = ledger_entry(stack, entry_id_of(run))
    assert entry.status == "published" and {d.status for d in rows} == {"published"}
    settled = stack.xcom("adhoc_post", run_id, "settle")
    assert {a["account_id"]: a["status"] for a in settled["accounts"]} == {
        "city-x": "published",
        "city-bluesky": "published",
        "city-line": "published",
    }

    # the Koho calendar view shows it, as an ad-hoc post
    from koho.ui.calendar_data import load_calendar

    with Ledger(stack.ledger_url).session(readonly=True) as session:
        page = load_calendar(session, "week", to_local(entry.publish_at).date())
    items = [i for i in page.items if i.entry_id == entry.id]
    assert items and {i.origin for i in items} == {"adhoc"}


def test_pr_section_posts_without_approval_at_its_time(stack: KohoStack):
    at = (datetime.now(UTC) + timedelta(seconds=25)).replace(microsecond=0)
    response = stack.trigger_as(
        "admin",
        "adhoc_post",
        {
            "accounts": ["city-mastodon"],
            "text": "【広報】本日の市長定例記者会見は15時からです。",
            "when": "at",
            "publish_at": to_local(at).isoformat(),
            "requested_by": "秘書広報課",
        },
    )
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert stack.wait_run("adhoc_post", run_id, timeout=180) == "success"
    states = {ti["task_id"]: ti["state"] for ti in stack.task_instances("adhoc_post", run_id)}
    assert states["approve"] == "skipped" and states["send"] == "success"
    _, rows = ledger_entry(stack, entry_id_of(response.json()))
    (delivery,) = rows
    assert delivery.status == "published" and delivery.published_at >= at


def test_dry_run_shows_the_fitted_texts_and_records_nothing(stack: KohoStack):
    text = "【イベント】こほ市の梨まつりを開催します。" * 10
    response = stack.trigger_as(
        "staff",
        "adhoc_post",
        {"accounts": ["city-x", "city-line"], "text": text, "dry_run": True, "requested_by": "商工観光課"},
    )
    run_id = response.json()["dag_run_id"]
    assert stack.wait_run("adhoc_post", run_id, timeout=180) == "success"
    checked = stack.xcom("adhoc_post", run_id, "check_and_record")
    previews = {p["account_id"]: p for p in checked["check"]["previews"]}
    assert previews["city-x"]["strategy"] == "thread" and all(n <= 280 for n in previews["city-x"]["lengths"])
    assert previews["city-line"]["parts"] == [text]
    log = stack.task_log("adhoc_post", run_id, "check_and_record")
    assert "weighted characters" in log and "dry run: nothing was recorded or posted" in log
    assert ledger_entry(stack, entry_id_of(response.json()))[0] is None
    assert not [p for p in stack.sandbox.posts() if p["text"].startswith("【イベント】")]


def test_invalid_form_lists_every_problem_and_records_nothing(stack: KohoStack):
    response = stack.trigger_as(
        "staff",
        "adhoc_post",
        {
            "accounts": ["city-x", "city-z"],
            "text": "<script>alert(1)</script>",
            "link": "javascript:alert(1)",
            "when": "at",
            "publish_at": "2020-01-01T09:00:00+09:00",
            "requested_by": "道路河川課",
        },
    )
    run_id = response.json()["dag_run_id"]
    assert stack.wait_run("adhoc_post", run_id, timeout=180) == "failed"
    log = stack.task_log("adhoc_post", run_id, "check_and_record")
    for field in ("field 'accounts[1]'", "field 'text'", "field 'link'", "field 'publish_at'"):
        assert field in log, field
    assert "nothing was recorded or posted" in log
    assert ledger_entry(stack, entry_id_of(response.json()))[0] is None


def test_unapproved_post_is_dropped_and_the_pr_section_alerted(stack: KohoStack, unanswered: dict):
    run_id = unanswered["dag_run_id"]
    assert stack.wait_run("adhoc_post", run_id, timeout=240) == "failed"
    entry, rows = ledger_entry(stack, entry_id_of(unanswered))
    assert entry.status == "cancelled" and {d.status for d in rows} == {"cancelled"}
    assert not [p for p in stack.sandbox.posts() if p["text"] == TIMEOUT_TEXT]
    with Ledger(stack.ledger_url).session(readonly=True) as session:
        alert = session.scalars(select(Alert).where(Alert.kind == "approval_timeout")).one()
    assert alert.notified_at is not None and entry.id in alert.subject
    mails = [m for m in stack.mailbox.messages if "alert" in str(m["Subject"])]
    assert any(entry.id in body for body in [m.get_body(("html", "plain")).get_content() for m in mails])
