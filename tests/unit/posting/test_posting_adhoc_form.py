"""The ad-hoc post form: every bad input is reported with its field and reason, and nothing at all
is written to the ledger (no entry, no delivery) — "nothing half-posts"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from koho.posting.form import MAX_IMAGES
from koho.posting.report import approval_body, md_code, preview_text
from tests.unit.conftest import PR_USER
from tests.unit.posting.conftest import NOW, counts, seed_delivery

BASE = {
    "accounts": ["city-x"],
    "text": "ごみ収集日の変更のお知らせです。",
    "when": "now",
    "requested_by": "クリーン推進課 佐藤",
}
LONG_TAG = "#" + "あ" * 200

# (case, form changes, field (prefix) of an error, account of that error or None, words of the reason)
BAD = [
    ("empty text", {"text": ""}, "text", None, "must not be empty"),
    ("blank text", {"text": "   \n "}, "text", None, "must not be empty"),
    ("missing text", {"text": None}, "text", None, "must not be empty"),
    ("text not a string", {"text": 123}, "text", None, "expected text"),
    ("unknown account", {"accounts": ["city-z"]}, "accounts[0]", None, "unknown account or group 'city-z'"),
    ("typo with a hint", {"accounts": ["city-lin"]}, "accounts[0]", None, "did you mean 'city-line'"),
    ("unknown topic group", {"accounts": ["topic:sports"]}, "accounts[0]", None, "unknown topic 'sports'"),
    ("unknown platform group", {"accounts": ["platform:tiktok"]}, "accounts[0]", None, "no account on platform"),
    ("retired account", {"accounts": ["city-x", "old-x"]}, "accounts[1]", "old-x", "retired"),
    ("suspended account named", {"accounts": ["paused-facebook"]}, "accounts[0]", "paused-facebook", "suspended"),
    (
        "read-only platform named",
        {"accounts": ["city-youtube"]},
        "accounts[0]",
        "city-youtube",
        "does not post to youtube",
    ),
    ("no accounts", {"accounts": []}, "accounts", None, "choose at least one account"),
    ("accounts not a list", {"accounts": {"city-x": True}}, "accounts", None, "expected a list"),
    ("past time", {"when": "at", "publish_at": "2026-11-30 09:00"}, "publish_at", None, "in the past"),
    (
        "time earlier today",
        {"when": "at", "publish_at": "2026-12-01T09:59:00+09:00"},
        "publish_at",
        None,
        "in the past",
    ),
    ("'at' without a time", {"when": "at"}, "publish_at", None, "needs a date and time"),
    ("unreadable time", {"when": "at", "publish_at": "明日の朝"}, "publish_at", None, "cannot read"),
    ("date without a time", {"when": "at", "publish_at": "2026-12-05"}, "publish_at", None, "no time of day"),
    ("not a real date", {"when": "at", "publish_at": "2026-02-30 10:00"}, "publish_at", None, "not a real date"),
    ("unknown 'when'", {"when": "later"}, "when", None, "not allowed"),
    (
        "more than a year ahead",
        {"when": "at", "publish_at": "2028-01-05 10:00"},
        "publish_at",
        None,
        "more than a year",
    ),
    (
        "oversized image",
        {"accounts": ["city-line"], "images": ["huge.png"]},
        "images[0]",
        None,
        "MB; the limit is 8 MB",
    ),
    ("missing image", {"accounts": ["city-line"], "images": ["missing.png"]}, "images[0]", None, "not found"),
    ("not an image", {"accounts": ["city-line"], "images": ["notimage.png"]}, "images[0]", None, "is not a PNG"),
    (
        "path outside media",
        {"accounts": ["city-line"], "images": ["../secret.png"]},
        "images",
        None,
        "must be a file name inside include/media",
    ),
    (
        "too many images",
        {"accounts": ["city-line"], "images": ["ok.png"] * (MAX_IMAGES + 1)},
        "images",
        None,
        f"at most {MAX_IMAGES}",
    ),
    (
        "plain http image",
        {"accounts": ["city-line"], "images": ["http://www.city.example.jp/a.png"]},
        "images",
        None,
        "https",
    ),
    ("javascript link", {"link": "javascript:alert(1)"}, "link", None, "must be an https:// URL"),
    ("http link", {"link": "http://www.city.example.jp/"}, "link", None, "must be an https:// URL"),
    ("link with a space", {"link": "https://www.city example.jp/"}, "link", None, "not a valid URL"),
    ("script tag", {"text": "お知らせ<script>alert(1)</script>"}, "text", None, "looks like HTML"),
    ("img onerror", {"text": "<img src=x onerror=alert(1)>お知らせ"}, "text", None, "looks like HTML"),
    ("javascript: in text", {"text": "こちら javascript:alert(1)"}, "text", None, "looks like HTML"),
    ("HTML title", {"title": "<b>重要</b>"}, "title", None, "looks like HTML"),
    ("title too long", {"title": "長" * 201}, "title", None, "200"),
    ("text beyond a thread", {"text": LONG_TAG}, "text", "city-x", "does not fit x"),
    (
        "text beyond LINE",
        {"accounts": ["city-line"], "text": "お知らせ。" * 1100},
        "text",
        "city-line",
        "does not fit line",
    ),
    ("Instagram without image", {"accounts": ["city-instagram"]}, "images", "city-instagram", "need an image"),
    ("quiet hours", {"when": "at", "publish_at": "2026-12-01 22:30"}, "publish_at", "city-x", "quiet hours"),
    (
        "account's own quiet hours",
        {"accounts": ["kosodate-line"], "when": "at", "publish_at": "2026-12-01 20:15"},
        "publish_at",
        "kosodate-line",
        "quiet hours 20:00-08:00",
    ),
    ("unknown field", {"sheduled": "2026-12-02 10:00"}, "sheduled", None, "unknown field"),
    ("no requester", {"requested_by": ""}, "requested_by", None, "must not be empty"),
    ("requester too long", {"requested_by": "課" * 101}, "requested_by", None, "at most 100"),
    ("dry_run not a flag", {"dry_run": "yes"}, "dry_run", None, "true or false"),
    ("bad hashtag", {"hashtags": ["ご み"]}, "hashtags", None, "may only hold letters"),
]


@pytest.mark.parametrize(("changes", "field", "account", "reason"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_located_and_nothing_is_planned(submit, ledger, changes, field, account, reason):
    form = {**BASE, **changes}
    form = {k: v for k, v in form.items() if v is not None or k == "text"}
    result = submit(form)

    assert not result.check.ok
    assert result.recorded is None and result.error is not None, "an invalid form must be refused by record()"
    matches = [p for p in result.check.errors if (p.where.field or "").startswith(field) and reason in p.message]
    assert matches, f"no error on {field!r} saying {reason!r}: {[str(p) for p in result.check.errors]}"
    if account:
        assert any(p.where.account == account for p in matches)
    assert counts(ledger) == (0, 0)


def test_at_least_thirty_bad_inputs():
    assert len(BAD) >= 30


def test_every_error_of_a_form_is_reported_at_once(submit, ledger):
    result = submit(
        {
            "accounts": ["city-z", "old-x"],
            "text": "",
            "link": "http://x.example.jp",
            "when": "at",
            "publish_at": "2020-01-01 10:00",
            "requested_by": "",
            "colour": "red",
        }
    )
    fields = {p.where.field for p in result.check.errors}
    assert {"accounts[0]", "accounts[1]", "text", "link", "publish_at", "requested_by", "colour"} <= fields
    assert counts(ledger) == (0, 0)


def test_one_bad_account_holds_back_every_account(submit, ledger):
    """Unlike the calendar, an ad-hoc post is one decision: nothing goes to the valid accounts either."""
    result = submit({**BASE, "accounts": ["city-x", "city-line", "old-x"]})
    assert [p.where.account for p in result.check.errors] == ["old-x"]
    assert counts(ledger) == (0, 0)


def test_daily_cap_counts_what_the_ledger_already_holds(submit, ledger, config):
    seed_delivery(ledger, config, "kosodate-line", NOW + timedelta(hours=2))  # 12:00 JST, its cap is 1 a day
    before = counts(ledger)
    result = submit({**BASE, "accounts": ["kosodate-line"], "when": "at", "publish_at": "2026-12-01 15:00"})
    (problem,) = result.check.errors
    assert problem.where.field == "publish_at" and problem.where.account == "kosodate-line"
    assert "over the daily cap of 1" in problem.message
    assert counts(ledger) == before


def test_spacing_counts_what_the_ledger_already_holds(submit, ledger, config):
    seed_delivery(ledger, config, "city-line", NOW + timedelta(hours=1))  # 11:00 JST; needs 180 min between posts
    before = counts(ledger)
    result = submit({**BASE, "accounts": ["city-line"], "when": "at", "publish_at": "2026-12-01 12:00"})
    (problem,) = result.check.errors
    assert problem.where.account == "city-line" and "at least 180 min between posts" in problem.message
    assert counts(ledger) == before


def test_emergencies_do_not_use_up_caps(submit, ledger, config):
    seed_delivery(ledger, config, "kosodate-line", NOW + timedelta(hours=2), entry_id="em-1", origin="emergency")
    result = submit({**BASE, "accounts": ["kosodate-line"], "when": "at", "publish_at": "2026-12-01 15:00"})
    assert result.check.ok and result.recorded


def test_quiet_hours_allowed_on_request(submit, ledger):
    result = submit({**BASE, "when": "at", "publish_at": "2026-12-01 22:30", "allow_quiet_hours": True})
    assert result.check.ok, result.check.errors
    assert any("quiet hours" in p.message and p.severity == "warning" for p in result.check.problems)
    assert result.recorded and counts(ledger) == (1, 1)


def test_holiday_blocked_by_policy(submit, blocking_config, ledger):
    result = submit({**BASE, "when": "at", "publish_at": "2027-01-01 10:00"}, config_=blocking_config)
    assert any(p.where.field == "publish_at" and "blocks posting on holidays" in p.message for p in result.check.errors)
    assert counts(ledger) == (0, 0)


def test_holiday_is_a_warning_by_default(submit):
    result = submit({**BASE, "when": "at", "publish_at": "2027-01-01 10:00"})
    assert result.check.ok
    assert any("public holiday" in p.message for p in result.check.warnings)


# -- valid forms ------------------------------------------------------------------------------


def test_staff_post_is_recorded_awaiting_approval(submit, ledger):
    result = submit({**BASE, "accounts": ["city-x", "city-line"]})
    assert result.check.ok and result.check.needs_approval
    assert result.recorded["needs_approval"] is True
    from sqlalchemy import select

    from koho.ledger.models import CalendarEntry, Delivery

    with ledger.session(readonly=True) as session:
        entry = session.get(CalendarEntry, "adhoc-test-0001")
        statuses = set(session.scalars(select(Delivery.status)))
    assert entry.origin == "adhoc" and entry.status == "awaiting_approval"
    assert entry.created_by == "staff-user (for クリーン推進課 佐藤)"
    assert statuses == {"awaiting_approval"}


def test_pr_user_needs_no_approval(submit):
    result = submit(BASE, user=PR_USER)
    assert result.check.ok and not result.check.needs_approval and not result.recorded["needs_approval"]


def test_requested_by_cannot_claim_the_pr_section(submit):
    """Typing the PR section's name proves nothing: the logged-in user decides."""
    result = submit({**BASE, "requested_by": PR_USER})
    assert result.check.needs_approval


