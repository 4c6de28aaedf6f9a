"""Configuration loading: the shipped demo config is valid, and every kind of mistake is
reported with the file, line and field it is in, while the valid rest still loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from koho.config import load_config
from koho.config.loader import include_dir
from koho.errors import ConfigError

DEPARTMENTS = """\
departments:
  - id: pr
    name: 広報課
    email: koho@city.example.jp
    keywords: [広報]
  - id: roads
    name: 道路課
    email: doro@city.example.jp
    keywords: [道路, 陥没]
"""

POLICY = """\
city_name: テスト市
timezone: Asia/Tokyo
pr_department: pr
crisis_emails: [koho@city.example.jp]
caps:
  per_day: 5
  min_spacing_minutes: 60
  quiet_hours: "21:00-07:00"
holidays: warn
texts:
  sample: true
  directory_title: 一覧
  directory_intro: サンプル
  disclaimer: サンプル
  feedback_note: サンプル
channels:
  website:
    base_url: https://www.city.example.jp/news/
    feed_title: お知らせ
"""

# Line numbers matter below: account 1 starts on line 2, account 2 on line 10.
ACCOUNTS = """\
accounts:
  - id: city-x
    name: 市公式 X
    platform: x
    handle: city_sample
    kind: general
    department: pr
    connection_id: koho_city_x
  - id: bousai-x
    name: 防災 X
    platform: x
    handle: bousai_sample
    kind: special
    topic: disaster
    department: roads
    connection_id: koho_bousai_x
    caps: {per_day: 20, quiet_hours: "00:00-00:00"}
