"""Post templates: per-platform lookup with a default, strict variables, no HTML escaping."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from koho.text import fit, render_post, rules_for
from koho.text.rules import DEFAULT_RULES
from koho.text.templates import TemplateError, include_dir, jp_date, jp_datetime, jp_time, template_names

NOTICE = {
    "title": "粗大ごみ収集日の変更",
    "body": "年末年始は収集日が変わります。",
    "date": date(2026, 12, 29),
    "time": "9:00",
    "place": "市民会館",
}


def test_every_publishing_platform_has_its_own_template_and_they_all_render():
    posts = include_dir() / "templates" / "posts"
    assert (posts / "default.j2").is_file() and (posts / "emergency" / "default.j2").is_file()
    for name, rule in DEFAULT_RULES.items():
        if not rule.publish:
            continue
        assert (posts / f"{name}.j2").is_file(), name
        minimal = render_post(name, {"title": "お知らせ", "body": "本文です。"})
        assert "本文です。" in minimal and "日時" not in minimal
        full = render_post(name, NOTICE)
        assert "年末年始は収集日が変わります。" in full
        assert full == full.strip() and "\n\n\n" not in full


def test_platform_templates_differ_where_the_platform_needs_it():
    assert (
        render_post("x", NOTICE)
        == "【粗大ごみ収集日の変更】年末年始は収集日が変わります。\n12月29日（火） 9:00／市民会館"
    )
    assert render_post("line", NOTICE) == (
        "【粗大ごみ収集日の変更】\n年末年始は収集日が変わります。\n■日時 12月29日（火） 9:00\n■場所 市民会館"
    )
    assert render_post("website", NOTICE).startswith("年末年始は")  # the title is the page heading there


def test_unknown_platform_falls_back_to_default():
    assert template_names("tiktok") == ["posts/tiktok.j2", "posts/default.j2"]
    assert render_post("tiktok", NOTICE) == render_post("threads", NOTICE)  # threads.j2 includes default.j2


def test_missing_variable_is_an_error_naming_it():
    with pytest.raises(TemplateError, match="'body' is undefined"):
        render_post("x", {"title": "件名だけ"})


def test_plain_text_is_not_html_escaped():
    text = render_post("mastodon", {"title": "A&B <説明会>", "body": "\"申込\" & 'お問い合わせ' <先着順>"})
    assert text == "【A&B <説明会>】\n\"申込\" & 'お問い合わせ' <先着順>"


def test_emergency_template_wraps_the_words_without_changing_them():
    body = "湖北川の水位が上昇しています。直ちに避難してください。"
    issued = datetime(2026, 9, 1, 5, 30, tzinfo=UTC)  # 14:30 in Tokyo
    text = render_post(
        "x", {"title": "避難指示", "body": body, "issued_at": issued, "issuer": "災害対策本部"}, emergency=True
    )
    assert text == f"【緊急】避難指示\n{body}\n（9月1日（火）14:30発表・災害対策本部）"
    assert render_post("line", {"title": "避難指示", "body": body}, emergency=True) == f"【緊急】避難指示\n{body}"
    fitted = fit("x", text, mode="emergency")
    assert fitted.parts == [text]


def test_rendered_post_goes_through_the_fitter():
    text = render_post("x", NOTICE)
    fitted = fit("x", text, link="https://www.city.koho.example.jp/gomi", hashtags=["ごみ"])
    assert fitted.strategy == "as_is" and fitted.lengths[0] <= rules_for("x").max_length


def test_include_dir_comes_from_the_environment(tmp_path, monkeypatch):
    posts = tmp_path / "templates" / "posts"
    (posts / "emergency").mkdir(parents=True)
    (posts / "default.j2").write_text("{{ body }}（テスト市）\n", encoding="utf-8")
    (posts / "emergency" / "default.j2").write_text("緊急：{{ body }}\n", encoding="utf-8")
    monkeypatch.setenv("KOHO_INCLUDE_DIR", str(tmp_path))
    assert include_dir() == tmp_path
    assert render_post("x", {"body": "本文"}) == "本文（テスト市）"
    assert render_post("x", {"body": "本文"}, emergency=True) == "緊急：本文"
    (posts / "default.j2").unlink()
    monkeypatch.setenv("KOHO_INCLUDE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(TemplateError, match="no post template"):
        render_post("x", {"body": "本文"})


def test_japanese_date_filters_show_tokyo_time():
    late_utc = datetime(2026, 11, 24, 20, 5, tzinfo=UTC)  # already the 25th in Tokyo
    assert jp_date(late_utc) == "11月25日（水）"
    assert jp_time(late_utc) == "5:05"
    assert jp_datetime("2026-11-24T20:05:00Z") == "11月25日（水）5:05"
    assert jp_date(date(2027, 1, 1)) == "1月1日（金）"
    with pytest.raises(TemplateError, match="date and time"):
        jp_time(date(2027, 1, 1))