def test_unknown_user_needs_approval(submit):
    result = submit(BASE, user=None)
    assert result.check.needs_approval


def test_groups_resolve_to_active_accounts_only(submit):
    result = submit({**BASE, "accounts": ["all"], "images": ["ok.png"]})
    assert result.check.ok, result.check.errors
    chosen = {p.account_id for p in result.check.previews}
    assert "old-x" not in chosen and "paused-facebook" not in chosen and "city-youtube" not in chosen
    assert {"city-x", "city-line", "city-instagram", "kosodate-line", "bousai-x", "kanko-instagram"} == chosen


def test_dry_run_shows_fitted_texts_counts_and_rules_and_writes_nothing(submit, ledger, config):
    seed_delivery(ledger, config, "city-line", NOW + timedelta(hours=1))
    before = counts(ledger)
    text = "本日のごみ収集は台風のため中止します。" * 12
    result = submit(
        {
            **BASE,
            "accounts": ["city-x", "city-line"],
            "text": text,
            "when": "at",
            "publish_at": "2026-12-01 12:00",
            "dry_run": True,
        }
    )
    data = result.check.as_dict()
    assert data["dry_run"] is True
    by_account = {p["account_id"]: p for p in data["previews"]}
    x = by_account["city-x"]
    assert x["strategy"] == "thread" and len(x["parts"]) > 1
    assert all(n <= x["limit"] == 280 for n in x["lengths"])
    assert x["unit"] == "weighted characters"
    assert by_account["city-line"]["parts"] == [text]
    assert any(r.startswith("min_spacing") for r in by_account["city-line"]["rules"])
    report = preview_text(data)
    for part in x["parts"]:
        for line in part.splitlines():
            assert f"| {line}" in report
    assert "min_spacing" in report and "city-line" in report
    assert result.check.errors  # would break spacing: reported, not raised
    assert result.recorded is None and counts(ledger) == before


