"""Volume rules as pure functions: daily caps by JST day, spacing, quiet hours, emergencies."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from koho.calendar.rules import PlannedSlot, volume_problems
from koho.config.schema import Caps
from koho.timeutil import to_local

JST = ZoneInfo("Asia/Tokyo")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 2, day, hour, minute, tzinfo=JST)


def slot(hour: int, minute: int = 0, *, day: int = 1, account: str = "a", **kw) -> PlannedSlot:
    return PlannedSlot(account, at(day, hour, minute), entry_id=f"{day}-{hour}:{minute:02d}", **kw)


def blamed(problems) -> list[tuple[str, str]]:
    return [(p.slot.entry_id, p.rule) for p in problems]


def test_daily_cap_blames_only_the_posts_beyond_it():
    caps = {"a": Caps(per_day=2)}
    problems = volume_problems([slot(9), slot(12), slot(15), slot(18)], caps)
    assert blamed(problems) == [("1-15:00", "per_day"), ("1-18:00", "per_day")]
    assert "daily cap of 2" in problems[0].message and "09:00, 12:00" in problems[0].message


def test_existing_deliveries_count_but_are_never_blamed():
    caps = {"a": Caps(per_day=2)}
    problems = volume_problems([slot(20, existing=True), slot(8, existing=True), slot(12)], caps)
    assert blamed(problems) == [("1-12:00", "per_day")]


def test_jst_day_boundary_is_15_00_utc():
    caps = {"a": Caps(per_day=1)}
    before = PlannedSlot("a", datetime(2027, 2, 1, 14, 59, tzinfo=UTC), "before")  # 23:59 JST on 1 Feb
    after = PlannedSlot("a", datetime(2027, 2, 1, 15, 0, tzinfo=UTC), "after")  # 00:00 JST on 2 Feb
    assert volume_problems([before, after], caps) == []
    same_utc_day = PlannedSlot("a", datetime(2027, 2, 1, 1, 0, tzinfo=UTC), "morning")  # 10:00 JST on 1 Feb
    assert blamed(volume_problems([same_utc_day, before], caps)) == [("before", "per_day")]
    [problem] = volume_problems([same_utc_day, before], caps)
    assert "2027-02-01 (JST)" in problem.message


def test_minimum_spacing_is_measured_both_ways():
    caps = {"a": Caps(min_spacing_minutes=60)}
    problems = volume_problems([slot(10), slot(10, 59), slot(11), slot(9, 30, existing=True)], caps)
    # 10:00 is 30 min from the planned 9:30; 10:59 is then free (10:00 was not posted); 11:00 is 1 min from it
    assert blamed(problems) == [("1-10:00", "min_spacing"), ("1-11:00", "min_spacing")]
    assert "only 30 min from entry '1-9:30'" in problems[0].message
    assert volume_problems([slot(10), slot(11)], caps) == []  # exactly the spacing is fine


def test_spacing_zero_allows_posts_at_the_same_minute():
    assert volume_problems([slot(10), slot(10)], {"a": Caps(min_spacing_minutes=0)}) == []


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [
        (22, 0, True),
        (23, 59, True),
        (0, 0, True),
        (6, 59, True),
        (7, 0, False),
        (20, 59, False),
        (21, 0, True),
        (12, 0, False),
    ],
)
def test_quiet_hours_wrap_midnight(hour, minute, quiet):
    caps = {"a": Caps(quiet_hours="21:00-07:00")}
    problems = volume_problems([slot(hour, minute)], caps)
    assert bool(problems) is quiet
    if quiet:
        assert problems[0].rule == "quiet_hours" and "21:00-07:00" in problems[0].message


def test_quiet_hours_are_judged_in_jst_not_utc():
    caps = {"a": Caps(quiet_hours="21:00-07:00")}
    noon_utc = PlannedSlot("a", datetime(2027, 2, 1, 12, 0, tzinfo=UTC), "noon-utc")  # 21:00 JST
    morning_utc = PlannedSlot("a", datetime(2027, 2, 1, 22, 0, tzinfo=UTC), "7-jst")  # 07:00 JST
    assert blamed(volume_problems([noon_utc, morning_utc], caps)) == [("noon-utc", "quiet_hours")]


def test_equal_start_and_end_means_no_quiet_hours():
    assert volume_problems([slot(3)], {"a": Caps(quiet_hours="00:00-00:00")}) == []


def test_emergencies_are_exempt_and_use_up_nothing():
    caps = {"a": Caps(per_day=1, min_spacing_minutes=60, quiet_hours="21:00-07:00")}
    emergency = [slot(3, emergency=True), slot(9, 55, emergency=True), slot(23, emergency=True)]
    assert volume_problems([*emergency, slot(10)], caps) == []
    judged = volume_problems([*emergency, slot(10)], caps, exempt_emergencies=False)
    assert {p.slot.entry_id for p in judged} >= {"1-3:00", "1-23:00"}


def test_accounts_are_judged_separately_and_unknown_accounts_are_free():
    caps = {"a": Caps(per_day=1), "b": Caps(per_day=1)}
    planned = [slot(9, account="a"), slot(9, account="b"), slot(10, account="a"), slot(10, account="zzz")]
    assert [(p.slot.account_id, p.slot.entry_id) for p in volume_problems(planned, caps)] == [("a", "1-10:00")]


def test_a_blamed_slot_does_not_count_against_later_ones():
    caps = {"a": Caps(per_day=2, min_spacing_minutes=60, quiet_hours="21:00-07:00")}
    # 06:00 is blamed for quiet hours and so does not take a place in the cap of two
    problems = volume_problems([slot(9), slot(6), slot(12)], caps)
    assert blamed(problems) == [("1-6:00", "quiet_hours")]


def test_several_rules_are_reported_together_and_where_carries_the_account():
    from koho.errors import Where

    caps = {"a": Caps(per_day=1, min_spacing_minutes=60, quiet_hours="21:00-07:00")}
    late = PlannedSlot("a", at(1, 21, 30), "late", where=Where(file="c.yaml", line=9, field="publish_at"))
    problems = volume_problems([slot(21, existing=True), late], caps)
    assert {p.rule for p in problems} == {"quiet_hours", "min_spacing", "per_day"}
    assert str(problems[0].to_problem().where) == "c.yaml:9, field 'publish_at', account 'a'"


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="naive"):
        volume_problems([PlannedSlot("a", datetime(2027, 2, 1, 9, 0))], {"a": Caps()})


def test_three_busy_days_on_twelve_accounts_blame_exactly_the_posts_over_the_cap():
    """600 posts, one every 7 minutes round-robin: each account posts every 84 minutes (never
    closer than its 30-minute spacing), about 17 times a JST day against a cap of 6."""
    caps = {f"acc{i}": Caps(per_day=6, min_spacing_minutes=30) for i in range(12)}
    start = at(1, 8)
    planned = [PlannedSlot(f"acc{i % 12}", start + timedelta(minutes=7 * i), f"e{i}") for i in range(600)]
    problems = volume_problems(planned, caps)
    assert {p.rule for p in problems} == {"per_day"}
    per_day = Counter((s.account_id, to_local(s.at).date()) for s in planned)
    assert len(problems) == sum(n - 6 for n in per_day.values() if n > 6)
