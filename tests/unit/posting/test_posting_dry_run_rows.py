"""The ad-hoc dry run shows every account's fitted text with the problems beside it, whatever else is
wrong with the form: the preview a person asked for is there exactly when they need it."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from koho.posting.report import link_previews, preview_text
from tests.unit.posting.conftest import NOW

QUIET = datetime(2026, 12, 1, 14, 15, tzinfo=UTC)  # 23:15 JST: quiet hours for most accounts
TEXT = "本日の窓口は17時で終了します。"
SANDBOX = "http://127.0.0.1:8750/_timeline"


def dry(submit, now=NOW, **form):
    result = submit({"accounts": ["all"], "text": TEXT, "requested_by": "広報課", "dry_run": True, **form}, now=now)
    return result.check.as_dict()


def rows(data) -> dict:
    return {p["account_id"]: p for p in data["previews"]}


def test_in_quiet_hours_every_account_still_shows_its_text_and_why_it_would_be_refused(submit):
    data = dry(submit, now=QUIET, images=["ok.png"])
    by_account = rows(data)
    assert {"city-x", "city-line", "city-instagram", "kosodate-line", "bousai-x", "kanko-instagram"} <= set(by_account)
    assert all(TEXT in "".join(p["parts"]) for p in by_account.values())
    assert any("quiet hours" in problem for problem in by_account["city-x"]["problems"])
    assert by_account["bousai-x"]["problems"] == []  # no quiet hours for the disaster account


def test_one_accounts_missing_image_is_beside_that_account_and_spares_the_others(submit):
    by_account = rows(dry(submit))
    for instagram in ("city-instagram", "kanko-instagram"):  # each says so, not only the first
        assert any(p.startswith("images: instagram posts need an image") for p in by_account[instagram]["problems"])
        assert by_account[instagram]["parts"] == [TEXT]
    assert by_account["city-x"]["problems"] == [] and by_account["city-x"]["parts"] == [TEXT]


def test_a_bad_link_or_markup_still_shows_the_texts(submit):
    by_link = rows(dry(submit, accounts=["city-x", "city-line"], link="javascript:alert(1)"))
    assert by_link["city-x"]["parts"] == [TEXT] and by_link["city-line"]["parts"] == [TEXT]
    marked = dry(submit, accounts=["city-x"], text="<b>太字</b>のお知らせ")
    assert rows(marked)["city-x"]["parts"] == ["<b>太字</b>のお知らせ"]
    assert any(e["field"] == "text" and "HTML" in e["reason"] for e in marked["errors"])


def test_a_text_too_long_for_one_platform_gives_that_account_a_row_with_the_reason(submit):
    long = "長いお知らせです。" * 300  # 2,700 characters: one LINE message, too long for Instagram
    by_account = rows(dry(submit, accounts=["city-line", "city-instagram"], text=long, images=["ok.png"]))
    assert by_account["city-line"]["parts"] == [long] and not by_account["city-line"]["problems"]
    insta = by_account["city-instagram"]
    assert insta["parts"] == [] and insta["strategy"] == "not_fitted"
    assert any(p.startswith("text: does not fit instagram") for p in insta["problems"])


def test_an_account_koho_will_not_post_to_gets_a_row_saying_why(submit):
    by_account = rows(dry(submit, accounts=["city-x", "old-x"]))
    assert by_account["old-x"]["parts"] == [] and by_account["old-x"]["platform"] == "x"
    assert any("retired" in p for p in by_account["old-x"]["problems"])


def test_the_report_puts_each_accounts_problems_under_its_text(submit):
    report = preview_text(dry(submit, accounts=["city-x", "city-instagram"]))
    insta = report[report.index("== city-instagram") :]
    assert insta.index("| " + TEXT) < insta.index("! images: instagram posts need an image")
    assert "! " not in report[report.index("== city-x") : report.index("== city-instagram")]


def test_accounts_on_a_stand_in_platform_link_to_their_rendered_preview(submit):
    data = dry(submit, accounts=["city-x", "city-line"], link="https://www.city.example.jp/madoguchi/")
    accounts = {
        "city-x": {"connection_id": "conn_city_x", "handle": "city_x", "name": "こほ市"},
        "city-line": {"connection_id": "conn_city_line", "handle": "@city-line", "name": "こほ市LINE"},
    }

    link_previews(data, accounts, {"conn_city_x": SANDBOX})

    x = rows(data)["city-x"]
    query = parse_qs(urlsplit(x["preview_url"]).query)
    assert x["preview_url"].startswith(f"{SANDBOX}/preview?")
    assert query["platform"] == ["x"] and query["part"] == x["parts"] and query["handle"] == ["city_x"]
    assert query["link"] == ["https://www.city.example.jp/madoguchi/"]
    assert rows(data)["city-line"].get("preview_url") is None  # a real platform: no stand-in to show it
    assert f"preview: {x['preview_url']}" in preview_text(data)