def test_a_valid_dry_run_records_nothing_and_the_same_form_for_real_does(submit, ledger):
    form = {**BASE, "accounts": ["city-x", "city-line"], "dry_run": True}
    before = counts(ledger)

    dry = submit(form)

    assert dry.check.ok and dry.check.dry_run and dry.recorded is None and dry.error is None
    assert counts(ledger) == before
    real = submit({**form, "dry_run": False})
    assert real.recorded and counts(ledger) == (before[0] + 1, before[1] + 2)


def test_images_go_to_every_platform_that_takes_them(submit):
    result = submit({**BASE, "accounts": ["city-x", "city-line"], "images": ["ok.png"]})
    assert result.check.ok
    assert result.check.image_platforms == ["line", "x"]  # X uploads media since POST /2/media/upload
    assert not any("without the images" in p.message for p in result.check.warnings)


def test_images_only_where_the_platform_takes_them(submit, monkeypatch):
    """A platform whose hook says ``images=False`` gets the text alone, with a warning, not a failure."""
    from koho.platforms.types import Capabilities
    from koho.platforms.x import XHook

    monkeypatch.setattr(XHook, "capabilities", Capabilities(images=False))
    result = submit({**BASE, "accounts": ["city-x", "city-line"], "images": ["ok.png"]})
    assert result.check.ok
    assert result.check.image_platforms == ["line"]
    assert any(p.where.account == "city-x" and "without the images" in p.message for p in result.check.warnings)
    assert result.check.payload()["image_platforms"] == ["line"]


