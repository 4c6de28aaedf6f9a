"""The cross-posting calendar end to end on a real Airflow (api-server, scheduler, dag-processor,
triggerer; LocalExecutor) against the sandbox and a real SMTP server.

A small calendar is written a minute or two ahead of now:

* ``e2e-multi`` to three accounts and the website at one instant (one time slot);
* ``e2e-thread`` too long for X, so it goes out as a thread (part 2 answers part 1);
* ``e2e-line-1`` to LINE, and ``e2e-line-2`` 15 seconds later to the same LINE account, which
  breaks its 180-minute spacing: reported (alert + mail naming file and line), not posted;
* ``e2e-approval`` needs approval: approved through the human-in-the-loop REST API;
* ``e2e-timeout`` needs approval and gets no answer: not posted, ``approval_timeout`` mailed.

Then every post is checked at its time in three places that must agree: the ledger, the sandbox
(``/_admin/posts``, exactly one post per delivery) and the calendar view's JSON served by the
api-server plugin.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from harness.koho_stack import KohoStack
from harness.waiting import wait_for
from koho.ledger.db import Ledger
from koho.ledger.models import Alert, CalendarEntry, Delivery
from koho.timeutil import to_local, utcnow

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

LONG_TEXT = (
    "市内一斉清掃のお知らせです。5月の第3日曜日、午前8時から10時まで、各自治会の集合場所に集まってください。"
    "軍手とごみ袋は自治会で用意します。集めたごみは指定の集積所に出してください。"
    "雨天の場合は翌週の日曜日に延期し、延期の場合は前日の午後5時までに市のホームページとSNSでお知らせします。"
    "参加できない方も、ご自宅の周りの清掃にご協力をお願いします。"
)


def _entry(entry_id: str, at, targets: list[str], text: str, **extra) -> str:
    lines = [
        f"  - id: {entry_id}",
        f"    title: {entry_id} のお知らせ",
        f'    publish_at: "{to_local(at):%Y-%m-%dT%H:%M:%S+09:00}"',
        f"    targets: [{', '.join(targets)}]",
        f"    text: {text}",
    ]
    lines += [f"    {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def stack(koho_stack: KohoStack):
    """The shared stack with city-line's own caps (180 minutes between posts) kept; its calendar
    approvals are due 30 s before the post (``harness.koho_stack.SHARED_ENV``)."""
    with koho_stack.for_module(keep_caps=["city-line"]) as live:
        yield live


def test_calendar_posts_each_entry_at_its_time(stack: KohoStack):
    ledger = Ledger(stack.ledger_url)
    # 100 s ahead: the sync, the approval request and the answer must all come before the approval
    # deadline (30 s before the post, SHARED_ENV), on a busy two-core machine too
    base = (utcnow() + timedelta(seconds=100)).replace(microsecond=0)
    at = {
        "e2e-multi": base,
        "e2e-thread": base + timedelta(seconds=5),
        "e2e-line-1": base,
        "e2e-line-2": base + timedelta(seconds=15),
        "e2e-approval": base + timedelta(seconds=40),
        "e2e-timeout": base + timedelta(seconds=40),
    }
    calendar = (
        "\n".join(
            [
                "entries:",
                _entry(
                    "e2e-multi",
                    at["e2e-multi"],
                    ["city-x", "city-mastodon", "city-bluesky"],
                    "こほ市からのお知らせです。本日の窓口は17時まで開いています。",
                    channels="[social, website]",
                ),
                _entry("e2e-thread", at["e2e-thread"], ["bousai-x"], LONG_TEXT),
                _entry("e2e-line-1", at["e2e-line-1"], ["city-line"], "LINEのお知らせ（1件目）です。"),
                _entry("e2e-line-2", at["e2e-line-2"], ["city-line"], "LINEのお知らせ（2件目）です。"),
                _entry(
                    "e2e-approval", at["e2e-approval"], ["city-facebook"], "承認が必要なお知らせです。", approval="true"
                ),
                _entry(
                    "e2e-timeout", at["e2e-timeout"], ["city-threads"], "承認されないお知らせです。", approval="true"
                ),
            ]
        )
        + "\n"
    )
    (stack.calendar_dir / "e2e.yaml").write_text(calendar, encoding="utf-8")
    publish_at_line = calendar.splitlines().index("  - id: e2e-line-2") + 3  # id, title, publish_at

    # 1. calendar_sync: plans the valid entries, reports the one over LINE's cap, fails at the end.
    run = stack.trigger("calendar_sync", run_id="e2e-sync")
    assert stack.wait_run("calendar_sync", run, timeout=90) == "failed"
    states = {t["task_id"]: t["state"] for t in stack.task_instances("calendar_sync", run)}
    assert states["sync_calendar"] == "success" and states["report"] == "failed", states
    with ledger.session(readonly=True) as session:
        entries = {e.id: e for e in session.scalars(select(CalendarEntry))}
        planned = list(session.scalars(select(Delivery)))
    assert set(entries) == set(at) - {"e2e-line-2"}
    assert Counter(d.entry_id for d in planned)["e2e-multi"] == 4  # three accounts and the website
    assert {d.status for d in planned if d.entry_id in ("e2e-approval", "e2e-timeout")} == {"awaiting_approval"}
    thread = sorted((d for d in planned if d.entry_id == "e2e-thread"), key=lambda d: d.part_index)
    assert len(thread) >= 2 and thread[1].parent_delivery_id == thread[0].id

    # The invalid entry is named with file and line, in the ledger's alert and in the PR section's mail.
    box = stack.mailbox
    wait_for(lambda: any("e2e-line-2" in b for b in box.bodies()), timeout=30, what="the calendar problem mail")
    problem_mail = next(b for b in box.bodies() if "e2e-line-2" in b)
    assert f"e2e.yaml:{publish_at_line}, field &#39;entries[3].publish_at&#39;" in problem_mail
    assert "180 min" in problem_mail

    # 2. Approval through Airflow's human-in-the-loop REST API; the other request is left to time out.
    approval_run = "approval__e2e-approval__r1"

    def request_shown():
        detail = stack.hitl_detail("calendar_approval", approval_run, "approve_post")
        return detail if detail and detail.get("body") and "承認が必要なお知らせです" in detail["body"] else None

    detail = wait_for(
        request_shown, timeout=60, what="the approval request", on_timeout=lambda: stack.tail("scheduler")
    )
    assert detail["options"] == ["Approve", "Reject"] and "city-facebook" in detail["body"]
    stack.respond("calendar_approval", approval_run, "approve_post", "Approve")
    assert stack.wait_run("calendar_approval", approval_run, timeout=60) == "success"
    assert stack.wait_run("calendar_approval", "approval__e2e-timeout__r1", timeout=150) == "failed"

    # 3. Every delivery is published at its time (polling the ledger until the last slot has passed).
    expected = {"e2e-multi", "e2e-thread", "e2e-line-1", "e2e-approval"}

    def all_published():
        with ledger.session(readonly=True) as session:
            rows = [d for d in session.scalars(select(Delivery)) if d.entry_id in expected]
        return rows if rows and all(d.status == "published" for d in rows) else None

    published = wait_for(
        all_published, timeout=210, what="every delivery to be published", on_timeout=lambda: stack.tail("scheduler")
    )
    for delivery in published:
        late = (delivery.published_at - delivery.due_at).total_seconds()
        assert -1 <= late < 15, (delivery, late)

    # The sandbox holds exactly one post per delivery (the website writes a page instead).
    posts = stack.sandbox.posts()
    by_id = {p["post_id"]: p for p in posts}
    social = [d for d in published if d.account_id != "website"]
    assert len(posts) == len(social)
    assert {d.remote_id for d in social} == set(by_id)
    assert max(Counter((p["platform"], p["account_id"], p["text"]) for p in posts).values()) == 1
    first, second = sorted((d for d in published if d.entry_id == "e2e-thread"), key=lambda d: d.part_index)[:2]
    assert by_id[second.remote_id]["reply_to"] == first.remote_id
    assert not [p for p in posts if p["platform"] == "threads"]  # e2e-timeout was never approved
    assert len([p for p in posts if p["platform"] == "line"]) == 1  # e2e-line-2 was over the cap

    with ledger.session(readonly=True) as session:
        timed_out = list(session.scalars(select(Delivery).where(Delivery.entry_id == "e2e-timeout")))
        alerts = {a.kind: a for a in session.scalars(select(Alert))}
        statuses = {e.id: e.status for e in session.scalars(select(CalendarEntry))}
    assert {d.status for d in timed_out} == {"needs_attention"}
    assert alerts["approval_timeout"].notified_at is not None
    assert any(
        "approval_timeout" in s or "not approved in time" in b
        for s, b in zip(box.subjects(), box.bodies(), strict=True)
    )
    assert statuses["e2e-multi"] == statuses["e2e-approval"] == "published"

    # 4. The calendar view (the api-server's plugin) shows the same as the ledger.
    day = to_local(base).date().isoformat()
    view = stack.plugin_json("/koho/calendar.json", view="week", date=day)
    items = [i for d in view["days"] for i in d["items"] if i["entry_id"] in at]
    shown = {(i["entry_id"], i["account_id"]): i["status"] for i in items}
    for delivery in published:
        assert shown[(delivery.entry_id, delivery.account_id)] == "published"
    assert shown[("e2e-timeout", "city-threads")] == "needs_attention"
    assert not [i for i in items if i["entry_id"] == "e2e-line-2"]
