"""include/config/emergency.yaml: the shipped file is valid; mistakes are located by file, line, field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from koho.config.emergency import approval_timeout_for_parse, load_emergency_settings
from koho.config.loader import include_dir
from koho.errors import ConfigError

GOOD = """\
feed_url: https://www.data.jma.go.jp/developer/xml/feed/extra.xml
city_name: テスト市
area_codes: ["1229900", "1229800"]
area_name: テスト市
kinds: [大雨特別警報, 大雨警報]
poll_interval_seconds: 60
approval_timeout_minutes: 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "emergency.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_settings_load():
    settings = load_emergency_settings(include_dir() / "config" / "emergency.yaml")
    assert settings.area_codes == ["1229900"]
    assert "大雨特別警報" in settings.kinds and settings.statuses == ["発表"]
    assert (include_dir() / "templates" / settings.template).is_file()
    assert settings.page_link("1229900").endswith("area_code=1229900")


def test_defaults(tmp_path):
    settings = load_emergency_settings(write(tmp_path, GOOD))
    assert settings.statuses == ["発表"]
    assert settings.feed_titles == ["気象警報・注意報（Ｈ２７）"]
    assert settings.template == "posts/emergency/jma_warning.j2"


@pytest.mark.parametrize(
    ("change", "line", "field", "message"),
    [
        (('"1229800"', '"12298"'), 3, "area_codes[1]", "invalid value '12298'"),
        (
            ("kinds: [大雨特別警報, 大雨警報]", "kinds: [大雨特別警報, 大雨]"),
            5,
            "kinds",
            "'大雨' is not a JMA warning kind",
        ),
        (("kinds: [大雨特別警報, 大雨警報]", "kinds: [大雨警報, 大雨警報]"), 5, "kinds", "listed twice"),
        (
            ("poll_interval_seconds: 60", "poll_interval_seconds: 0"),
            6,
            "poll_interval_seconds",
            "greater than or equal to 1",
        ),
        (
            ("approval_timeout_minutes: 10", "approval_timout_minutes: 10"),
            7,
            "approval_timout_minutes",
            "unknown field",
        ),
        (("feed_url: https", "feed_url: ftp"), 1, "feed_url", "invalid value"),
        (("city_name: テスト市\n", ""), None, "city_name", "required field is missing"),
    ],
)
def test_mistakes_name_file_line_and_field(tmp_path, change, line, field, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_emergency_settings(path)
    (problem,) = caught.value.problems
    assert problem.where.file == "emergency.yaml"
    assert problem.where.field == field
    if line:
        assert problem.where.line == line
    assert message in problem.message
    assert str(caught.value).startswith("emergency.yaml:")


def test_page_url_needs_the_area_code_placeholder(tmp_path):
    with pytest.raises(ConfigError, match=r"field 'page_url'.*\{area_code\}"):
        load_emergency_settings(write(tmp_path, GOOD + "page_url: https://www.jma.go.jp/bosai/warning/\n"))


def test_yaml_syntax_errors_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match=r"emergency.yaml:\d+: YAML syntax error"):
        load_emergency_settings(write(tmp_path, GOOD + "kinds: [unclosed\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_emergency_settings(tmp_path / "missing" / "emergency.yaml")
    with pytest.raises(ConfigError, match="empty"):
        load_emergency_settings(write(tmp_path, "# nothing yet\n"))


def test_a_dag_being_parsed_gets_the_timeout_or_the_default_never_an_error(tmp_path):
    assert approval_timeout_for_parse(write(tmp_path, GOOD)) == timedelta(minutes=10)
    broken = write(tmp_path, GOOD.replace("approval_timeout_minutes: 10", "approval_timeout_minutes: never"))
    assert approval_timeout_for_parse(broken) == timedelta(minutes=15)
    assert approval_timeout_for_parse(tmp_path) == timedelta(minutes=15)  # a folder: unreadable as a file