def test_hostile_text_in_the_form_is_shown_as_text_only(submit):
    """Whatever a person typed appears inside Markdown code in the approval request and as plain
    text in the logs; it is never markup."""
    hostile = "<img src=x onerror=alert(1)> ```\n# heading"
    result = submit({**BASE, "requested_by": hostile})
    assert result.check.ok
    body = approval_body(result.check.as_dict(), result.check.entry.text)
    assert md_code(hostile) in body
    fence = md_code(hostile).split("\n", 1)[0].removesuffix("text")
    assert len(fence) == 4, "the fence is longer than any backtick run in the text"
    outside = body.replace(md_code(hostile), "")
    assert "<img" not in outside
    assert "\n" not in preview_text(result.check.as_dict()).split("approval:")[0].split("\n")[0]


def test_entry_id_is_stable_per_run():
    from koho.posting.form import adhoc_entry_id

    assert adhoc_entry_id("manual__1", NOW) == adhoc_entry_id("manual__1", NOW)
    assert adhoc_entry_id("manual__1", NOW) != adhoc_entry_id("manual__2", NOW)


def test_a_retried_check_keeps_one_post(submit, ledger):
    """check_and_record retried after it had recorded ("now" has moved on): still one post per account."""
    from sqlalchemy import select

    from koho.ledger.models import Delivery

    first = submit(BASE)
    again = submit(BASE, now=NOW + timedelta(seconds=30))
    assert again.recorded["entry_id"] == first.recorded["entry_id"]
    with ledger.session(readonly=True) as session:
        rows = session.execute(select(Delivery.revision, Delivery.status)).all()
    assert sorted(rows) == [(1, "cancelled"), (2, "awaiting_approval")]
