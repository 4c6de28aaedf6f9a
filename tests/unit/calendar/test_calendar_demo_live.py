"""The rolling demo calendar ``make run`` writes: relative to the clock it is given, valid against the
demo city's real config with exactly one refusal, stable across restarts."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest

from koho.calendar import load_calendar
from koho.calendar.approval import approval_deadline
from koho.calendar.demo import DAYS_AHEAD, FILE_NAME, write_demo_calendar
from koho.config import load_config
from koho.config.loader import include_dir
from koho.timeutil import to_local

#: 2026-12-04 11:20 JST (daytime) and 2026-12-04 03:35 JST (night: quiet hours for most accounts).
DAY = datetime(2026, 12, 4, 2, 20, 30, tzinfo=UTC)
NIGHT = datetime(2026, 12, 3, 18, 35, tzinfo=UTC)


@pytest.fixture(scope="module")
def config():
    return load_config(include_dir() / "config")


def generated(tmp_path, config, now):
    write_demo_calendar(tmp_path, config, now=now)
    return load_calendar(tmp_path, config, now=now)


FIRST = ("hello", "approval")


def kinds(result):
    """({"hello": entry, "approval": entry}, the daily entries)."""
    by_id = result.by_id()
    pick = {suffix: next(e for i, e in by_id.items() if i.endswith(suffix)) for suffix in FIRST}
    return pick, [e for i, e in by_id.items() if not i.endswith(FIRST)]


def refusal(result):
    """The one error: the refused post, named by its file line, field and account, with the rule."""
    assert len(result.errors) == 2, "\n".join(map(str, result.errors))  # the spacing, then "not loaded"
    spacing, dropped = result.errors
    assert spacing.where.file == FILE_NAME and spacing.where.line and spacing.where.account
    assert dropped.where.field.endswith("targets") and "not loaded" in dropped.message
    return spacing


@pytest.mark.parametrize("now", [DAY, NIGHT], ids=["day", "night"])
def test_first_visit_posts_go_out_within_minutes_one_waits_one_is_refused(tmp_path, config, now):
    result = generated(tmp_path, config, now)
    first, _ = kinds(result)
    hello, approval = first["hello"], first["approval"]
    assert now < hello.publish_at <= now + timedelta(minutes=5)
    assert hello.accounts and not hello.excluded_accounts
    assert approval.approval and approval.accounts
    # a newcomer has a quarter of an hour or more to approve it, and sees it published within the hour
    assert now + timedelta(minutes=15) <= approval_deadline(approval.publish_at) < approval.publish_at
    assert approval.publish_at <= now + timedelta(hours=1)
    refused = refusal(result)
    assert refused.where.account == hello.accounts[0]
    assert "only 1 min from entry" in refused.message and hello.id in refused.message
    assert not any(e.id.endswith("refused") for e in result.entries)


def test_by_day_the_greeting_reaches_several_platforms(tmp_path, config):
    hello = kinds(generated(tmp_path, config, DAY))[0]["hello"]
    platforms = {a.platform for a in config.accounts if a.id in hello.accounts}
    assert len(platforms) >= 4


def test_at_night_only_accounts_outside_their_quiet_hours_are_greeted(tmp_path, config):
    hello = kinds(generated(tmp_path, config, NIGHT))[0]["hello"]
    assert hello.accounts == ["bousai-x"]


def test_the_next_two_weeks_have_a_post_every_day(tmp_path, config):
    _, daily = kinds(generated(tmp_path, config, DAY))
    days = sorted({to_local(e.publish_at).date() for e in daily})
    today = to_local(DAY).date()
    assert days == [today + timedelta(days=n) for n in range(1, DAYS_AHEAD + 1)]
    assert all(e.accounts and not e.excluded_accounts for e in daily)


def test_a_restart_within_the_hour_keeps_the_first_visit_posts(tmp_path, config):
    write_demo_calendar(tmp_path, config, now=DAY)
    before = (tmp_path / FILE_NAME).read_text(encoding="utf-8")
    write_demo_calendar(tmp_path, config, now=DAY + timedelta(minutes=20))
    assert (tmp_path / FILE_NAME).read_text(encoding="utf-8") == before


def test_a_later_run_makes_new_first_visit_posts_and_keeps_the_daily_ones(tmp_path, config):
    first = generated(tmp_path, config, DAY).by_id()
    later = generated(tmp_path, config, DAY + timedelta(days=1)).by_id()
    assert {i for i in first if i.endswith(FIRST)}.isdisjoint(later)
    shared = {i for i in first if not i.endswith(FIRST)} & set(later)
    assert len(shared) == DAYS_AHEAD - 1
    for entry_id in shared:  # the same content: no new revision, nothing posted twice
        assert first[entry_id].model_dump(exclude={"source"}) == later[entry_id].model_dump(exclude={"source"})


def test_an_unreadable_previous_file_is_replaced(tmp_path, config):
    (tmp_path / FILE_NAME).write_text("entries: [\n# generated_at: nonsense\n", encoding="utf-8")
    result = generated(tmp_path, config, DAY)
    assert kinds(result)[0]["hello"].accounts


def test_beside_the_committed_demo_calendar_the_refusal_is_the_only_error(tmp_path, config):
    """In the committed calendar's month, the daily posts must not break its accounts' caps."""
    shutil.copy(include_dir() / "calendar" / "demo.yaml", tmp_path / "demo.yaml")
    now = datetime(2027, 1, 4, 0, 0, tzinfo=UTC)
    result = generated(tmp_path, config, now)
    refusal(result)