"""


def write_config(tmp_path: Path, **overrides: str) -> Path:
    files = {"departments.yaml": DEPARTMENTS, "policy.yaml": POLICY, "accounts.yaml": ACCOUNTS}
    for name, text in overrides.items():
        files[name.replace("_", ".", 1) if "." not in name else name] = text
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_shipped_demo_config_is_valid():
    config = load_config(include_dir() / "config")
    assert config.problems == []
    assert len(config.accounts) == 12
    platforms = {a.platform for a in config.accounts if a.kind == "general"}
    assert platforms == {"x", "facebook", "instagram", "threads", "line", "youtube", "bluesky", "mastodon"}
    assert {a.topic for a in config.accounts if a.kind == "special"} == {"child_rearing", "disaster", "tourism"}
    assert config.policy is not None and config.policy.texts.sample is True


def test_base_fixture_is_valid(tmp_path):
    config = load_config(write_config(tmp_path))
    assert config.problems == []
    assert [a.id for a in config.accounts] == ["city-x", "bousai-x"]
    bousai = config.accounts_by_id["bousai-x"]
    caps = config.caps_for(bousai)
    assert caps.per_day == 20 and caps.min_spacing_minutes == 60  # unset spacing comes from the policy
    assert caps.quiet_hours is not None and not caps.quiet_hours.contains(__import__("datetime").time(23, 0))


def replace_line(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def with_budget(budget_lines: str) -> str:
    """ACCOUNTS with a block-style ``caps.write_budget`` on the first account: ``caps`` on line 9,
    ``write_budget`` on line 10 and its fields from line 11, so each value has a line of its own."""
    return replace_line(
        ACCOUNTS,
        "    connection_id: koho_city_x\n",
        "    connection_id: koho_city_x\n    caps:\n      write_budget:\n" + budget_lines,
    )


WRITE_BUDGETS_POLICY = POLICY + "write_budgets:\n  line:\n    posts: 50\n    per_seconds: 3600\n"  # line 20 on


# (file, broken text, expected line, field fragment or None, message fragment)
CASES = [
    # accounts.yaml — structure
    ("accounts.yaml", "", None, None, "file is empty"),
    ("accounts.yaml", "- id: x\n", 1, None, "expected a mapping with a 'accounts:'"),
    ("accounts.yaml", "accounts: {}\n", 1, "accounts", "must be a list"),
    ("accounts.yaml", ACCOUNTS + "extras: 1\n", 18, "extras", "unknown top-level key"),
    ("accounts.yaml", "accounts:\n  - id: [unclosed\n", 3, None, "YAML syntax error"),
    ("accounts.yaml", "accounts:\n\t- id: tab\n", 2, None, "YAML syntax error"),
    # accounts.yaml — fields of one account
    (
        "accounts.yaml",
        replace_line(
            ACCOUNTS, "    platform: x\n    handle: city_sample", "    platform: myspace\n    handle: city_sample"
        ),
        4,
        "accounts[0].platform",
        "expected",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    kind: general\n", "    kind: main\n"),
        6,
        "accounts[0].kind",
        "expected",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    kind: general\n", ""),
        2,
        "accounts[0].kind",
        "required field is missing",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    connection_id: koho_city_x\n", ""),
        2,
        "accounts[0].connection_id",
        "required field is missing",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "  - id: city-x\n", "  - id: City X!\n"),
        2,
        "accounts[0].id",
        "invalid value",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    handle: city_sample\n", '    handle: "city sample"\n'),
        5,
        "accounts[0].handle",
        "invalid value",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    department: pr\n", "    department: pr\n    departmnet: roads\n"),
        8,
        "accounts[0].departmnet",
        "unknown field",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    department: pr\n", "    department: parks\n"),
        7,
        "accounts[0].department",
        "unknown department 'parks'",
    ),
    ("accounts.yaml", replace_line(ACCOUNTS, "    topic: disaster\n", ""), 9, "accounts[1]", "needs a 'topic'"),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    kind: general\n", "    kind: general\n    topic: tourism\n"),
        2,
        "accounts[0]",
        "has no 'topic'",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "  - id: bousai-x\n", "  - id: city-x\n"),
        9,
        "accounts[1].id",
        "duplicate account id",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    handle: bousai_sample\n", "    handle: City_Sample\n"),
        12,
        "accounts[1].handle",
        "already registered on line 5",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    caps: {per_day: 20,", "    caps: {per_day: 0,"),
        17,
        "accounts[1].caps.per_day",
        "greater than or equal to 1",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, 'quiet_hours: "00:00-00:00"', 'quiet_hours: "late night"'),
        17,
        "accounts[1].caps.quiet_hours",
        "22:00-07:00",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, 'quiet_hours: "00:00-00:00"', 'quiet_hours: "25:00-07:00"'),
        17,
        "accounts[1].caps.quiet_hours",
        "24-hour",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    caps: {per_day: 20,", "    caps: {per_week: 3, per_day: 20,"),
        17,
        "accounts[1].caps.per_week",
        "unknown field",
    ),
    (
        "accounts.yaml",
        replace_line(
            ACCOUNTS, "    connection_id: koho_city_x\n", "    connection_id: koho_city_x\n    status: paused\n"
        ),
        9,
        "accounts[0].status",
        "expected",
    ),
    (
        "accounts.yaml",
        replace_line(
            ACCOUNTS,
            "    connection_id: koho_city_x\n",
            "    connection_id: koho_city_x\n    staff_hours_per_post: -1\n",
        ),
        9,
        "accounts[0].staff_hours_per_post",
        "greater than or equal to 0",
    ),
    (
        "accounts.yaml",
        replace_line(
            ACCOUNTS, "    connection_id: koho_city_x\n", "    connection_id: koho_city_x\n    url: not-a-url\n"
        ),
        9,
        "accounts[0].url",
        "URL",
    ),
    (
        "accounts.yaml",
        replace_line(
            ACCOUNTS, "    connection_id: koho_city_x\n", "    connection_id: koho_city_x\n    started_on: 2024-13-01\n"
        ),
        9,
        "accounts[0].started_on",
        "date",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    name: 市公式 X\n", "    name: 市公式 X\n    name: 二重\n"),
        4,
        "accounts[0].name",
        "duplicate key",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    connection_id: koho_city_x\n", '    connection_id: "koho city x"\n'),
        8,
        "accounts[0].connection_id",
        "invalid value",
    ),
    # accounts.yaml — caps.write_budget
    (
        "accounts.yaml",
        with_budget("        posts: 0\n        per_seconds: 900\n"),
        11,
        "accounts[0].caps.write_budget.posts",
        "greater than or equal to 1",
    ),
    (
        "accounts.yaml",
        with_budget("        posts: many\n        per_seconds: 900\n"),
        11,
        "accounts[0].caps.write_budget.posts",
        "valid integer",
    ),
    (
        "accounts.yaml",
        with_budget("        posts: 25\n        per_seconds: 0\n"),
        12,
        "accounts[0].caps.write_budget.per_seconds",
        "greater than 0",
    ),
    (
        "accounts.yaml",
        with_budget("        posts: 25\n        per_seconds: 172800\n"),
        12,
        "accounts[0].caps.write_budget.per_seconds",
        "less than or equal",
    ),
    (
        "accounts.yaml",
        with_budget("        posts: 25\n"),
        10,
        "accounts[0].caps.write_budget.per_seconds",
        "required field is missing",
    ),
    (
        "accounts.yaml",
        with_budget("        calls: 25\n        posts: 25\n        per_seconds: 900\n"),
        11,
        "accounts[0].caps.write_budget.calls",
        "unknown field",
    ),
    (
        "accounts.yaml",
        replace_line(ACCOUNTS, "    caps: {per_day: 20,", "    caps: {write_budget: 25, per_day: 20,"),
        17,
        "accounts[1].caps.write_budget",
        "valid dictionary",
    ),
    # departments.yaml
    (
        "departments.yaml",
        replace_line(DEPARTMENTS, "    email: doro@city.example.jp\n", "    email: doro-at-city\n"),
        8,
        "departments[1].email",
        "email",
    ),
    (
        "departments.yaml",
        replace_line(DEPARTMENTS, "  - id: roads\n", "  - id: pr\n"),
        6,
        "departments[1].id",
        "duplicate department id",
    ),
    (
        "departments.yaml",
        replace_line(DEPARTMENTS, "    name: 道路課\n", ""),
        6,
        "departments[1].name",
        "required field is missing",
    ),
    (
        "departments.yaml",
        replace_line(DEPARTMENTS, "    keywords: [道路, 陥没]\n", "    keywords: 道路\n"),
        9,
        "departments[1].keywords",
        "list",
    ),
    # policy.yaml
    (
        "policy.yaml",
        replace_line(POLICY, "timezone: Asia/Tokyo\n", "timezone: Tokyo/Japan\n"),
        2,
        "timezone",
        "unknown time zone",
    ),
    (
        "policy.yaml",
        replace_line(POLICY, "pr_department: pr\n", "pr_department: press\n"),
        3,
        "pr_department",
        "unknown department 'press'",
    ),
    ("policy.yaml", replace_line(POLICY, "holidays: warn\n", "holidays: sometimes\n"), 9, "holidays", "expected"),
    (
        "policy.yaml",
        replace_line(POLICY, "  disclaimer: サンプル\n", ""),
        10,
        "texts.disclaimer",
        "required field is missing",
    ),
    (
        "policy.yaml",
        replace_line(POLICY, "  min_spacing_minutes: 60\n", "  min_spacing_minutes: 2000\n"),
        7,
        "caps.min_spacing_minutes",
        "less than or equal",
    ),
    (
        "policy.yaml",
        replace_line(POLICY, "    base_url: https://www.city.example.jp/news/\n", "    base_url: ftp//nowhere\n"),
        18,
        "channels.website.base_url",
        "URL",
    ),
    (
        "policy.yaml",
        replace_line(POLICY, "crisis_emails: [koho@city.example.jp]\n", "crisis_emails: [nobody]\n"),
        4,
        "crisis_emails[0]",
        "email",
    ),
    (
        "policy.yaml",
        POLICY + "review: {improve_below: 0.2, retire_below: 0.4}\n",
        20,
        "review",
        "retire_below must not be above",
    ),
    ("policy.yaml", POLICY + "platform_limits: {mastodon: 0}\n", 20, "platform_limits", "positive length"),
    ("policy.yaml", POLICY + "platform_limits: {myspace: 100}\n", 20, "platform_limits.myspace", "expected"),
    ("policy.yaml", "just a string\n", 1, None, "expected a mapping"),
    (
        "policy.yaml",
        replace_line(WRITE_BUDGETS_POLICY, "    posts: 50\n", "    posts: -5\n"),
        22,
        "write_budgets.line.posts",
        "greater than or equal to 1",
    ),
    (
        "policy.yaml",
        replace_line(WRITE_BUDGETS_POLICY, "  line:\n", "  myspace:\n"),
        21,
        "write_budgets.myspace",
        "expected",
    ),
    (
        "policy.yaml",
        replace_line(POLICY, "  per_day: 5\n", "  per_day: 5\n  write_budget: {posts: 5, per_seconds: 60}\n"),
        7,
        "caps.write_budget",
        "per platform",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "line", "field", "message"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_each_mistake_is_located(tmp_path, name, text, line, field, message):
    config = load_config(write_config(tmp_path, **{name: text}))
    problems = [p for p in config.problems if p.where.file == name]
    assert problems, f"no problem reported for {name}; got {config.problems}"
    match = [
        p
        for p in problems
        if message.lower() in p.message.lower() and (field is None or (p.where.field or "").startswith(field))
    ]
    assert match, f"expected '{message}' at field {field}; got: " + "; ".join(map(str, problems))
    assert match[0].where.line == line, f"expected line {line}, got {match[0]}"
    # The message a person reads starts with the place.
    assert str(match[0]).startswith(f"{name}:{line}" if line else name)


def test_one_bad_account_does_not_stop_the_others(tmp_path):
    broken = replace_line(
        ACCOUNTS, "    platform: x\n    handle: city_sample", "    platform: myspace\n    handle: city_sample"
    )
    config = load_config(write_config(tmp_path, **{"accounts.yaml": broken}))
    assert [a.id for a in config.accounts] == ["bousai-x"]
    assert len(config.errors) == 1
    assert config.errors[0].where.account == "city-x"
    with pytest.raises(ConfigError, match=r"accounts.yaml:4, field 'accounts\[0\].platform', account 'city-x'"):
        config.raise_for_problems()


def test_a_bad_write_budget_skips_only_its_account(tmp_path):
    broken = with_budget("        posts: 0\n        per_seconds: 900\n")
    config = load_config(write_config(tmp_path, **{"accounts.yaml": broken}))
    assert [a.id for a in config.accounts] == ["bousai-x"]
    assert [(p.where.line, p.where.field, p.where.account) for p in config.errors] == [
        (11, "accounts[0].caps.write_budget.posts", "city-x")
    ]


def test_write_budget_comes_from_the_account_else_the_platforms_default(tmp_path):
    line_account = (
        '  - id: city-line\n    name: 市公式 LINE\n    platform: line\n    handle: "@city-sample"\n'
        "    kind: general\n    department: pr\n    connection_id: koho_city_line\n"
    )
    accounts = with_budget("        posts: 25\n        per_seconds: 900\n") + line_account
    config = load_config(write_config(tmp_path, **{"accounts.yaml": accounts, "policy.yaml": WRITE_BUDGETS_POLICY}))
    assert config.problems == []
    own = config.write_budget_for("city-x")
    assert own is not None and (own.posts, own.per_seconds) == (25, 900)
    default = config.write_budget_for("city-line")
    assert default is not None and (default.posts, default.per_seconds) == (50, 3600)
    assert config.write_budget_for("bousai-x") is None  # X has no default: its headers announce the limits
    assert config.write_budget_for("not-in-the-registry") is None


def test_shipped_line_accounts_have_a_budget():
    """LINE sends no rate-limit headers: without a budget a burst of broadcasts would meet its 429s."""
    config = load_config(include_dir() / "config")
    lines = [a for a in config.accounts if a.platform == "line"]
    assert lines and all(config.write_budget_for(a.id) is not None for a in lines)


def test_missing_file_is_reported_not_raised(tmp_path):
    directory = write_config(tmp_path)
    (directory / "policy.yaml").unlink()
    config = load_config(directory)
    assert config.policy is None
    assert [str(p) for p in config.problems] == ["policy.yaml: file not found"]
    assert len(config.accounts) == 2  # accounts still load against the departments


def test_utf8_bom_and_shift_jis(tmp_path):
    directory = write_config(tmp_path)
    (directory / "accounts.yaml").write_bytes(b"\xef\xbb\xbf" + ACCOUNTS.encode())
    assert load_config(directory).problems == []
    (directory / "accounts.yaml").write_bytes(ACCOUNTS.encode("cp932"))
    problems = load_config(directory).problems
    assert len(problems) == 1 and "not UTF-8" in problems[0].message


def test_copy_of_demo_config_with_one_edit(tmp_path):
    """Operators edit the shipped files: a single typo there is found on its own line."""
    shutil.copytree(include_dir() / "config", tmp_path / "config")
    path = tmp_path / "config" / "accounts.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.strip() == "platform: mastodon")
    lines[number] = lines[number].replace("mastodon", "mastadon")
    path.write_text("".join(lines), encoding="utf-8")
    config = load_config(tmp_path / "config")
    assert len(config.accounts) == 11
    assert [(p.where.line, p.where.account) for p in config.problems] == [(number + 1, "city-mastodon")]


def test_quiet_hours_wrap_midnight():
    from datetime import time

    from koho.config.schema import QuietHours

    night = QuietHours.parse("21:00-07:00")
    assert night.contains(time(23, 30)) and night.contains(time(6, 59)) and not night.contains(time(7, 0))
    day = QuietHours.parse("12:00-13:00")
    assert day.contains(time(12, 30)) and not day.contains(time(13, 0))
    assert not QuietHours.parse("00:00-00:00").contains(time(3, 0))
    assert str(QuietHours.parse("9:05-24:00")) == "09:05-00:00"
