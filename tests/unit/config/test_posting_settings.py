"""include/config/posting.yaml: defaults when absent, located errors when broken, and the values a
DAG file reads while it is parsed (which must never make the DAG fail to load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from koho.config.posting import PostingSettings, load_posting_settings, settings_for_parse
from koho.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "posting.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_missing_file_means_the_defaults(tmp_path):
    assert load_posting_settings(tmp_path / "posting.yaml") == PostingSettings()
    assert not PostingSettings().is_pr("anyone")


def test_mistakes_name_file_line_and_field(tmp_path):
    path = write(tmp_path, "pr_users: [kato]\napproval_timeout_minuts: 30\n")
    with pytest.raises(ConfigError, match=r"posting.yaml:2.*approval_timeout_minuts"):
        load_posting_settings(path)


def test_a_dag_being_parsed_gets_the_settings_or_the_defaults_never_an_error(tmp_path):
    good = write(tmp_path, "emergency_confirmation: 配信する\napproval_timeout_minutes: 30\n")
    assert settings_for_parse(good).emergency_confirmation == "配信する"
    assert settings_for_parse(good).approval_timeout_minutes == 30
    broken = write(tmp_path, "emergency_confirmation: [unclosed\n")
    assert settings_for_parse(broken) == PostingSettings()
    assert settings_for_parse(tmp_path) == PostingSettings()  # a folder: unreadable as a file
