"""Who is told, from the configuration, the city's name (or "Koho" without a policy), and the
parts of a message that are refused before anything is sent."""

from __future__ import annotations

import re

import pytest

from koho.config import KohoConfig
from koho.notify import (
    Attachment,
    InlineImage,
    Message,
    NotifyError,
    city_name,
    crisis_team,
    department,
    max_message_bytes,
    pr_section,
)


def test_recipients_come_from_departments_and_policy(config):
    crisis = config.policy.model_copy(update={"crisis_emails": ["kiki@city.example.jp", "koho@city.example.jp"]})
    with_crisis = KohoConfig(config.accounts, config.departments, crisis, [])

    assert city_name(config) == "テスト市"
    assert pr_section(config) == ["koho@city.example.jp"]
    assert crisis_team(config) == ["koho@city.example.jp"]
    assert crisis_team(with_crisis) == ["kiki@city.example.jp", "koho@city.example.jp"]  # each once
    assert department(config, "childcare") == ["kodomo@city.example.jp"]
    assert max_message_bytes(config) == 10_000_000


def test_an_unknown_department_is_an_error_naming_the_file(config):
    with pytest.raises(NotifyError, match=r"departments\.yaml: no department 'parks'"):
        department(config, "parks")


def test_without_a_policy_mails_still_have_a_name_and_the_addresses_known(config):
    broken = KohoConfig(config.accounts, config.departments, None, [])

    assert city_name(broken) == "Koho"
    assert pr_section(broken) == [] and crisis_team(broken) == []
    assert max_message_bytes(broken) == 10_000_000


def test_the_size_limit_is_read_from_policy_yaml(tmp_path):
    from koho.config.loader import load_config
    from tests.unit.calendar.calendar_helpers import write_config

    base = write_config(tmp_path / "a")
    policy = (tmp_path / "a" / "policy.yaml").read_text(encoding="utf-8")
    (tmp_path / "a" / "policy.yaml").write_text(policy + "mail: {max_message_mb: 2.5}\n", encoding="utf-8")
    assert max_message_bytes(load_config(tmp_path / "a")) == 2_500_000 != max_message_bytes(base)
    (tmp_path / "a" / "policy.yaml").write_text(policy + "mail: {max_message_mb: 0}\n", encoding="utf-8")
    problems = [str(p) for p in load_config(tmp_path / "a").problems]
    assert any("policy.yaml" in p and "mail.max_message_mb" in p for p in problems), problems


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: Attachment("a.csv", b"", mime_type="csv"), "'csv' is not a MIME type"),
        (lambda: Attachment("../etc/passwd", b""), "give a plain file name"),
        (lambda: InlineImage("chart 1", b""), "use letters, digits"),
        (lambda: InlineImage("chart", b"", mime_type="text/html"), "is not an image type"),
        (lambda: Message(id="m", to=("", None), subject="s", template="t"), "m: no recipient address"),
    ],
)
def test_bad_parts_of_a_message_are_refused_with_what_is_wrong(build, says):
    with pytest.raises(NotifyError, match=re.escape(says)):
        build()
