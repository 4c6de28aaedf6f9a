"""Whole-calendar validation: entries across files, per-account exclusion, caps with the ledger's
planned deliveries, holidays, cancelled and already published entries, and the shipped demo."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from koho.calendar import PlannedSlot, load_calendar
from koho.calendar.demo_media import DEMO_IMAGES
from koho.calendar.media import image_kind
from koho.config import load_config
from koho.config.loader import include_dir
from koho.errors import InputError
from tests.unit.calendar.calendar_helpers import NOW, yaml_text


def entry(id: str, when: str, targets: list[str], **extra) -> dict:
    return {"id": id, "title": id, "publish_at": when, "targets": targets, "text": f"{id} の本文", **extra}


def test_valid_entries_in_several_files_load_beside_broken_ones(load):
    result = load(
        {
            "a.yaml": yaml_text(
                [entry("a1", "2027-02-01 10:00", ["city-x"]), entry("a2", "2027-02-30 10:00", ["city-x"])]
            ),
            "b.csv": "ID,タイトル,公開日時,対象,本文\nb1,t,2027-02-02 10:00,city-x,本文\nb2,t,,city-x,本文\n",
        }
    )
    assert [e.id for e in result.entries] == ["a1", "b1"]
    assert [(p.where.file, p.where.line) for p in result.errors] == [("a.yaml", 9), ("b.csv", 3)]
    with pytest.raises(InputError) as raised:
        result.raise_for_problems()
    assert "a.yaml:9" in str(raised.value) and "b.csv:3" in str(raised.value)


def test_duplicate_ids_across_files_name_both_places_and_keep_the_first(load):
    result = load(
        {
            "a.yaml": yaml_text([entry("same", "2027-02-01 10:00", ["city-x"])]),
            "b.yaml": yaml_text([entry("same", "2027-02-02 10:00", ["city-x"])]),
        }
    )
    [problem] = result.errors
    assert str(problem.where).startswith("b.yaml:2") and "already used at a.yaml:2" in problem.message
    assert result.by_id()["same"].source == "a.yaml:2"


def test_a_problem_with_one_account_excludes_only_that_account(load):
    result = load(
        {
            "a.yaml": yaml_text(
                [
                    entry("multi", "2027-02-01 10:00", ["city-x", "city-instagram", "old-x", "paused-facebook"]),
                ]
            )
        }
    )
    got = result.by_id()["multi"]
    assert got.accounts == ["city-x"]
    assert set(got.excluded_accounts) == {"city-instagram", "old-x", "paused-facebook"}
    assert "need an image" in got.excluded_accounts["city-instagram"]
    assert {(p.where.account, p.severity) for p in result.problems} == {
        ("city-instagram", "error"),
        ("old-x", "error"),
        ("paused-facebook", "warning"),
    }


def test_daily_cap_counts_entries_and_existing_planned_deliveries(load):
    # city-line: 2 a day, 180 min apart. One delivery is already planned in the ledger that day.
    existing = [PlannedSlot("city-line", datetime(2027, 2, 1, 8, 0, tzinfo=UTC), "ledger-1")]  # 17:00 JST
    result = load(
        {
            "a.yaml": yaml_text(
                [
                    entry("l1", "2027-02-01 09:00", ["city-line", "city-x"]),
                    entry("l2", "2027-02-01 13:00", ["city-line", "city-x"]),
                ]
            )
        },
        existing=existing,
    )
    assert result.by_id()["l1"].accounts == ["city-x", "city-line"]
    l2 = result.by_id()["l2"]
    assert l2.accounts == ["city-x"] and "daily cap of 2" in l2.excluded_accounts["city-line"]
    [problem] = result.errors
    assert (problem.where.file, problem.where.line, problem.where.account) == ("a.yaml", 9, "city-line")


def test_existing_slots_of_an_entry_in_the_files_are_replaced_not_doubled(load):
    existing = [PlannedSlot("kosodate-line", datetime(2027, 2, 1, 1, 0, tzinfo=UTC), "k1")]
    result = load({"a.yaml": yaml_text([entry("k1", "2027-02-01 10:00", ["kosodate-line"])])}, existing=existing)
    assert result.problems == [] and result.by_id()["k1"].accounts == ["kosodate-line"]


def test_social_entry_losing_every_account_is_not_loaded(load):
    result = load({"a.yaml": yaml_text([entry("late", "2027-02-01 22:30", ["kosodate-line"])])})
    assert result.entries == []
    assert [p.where.account for p in result.errors] == ["kosodate-line", None]
    assert "no target account is left" in result.errors[1].message


def test_website_and_newsletter_entries_need_no_targets(load):
    data = {
        "id": "web",
        "title": "お知らせ",
        "publish_at": "2027-02-01 23:00",
        "channels": ["website", "newsletter"],
        "text": "夜でも掲載できます。",
        "category": "くらし",
    }
    result = load({"a.yaml": yaml_text([data])})
    assert result.problems == []
    assert result.by_id()["web"].accounts == []


def test_newsletter_items_over_the_configured_length_get_a_warning(load):
    data = {
        "id": "news",
        "title": "長い記事",
        "publish_at": "2027-02-01 10:00",
        "channels": ["newsletter"],
        "text": "長い本文。" * 60,
    }
    result = load({"a.yaml": yaml_text([data])})
    [problem] = result.problems
    assert problem.severity == "warning" and "newsletter takes 200" in problem.message
    assert [e.id for e in result.entries] == ["news"]


def test_holidays_warn_unless_allowed_and_block_when_the_policy_says_so(load, blocking_config):
    files = {
        "a.yaml": yaml_text(
            [
                entry("h1", "2027-02-11 10:00", ["city-x"]),
                entry("h2", "2027-02-23 10:00", ["city-x"], allow_holiday=True),
            ]
        )
    }
    warned = load(files)
    assert [e.id for e in warned.entries] == ["h1", "h2"]
    [warning] = warned.problems
    assert warning.severity == "warning" and "建国記念の日" in warning.message and warning.where.line == 4
    blocked = load(files, config_=blocking_config)
    assert blocked.entries == []
    assert [("天皇誕生日" in p.message or "建国記念の日" in p.message) for p in blocked.errors] == [True, True]


def test_cancelled_entries_may_lie_in_the_past_and_skip_volume_rules(load):
    result = load(
        {
            "a.yaml": yaml_text(
                [
                    entry("gone", "2020-01-06 09:00", ["city-x", "old-x"], status="cancelled"),
                    entry("gone2", "2027-02-01 23:30", ["kosodate-line"], status="cancelled"),
                ]
            )
        }
    )
    assert result.problems == []
    assert {e.id: e.status for e in result.entries} == {"gone": "cancelled", "gone2": "cancelled"}
    assert result.by_id()["gone"].accounts == ["city-x"]


def test_already_published_entries_may_lie_in_the_past(load):
    files = {"a.yaml": yaml_text([entry("done", "2026-11-20 09:00", ["city-x"])])}
    assert "in the past" in load(files).errors[0].message
    assert load(files, published={"done"}).problems == []


def test_now_must_be_aware(tmp_path, config):
    with pytest.raises(ValueError, match="aware"):
        load_calendar(tmp_path, config, now=datetime(2027, 1, 1))


def test_an_overriding_text_is_fitted_instead_of_the_base_text(load):
    result = load(
        {
            "a.yaml": yaml_text(
                [
                    entry(
                        "o1",
                        "2027-02-01 10:00",
                        ["city-line"],
                        text="長い本文。" * 1100,
                        overrides={"city-line": "短い本文"},
                    ),
                ]
            )
        }
    )
    assert result.problems == [] and result.by_id()["o1"].accounts == ["city-line"]


def test_long_text_for_x_becomes_a_thread_and_is_accepted(load):
    result = load(
        {"a.yaml": yaml_text([entry("t1", "2027-02-01 10:00", ["city-x"], text="防災訓練のお知らせです。" * 40)])}
    )
    assert result.problems == []


def test_yaml_numbers_and_timestamps_are_read_as_staff_mean_them(load):
    text = (
        "entries:\n  - id: 2027\n    title: 2027\n    publish_at: 2027-02-01 10:00:00\n"
        "    targets: city-x\n    text: 本文\n    approval: yes\n"
    )
    result = load({"a.yaml": text})
    assert result.problems == []
    got = result.by_id()["2027"]
    assert got.publish_at == datetime(2027, 2, 1, 1, 0, tzinfo=UTC) and got.targets == ["city-x"] and got.approval


def test_empty_calendar_directory(tmp_path, config):
    result = load_calendar(tmp_path / "missing", config, now=NOW)
    assert result.entries == [] and result.problems == []


# ------------------------------------------------------------------------------------------ the demo


def test_shipped_demo_calendar_validates_without_errors():
    config = load_config(include_dir() / "config")
    result = load_calendar(include_dir() / "calendar", config, now=datetime(2026, 12, 1, tzinfo=UTC))
    assert result.errors == [], "\n".join(str(p) for p in result.errors)
    assert len(result.entries) >= 8
    by_id = result.by_id()
    assert any(e.approval for e in result.entries)
    assert any(e.overrides for e in result.entries)
    assert any(set(e.channels) == {"website", "newsletter"} for e in result.entries)
    assert any(e.status == "cancelled" for e in result.entries)
    assert all(e.excluded_accounts == {} for e in result.entries)
    assert "kosodate-line" in by_id["kosodate-hiroba-2027-01"].accounts


def test_demo_images_are_real_small_images():
    media = include_dir() / "media"
    for name in DEMO_IMAGES:
        data = (media / name).read_bytes()
        assert image_kind(data[:16]) == "png" and len(data) < 20_000
