"""disaster_watch + disaster_draft on a real Airflow, against the sandbox's JMA feed.

The sample feed lists a heavy-rain warning for the city twice (the duplicate-entry case), a storm
warning and its cancellation (取消), and a drill (訓練). The watcher must make exactly one draft
(heavy rain), hand it to a crisis officer — who sees the text, may correct it, and approves it
through the HITL REST API (a staff member may not) — and the approved text must then be broadcast
to every account. The watcher keeps running: the same bulletin never comes back, a new one does.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from harness.koho_stack import KohoStack
from harness.waiting import wait_for
from koho.ledger.db import Ledger
from koho.ledger.models import CalendarEntry
from sandbox.platforms.jma import jma_state, publish_sample

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

WAITING = {"awaiting_input", "deferred"}


@pytest.fixture(scope="module")
def stack(koho_stack: KohoStack):
    """The shared stack with the watcher polling the sandbox's JMA feed every second."""
    with koho_stack.for_module(watch_feed=True) as live:
        yield live


def drafts(stack: KohoStack) -> list[CalendarEntry]:
    with Ledger(stack.ledger_url).session(readonly=True) as session:
        return list(
            session.scalars(
                select(CalendarEntry).where(CalendarEntry.source == "jma").order_by(CalendarEntry.created_at)
            )
        )


def draft_runs(stack: KohoStack) -> list[dict]:
    return sorted(stack.runs("disaster_draft"), key=lambda r: r["run_after"])


def test_watcher_drafts_once_and_broadcasts_after_approval(stack: KohoStack):
    runs = wait_for(
        lambda: draft_runs(stack),
        timeout=180,
        what="a draft from the sample feed",
        on_timeout=lambda: stack.tail("triggerer"),
    )
    (draft,) = drafts(stack)
    assert draft.origin == "emergency" and draft.status == "awaiting_approval"
    assert "大雨警報" in draft.payload["text"] and "こほ市" in draft.payload["text"]
    run_id = runs[0]["dag_run_id"]
    assert run_id == f"draft__{draft.id}"
    stack.wait_ti("disaster_draft", run_id, "approve", WAITING, timeout=120)

    detail = stack.hitl_detail("disaster_draft", run_id, "approve")
    assert draft.payload["text"] in detail["body"]
    assert detail["params"]["message"]["value"] == draft.payload["text"], "the form starts with the draft"

    assert stack.respond_as("staff", "disaster_draft", run_id, "approve", "Approve").status_code == 403
    corrected = draft.payload["text"] + "\n（市からの補足）避難所を開設しました。"
    answer = stack.respond_as(
        "crisis", "disaster_draft", run_id, "approve", "Approve", params_input={"message": corrected}
    )
    assert answer.status_code == 200, answer.text
    assert stack.wait_run("disaster_draft", run_id, timeout=180) == "success"

    broadcast_state = wait_for(
        lambda: (
            stack.run_state("emergency_broadcast", run_id) in ("success", "failed")
            and stack.run_state("emergency_broadcast", run_id)
        ),
        timeout=180,
        what="the approved draft's broadcast",
    )
    assert broadcast_state == "success"
    summary = stack.xcom("emergency_broadcast", run_id, "broadcast")
    posting = [r for r in stack.rows if r["status"] == "active" and r["platform"] != "youtube"]
    assert summary["published"] == summary["total"] == len(posting) + 1
    posts = [p for p in stack.sandbox.posts() if "（市からの補足）避難所を開設しました。" in p["text"]]
    assert {p["platform"] for p in posts} == {r["platform"] for r in posting}
    with Ledger(stack.ledger_url).session(readonly=True) as session:
        entry = session.get(CalendarEntry, summary["entry_id"])
        assert entry.payload["draft_of"] == draft.id
        assert session.get(CalendarEntry, draft.id).status == "approved"


def test_watcher_keeps_watching_without_repeating_itself(stack: KohoStack):
    # a new watch run has started after the one that found the warning, and has polled the feed
    wait_for(lambda: len(stack.runs("disaster_watch")) >= 2, timeout=120, what="the next watch run")
    polls = jma_state(stack.sandbox.state).feed_requests
    wait_for(
        lambda: jma_state(stack.sandbox.state).feed_requests >= polls + 3,
        timeout=60,
        what="the next watch to poll the feed",
    )
    assert len(drafts(stack)) == 1, "the same bulletin never makes a second draft"
    assert len(draft_runs(stack)) == 1

    publish_sample(stack.sandbox.state, "special")  # 大雨特別警報: a new bulletin
    wait_for(
        lambda: len(draft_runs(stack)) == 2,
        timeout=120,
        what="a draft for the new bulletin",
        on_timeout=lambda: stack.tail("triggerer"),
    )
    texts = [d.payload["text"] for d in drafts(stack)]
    assert len(texts) == 2 and "大雨特別警報" in texts[1]
    assert drafts(stack)[1].payload["severity"] == "critical"
