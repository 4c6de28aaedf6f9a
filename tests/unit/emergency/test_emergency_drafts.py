"""Emergency drafts: accurate short Japanese text, JST times, severity, and feed text kept as data."""

from __future__ import annotations

from dataclasses import replace

import pytest
from jinja2 import UndefinedError

from koho.emergency.drafts import draft_post, render_message
from koho.emergency.jma import AreaWarning, draft_key, relevant


def test_warning_draft(bulletin, settings):
    (warning,) = relevant(bulletin("heavy_rain"), settings)
    draft = draft_post(warning, settings)
    assert draft.key == draft_key(warning)
    assert draft.severity == "high"
    assert draft.link == "https://www.jma.go.jp/bosai/warning/#lang=ja&area_type=class20s&area_code=1229900"
    assert draft.source == warning.document_url
    lines = draft.message.splitlines()
    assert lines[0] == "【こほ市】こほ市に大雨警報・洪水警報が発表されました。"
    assert lines[1] == "（7月10日 5時12分 気象庁発表）"  # 20:12 UTC the day before, shown in JST
    assert lines[2] == warning.headline
    assert lines[3] == f"詳しくは {draft.link}"
    assert "雷注意報" not in draft.message


def test_special_warning_is_critical_and_says_so(bulletin, settings):
    (warning,) = relevant(bulletin("special"), settings)
    draft = draft_post(warning, settings)
    assert draft.severity == "critical"
    assert draft.message.startswith("【緊急・こほ市】こほ市に大雨特別警報が発表されました。")
    assert "（7月10日 7時40分 気象庁発表）" in draft.message


def test_lifting_and_correction_wording(bulletin, settings):
    lifts = settings.model_copy(update={"statuses": ["発表", "解除"]})
    (warning,) = relevant(bulletin("all_clear"), lifts)
    draft = draft_post(warning, lifts)
    assert draft.severity == "advisory"
    assert "こほ市の大雨警報・洪水警報は解除されました。" in draft.message
    assert "（7月10日 15時10分 気象庁発表）" in draft.message
    (corrected,) = relevant(replace(bulletin("heavy_rain"), info_type="訂正"), settings)
    assert draft_post(corrected, settings).message.startswith("【こほ市】（訂正）こほ市に")


def test_city_name_comes_from_settings(bulletin, settings):
    (warning,) = relevant(bulletin("heavy_rain"), settings)
    other = settings.model_copy(update={"city_name": "みなと市役所"})
    assert draft_post(warning, other).message.startswith("【みなと市役所】")


def test_feed_text_is_data_never_template_code(bulletin, settings):
    (warning,) = relevant(bulletin("heavy_rain"), settings)
    hostile = replace(warning, headline="{{ 7*7 }}{% raw %}<b>&amp;</b>", area_name="{{ settings }}&<市>")
    message = draft_post(hostile, settings).message
    assert "{{ 7*7 }}{% raw %}<b>&amp;</b>" in message  # printed as it came, not evaluated, not escaped
    assert "49" not in message
    assert "【こほ市】{{ settings }}&<市>に大雨警報" in message


def test_long_headlines_are_left_out_rather_than_cut(bulletin, settings):
    (warning,) = relevant(bulletin("heavy_rain"), settings)
    long = replace(warning, headline="警戒してください。" * 20)
    message = draft_post(long, settings).message
    assert "警戒してください" not in message and len(message.splitlines()) == 3


def test_trigger_event_dicts_are_accepted(bulletin, settings):
    (warning,) = relevant(bulletin("special"), settings)
    payload = {"key": draft_key(warning), "severity": "critical", **warning.to_dict()}
    assert draft_post(payload, settings) == draft_post(AreaWarning.from_dict(payload), settings)
    assert draft_post(payload, settings).key == payload["key"]


def test_a_template_using_an_unknown_variable_fails_loudly(tmp_path, bulletin, settings):
    (tmp_path / "bad.j2").write_text("{{ area_nmae }}に警報", encoding="utf-8")
    with pytest.raises(UndefinedError):
        render_message("bad.j2", {"area_name": "こほ市"}, templates=tmp_path)


def test_the_template_cannot_reach_python_internals(tmp_path):
    from jinja2.exceptions import SecurityError

    (tmp_path / "evil.j2").write_text("{{ city_name.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8")
    with pytest.raises(SecurityError):
        render_message("evil.j2", {"city_name": "こほ市"}, templates=tmp_path)
