"""calendar_sync's logic: the ledger follows the calendar files (new, revised, cancelled, deleted),
caps count what is already planned, a published post is never silently re-posted, a broken file
never cancels anything, and the approval decisions land in the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from koho.calendar import approval
from koho.calendar.sync import approval_run_id, sync_calendar
from koho.config import load_config
from koho.ledger import accounts as ledger_accounts
from koho.ledger import alerts as ledger_alerts
from koho.ledger import deliveries as ledger_deliveries
from koho.ledger import entries as ledger_entries
from koho.ledger.models import CalendarEntry, Delivery
from tests.unit.delivery.delivery_helpers import add_entry, plan

NOW = datetime(2027, 1, 4, 0, 0, tzinfo=UTC)  # Monday 2027-01-04 09:00 JST


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture
def cal(tmp_path) -> Path:
    folder = tmp_path / "calendar"
    folder.mkdir()
    return folder


def entry(entry_id: str, when: str, targets: str, text: str, **extra: str) -> str:
    lines = [
        f"  - id: {entry_id}",
        f"    title: {entry_id} のお知らせ",
        f'    publish_at: "{when}"',
        f"    targets: {targets}",
        f"    text: {text}",
    ]
    return "\n".join(lines + [f"    {k}: {v}" for k, v in extra.items()])


def write(folder: Path, *entries: str, name: str = "cal.yaml") -> None:
    (folder / name).write_text("entries:\n" + "\n".join(entries) + "\n", encoding="utf-8")


def deliveries(ledger, entry_id: str) -> list[Delivery]:
    with ledger.session(readonly=True) as session:
        return list(
            session.scalars(
                select(Delivery)
                .where(Delivery.entry_id == entry_id)
                .order_by(Delivery.revision, Delivery.account_id, Delivery.part_index)
            )
        )


def status(ledger, entry_id: str) -> str | None:
    with ledger.session(readonly=True) as session:
        row = session.get(CalendarEntry, entry_id)
        return row.status if row else None


A = entry(
    "gomi", "2027-01-05 10:00", "[city-x, city-mastodon]", "ごみ収集日程のお知らせです。", channels="[social, website]"
)
B = entry("kosodate", "2027-01-06 10:00", "[city-x]", "子育てひろばのお知らせです。")


def test_new_entries_are_stored_and_planned_once(ledger, config, cal):
    write(cal, A, B)
    report = sync_calendar(ledger, config, cal, now=NOW)

    assert sorted(report.created) == ["gomi", "kosodate"] and not report.errors
    assert report.planned == {"gomi": 3, "kosodate": 1}  # two accounts and the website, one account
    with ledger.session(readonly=True) as session:
        row = session.get(CalendarEntry, "gomi")
    assert row.origin == "calendar" and row.source == "cal.yaml" and row.source_line == 2
    assert row.payload["accounts"] == ["city-x", "city-mastodon"] and row.revision == 1

    again = sync_calendar(ledger, config, cal, now=NOW)
    assert again.unchanged == 2 and not again.planned and not again.created and not again.cancelled


def test_a_revision_cancels_the_old_deliveries_and_plans_new_ones(ledger, config, cal):
    write(cal, A)
    sync_calendar(ledger, config, cal, now=NOW)
    old = deliveries(ledger, "gomi")

    write(cal, A.replace("ごみ収集日程のお知らせです。", "ごみ収集日程が変わりました。"))
    report = sync_calendar(ledger, config, cal, now=NOW)

    assert report.revised == ["gomi"] and sorted(report.cancelled["gomi"]) == sorted(d.id for d in old)
    rows = deliveries(ledger, "gomi")
    assert {d.status for d in rows if d.revision == 1} == {"cancelled"}
    new = [d for d in rows if d.revision == 2]
    assert len(new) == 3 and {d.status for d in new} == {"planned"}
    assert not {d.idempotency_key for d in new} & {d.idempotency_key for d in old}  # a new post, new keys
    assert all("変わりました" in d.text for d in new)


def test_deleted_or_cancelled_entries_cancel_their_deliveries(ledger, config, cal):
    write(cal, A, B)
    sync_calendar(ledger, config, cal, now=NOW)

    write(cal, A.replace("    channels:", "    status: cancelled\n    channels:"))
    report = sync_calendar(ledger, config, cal, now=NOW)

    assert report.removed == ["kosodate"] and status(ledger, "kosodate") == "cancelled"
    assert {d.status for d in deliveries(ledger, "kosodate")} == {"cancelled"}
    assert status(ledger, "gomi") == "cancelled"
    assert {d.status for d in deliveries(ledger, "gomi")} == {"cancelled"}


def test_a_broken_file_or_an_empty_folder_cancels_nothing(ledger, config, cal):
    write(cal, A, B)
    sync_calendar(ledger, config, cal, now=NOW)

    (cal / "cal.yaml").write_text("entries:\n  - id: gomi\n    title: [unclosed\n", encoding="utf-8")
    broken = sync_calendar(ledger, config, cal, now=NOW)
    assert broken.errors and not broken.removed and not broken.cancelled
    (cal / "cal.yaml").unlink()
    empty = sync_calendar(ledger, config, cal, now=NOW)
    assert not empty.removed and "no calendar file" in " ".join(empty.warnings)
    assert {d.status for d in deliveries(ledger, "gomi") + deliveries(ledger, "kosodate")} == {"planned"}


def test_an_invalid_entry_is_reported_with_its_place_and_keeps_its_plan(ledger, config, cal):
    write(cal, A, B)
    sync_calendar(ledger, config, cal, now=NOW)

    write(cal, A, B.replace("    text:", "    aproval: true\n    text:"))
    report = sync_calendar(ledger, config, cal, now=NOW)

    [error] = report.errors
    assert "cal.yaml:" in error and "aproval" in error and "approval" in error and "[entry 'kosodate']" in error
    assert {d.status for d in deliveries(ledger, "kosodate")} == {"planned"}  # a typo cancels nothing
    [alert] = report.alerts
    assert alert.kind == "config_error" and error in alert.detail["problems"]


def test_caps_count_what_the_ledger_already_plans(ledger, config, cal):
    # An ad-hoc LINE post at 10:00 JST is already planned; city-line needs 180 minutes between posts.
    ten = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)
    with ledger.session() as session:
        ledger_accounts.upsert_accounts(
            session,
            [
                {
                    "id": "city-line",
                    "platform": "line",
                    "handle": "@kohocity-sample",
                    "display_name": "LINE",
                    "department": "pr",
                }
            ],
        )
    add_entry(ledger, "adhoc-1", accounts=["city-line"], text="臨時のお知らせです。", due=ten, origin="adhoc")
    plan(ledger, "adhoc-1")
    write(cal, entry("line-11", "2027-01-05 11:00", "[city-line, city-x]", "LINEのお知らせです。"))

    report = sync_calendar(ledger, config, cal, now=NOW)

    assert any("city-line" in e and "180 min" in e for e in report.errors)
    assert [d.account_id for d in deliveries(ledger, "line-11")] == ["city-x"]  # the others go on


def test_a_change_after_publishing_alerts_a_person_and_reposts_nothing(ledger, config, cal):
    write(cal, B)
    sync_calendar(ledger, config, cal, now=NOW)
    [delivery] = deliveries(ledger, "kosodate")
    with ledger.session() as session:
        ledger_deliveries.claim_for_sending(session, delivery.id, "r1")
        ledger_deliveries.mark_published(session, delivery.id, "1234", "https://x.com/koho/status/1234")
        ledger_entries.refresh_entry_status(session, "kosodate")

    write(cal, B.replace("子育てひろばのお知らせです。", "子育てひろばの時間が変わりました。"))
    later = datetime(2027, 1, 6, 2, 0, tzinfo=UTC)  # after it went out
    report = sync_calendar(ledger, config, cal, now=later)

    assert report.changed_after_publish == ["kosodate"] and status(ledger, "kosodate") == "changed_after_publish"
    assert [d.status for d in deliveries(ledger, "kosodate")] == ["published"]  # nothing new planned
    [alert] = report.alerts
    assert alert.dedup_key == "changed_after_publish:kosodate:r2" and "calendar_retract" in alert.detail["what to do"]
    assert "https://x.com/koho/status/1234" in alert.detail["published on"]
    assert not sync_calendar(ledger, config, cal, now=later).alerts  # said once


def test_entries_needing_approval_ask_once_per_revision(ledger, config, cal):
    write(cal, B.replace("    text:", "    approval: true\n    text:"))
    report = sync_calendar(ledger, config, cal, now=NOW)

    [ask] = report.approvals
    assert ask["run_id"] == approval_run_id("kosodate", 1) == "approval__kosodate__r1"
    publish_at = datetime.fromisoformat(ask["publish_at"])
    assert datetime.fromisoformat(ask["deadline"]) == publish_at - timedelta(minutes=10)
    assert {d.status for d in deliveries(ledger, "kosodate")} == {"awaiting_approval"}
    assert status(ledger, "kosodate") == "awaiting_approval"


# -- approval decisions -------------------------------------------------------------------------


@pytest.fixture
def awaiting(ledger, config, cal):
    write(cal, A.replace("    text:", "    approval: true\n    text:"))
    sync_calendar(ledger, config, cal, now=NOW)
    return "gomi"


def test_the_request_shows_each_accounts_fitted_text(ledger, awaiting):
    request = approval.approval_request(ledger, awaiting, 1)
    assert request.current and {p.account_id for p in request.parts} == {"city-x", "city-mastodon", "website"}
    assert "ごみ収集日程のお知らせです。" in request.body and "`city-mastodon`" in request.body
    assert "2027-01-05 10:00 JST" in request.body and request.subject.startswith("承認依頼")


def test_approve_releases_and_reject_cancels(ledger, awaiting):
    done = approval.apply_decision(ledger, awaiting, 1, approved=True, by="suzuki")
    assert done["decision"] == "approved" and len(done["deliveries"]) == 3
    assert {d.status for d in deliveries(ledger, awaiting)} == {"planned"} and status(ledger, awaiting) == "approved"
    assert not approval.approval_request(ledger, awaiting, 1).current  # decided: nothing left to ask

    add_entry(ledger, "other", accounts=["city-x"], text="別のお知らせです。", approval=True)
    plan(ledger, "other")
    rejected = approval.apply_decision(ledger, "other", 1, approved=False, by="suzuki")
    assert rejected["decision"] == "rejected" and status(ledger, "other") == "rejected"
    assert {d.status for d in deliveries(ledger, "other")} == {"cancelled"}


def test_a_superseded_revision_is_never_released(ledger, config, cal, awaiting):
    write(cal, A.replace("    text: ごみ収集日程のお知らせです。", "    approval: true\n    text: 変更後の文面です。"))
    sync_calendar(ledger, config, cal, now=NOW)
    assert approval.apply_decision(ledger, awaiting, 1, approved=True)["decision"] == "superseded"
    assert {d.status for d in deliveries(ledger, awaiting) if d.revision == 2} == {"awaiting_approval"}


def test_no_answer_in_time_parks_the_post_and_alerts(ledger, awaiting):
    deadline = datetime(2027, 1, 5, 0, 50, tzinfo=UTC)
    outcome = approval.handle_timeout(ledger, awaiting, 1, deadline=deadline, to=[], city_name="こほ市")
    assert outcome["decision"] == "timeout" and len(outcome["deliveries"]) == 3
    rows = deliveries(ledger, awaiting)
    assert {d.status for d in rows} == {"needs_attention"} and "09:50 JST" in rows[0].last_error
    with ledger.session(readonly=True) as session:
        [alert] = ledger_alerts.pending_alerts(session, kinds=["approval_timeout"])
    assert alert.dedup_key == "approval_timeout:gomi:r1" and alert.severity == "critical"


def test_deadline_lead_comes_from_the_environment(monkeypatch):
    assert approval.deadline_lead() == timedelta(minutes=10)
    monkeypatch.setenv(approval.DEADLINE_ENV, "2.5")
    assert approval.deadline_lead() == timedelta(minutes=2.5)
    assert approval.approvers('["suzuki", {"id": "7", "name": "Tanaka"}]') == [
        {"id": "suzuki", "name": "suzuki"},
        {"id": "7", "name": "Tanaka"},
    ]


def test_an_entry_back_in_the_files_is_planned_again(ledger, config, cal):
    write(cal, A, B)
    sync_calendar(ledger, config, cal, now=NOW)
    write(cal, A)
    sync_calendar(ledger, config, cal, now=NOW)
    assert status(ledger, "kosodate") == "cancelled"

    write(cal, A, B)  # restored, unchanged
    report = sync_calendar(ledger, config, cal, now=NOW)

    assert report.revised == ["kosodate"] and status(ledger, "kosodate") == "planned"
    rows = deliveries(ledger, "kosodate")
    assert [(d.revision, d.status) for d in rows] == [(1, "cancelled"), (2, "planned")]


def test_a_retracted_entry_still_in_the_files_is_not_planned_again(ledger, config, cal):
    write(cal, B)
    sync_calendar(ledger, config, cal, now=NOW)
    with ledger.session() as session:  # what calendar_retract leaves behind
        ledger_deliveries.cancel_deliveries(session, "kosodate", reason="retracted")
        ledger_entries.set_entry_status(session, "kosodate", "cancelled")
    report = sync_calendar(ledger, config, cal, now=NOW)
    assert not report.planned and status(ledger, "kosodate") == "cancelled"
