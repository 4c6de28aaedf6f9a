"""Figures per period on hand-made data: every status case, periods in Tokyo time, sums and formulas."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from koho.review.kpis import NO_POSTS, NOT_OFFERED, Figure, account_kpis, rank_accounts, trend_of
from koho.review.model import AccountHistory, AccountRecord, Counters, PostRecord, Snapshot

TOKYO = ZoneInfo("Asia/Tokyo")
AS_OF = datetime(2026, 12, 10, 3, 0, tzinfo=UTC)


def account(offers_reach: bool = True, **kw) -> AccountRecord:
    values = dict(account_id="acct-a", platform="x", platform_name="X", kind="general", staff_hours_per_post=0.5) | kw
    return AccountRecord(offers_reach=offers_reach, **values)


def days(first: date, last: date, followers: int = 1000, reach: int | None = 100, **kw) -> list[Snapshot]:
    out, day = [], first
    while day <= last:
        out.append(Snapshot(day, followers, reach, None if reach is None else reach * 2, **kw))
        day += timedelta(days=1)
    return out


def post(at: datetime, likes: int = 10, **kw) -> PostRecord:
    return PostRecord(f"p-{at.isoformat()}", at, likes=likes, **kw)


def november(history: AccountHistory, fixed: float = 2.0):
    rows = account_kpis(history, as_of=AS_OF, tz=TOKYO, fixed_monthly_hours=fixed)["month"]
    return next(r for r in rows if r.period.label == "2026-11")


NOV = (date(2026, 11, 1), date(2026, 11, 30))


def test_sound_month_figures_and_their_formulas():
    posts = [post(datetime(2026, 11, d, 3, tzinfo=UTC), likes=30) for d in (2, 9, 16)]
    row = november(AccountHistory(account(), days(*NOV, reach=100), posts))
    assert row.posts == 3
    assert row.reach.value == 3000 and row.reach.status is None
    assert row.engagements.value == 90
    assert row.engagement_rate.value == pytest.approx(3.0)
    assert row.engagement_rate.formula == "engagements ÷ reach"
    assert row.staff_hours.value == pytest.approx(3 * 0.5 + 2.0)
    assert row.cost_per_1000.value == pytest.approx(3.5 / 3000 * 1000)
    assert row.cost_per_1000.formula == "staff hours per 1,000 reach"
    assert row.days_since_last_post.value == 14  # 16 Nov to 30 Nov


def test_reach_not_offered_is_null_and_rate_is_by_followers():
    posts = [post(datetime(2026, 11, 2, 3, tzinfo=UTC), likes=20), post(datetime(2026, 11, 3, 3, tzinfo=UTC))]
    row = november(AccountHistory(account(offers_reach=False), days(*NOV, reach=None), posts))
    assert row.reach == Figure(None, "sum of daily reach", NOT_OFFERED)
    assert row.impressions.status == NOT_OFFERED
    assert row.engagement_rate.formula == "engagements per post ÷ followers"
    assert row.engagement_rate.value == pytest.approx(30 / 2 / 1000 * 100)
    assert row.cost_per_1000.formula == "staff hours per 1,000 engagements"


def test_missing_reach_on_some_days_is_no_data_not_a_smaller_sum():
    snaps = days(date(2026, 11, 1), date(2026, 11, 20)) + days(date(2026, 11, 21), NOV[1], reach=None)
    row = november(AccountHistory(account(), snaps, [post(datetime(2026, 11, 2, 3, tzinfo=UTC))]))
    assert row.reach.value is None
    assert row.reach.status == "no data for 10 of 30 days"
    assert row.engagement_rate.value is None and row.engagement_rate.status == row.reach.status


def test_counter_that_goes_down_gives_a_status_with_its_date():
    dropped = post(
        datetime(2026, 11, 5, 3, tzinfo=UTC),
        likes=4,
        previous=Counters(likes=9),
        read_at=datetime(2026, 11, 7, 16, tzinfo=UTC),  # 8 Nov in Tokyo
    )
    row = november(AccountHistory(account(), days(*NOV), [dropped, post(datetime(2026, 11, 6, 3, tzinfo=UTC))]))
    assert row.engagements.value is None
    assert row.engagements.status == "counter went down on 2026-11-08"
    assert row.engagement_rate.value is None


def test_account_with_no_posts():
    rows = account_kpis(AccountHistory(account(), days(*NOV), []), as_of=AS_OF, tz=TOKYO, fixed_monthly_hours=2)
    row = rows["month"][0]
    assert row.posts == 0
    assert row.engagements.status == NO_POSTS
    assert row.days_since_last_post.value is None and row.days_since_last_post.status == NO_POSTS
    assert row.staff_hours.value == 2.0  # the fixed monthly cost remains


def test_late_insight_keeps_the_value_and_says_until_when():
    final = AS_OF + timedelta(hours=30)
    recent = post(datetime(2026, 12, 9, 3, tzinfo=UTC), likes=12, final_at=final)
    rows = account_kpis(
        AccountHistory(account(), days(date(2026, 12, 1), date(2026, 12, 9)), [recent]),
        as_of=AS_OF,
        tz=TOKYO,
        fixed_monthly_hours=2,
    )
    row = rows["month"][-1]
    assert row.engagements.value == 12
    assert row.engagements.status == f"late: insight not final until {final.astimezone(TOKYO):%Y-%m-%d %H:%M}"
    assert row.engagements.usable


def test_late_insight_that_is_final_by_now_is_plain():
    old = post(datetime(2026, 11, 9, 3, tzinfo=UTC), final_at=datetime(2026, 11, 11, 3, tzinfo=UTC))
    assert november(AccountHistory(account(), days(*NOV), [old])).engagements.status is None


def test_metric_rejected_by_the_platform():
    snaps = days(*NOV)
    snaps[3] = Snapshot(snaps[3].day, 1000, None, None, rejected=(("reach", "(#100) metric is not valid"),))
    row = november(AccountHistory(account(), snaps, [post(datetime(2026, 11, 2, 3, tzinfo=UTC))]))
    assert row.reach.value is None
    assert row.reach.status == "rejected by the platform: reach: (#100) metric is not valid"


def test_posts_fall_in_the_tokyo_month():
    # 31 Oct 16:00 UTC is 1 Nov 01:00 in Tokyo.
    row = november(AccountHistory(account(), days(*NOV), [post(datetime(2026, 10, 31, 16, tzinfo=UTC))]))
    assert row.posts == 1


def test_growth_rate_against_the_month_before():
    snaps = days(date(2026, 10, 1), date(2026, 10, 31), followers=1000) + days(*NOV, followers=1100)
    row = november(AccountHistory(account(), snaps, []))
    assert row.growth_rate.value == pytest.approx(10.0)
    assert row.followers.value == 1100


def test_quarter_and_year_add_their_months_up():
    snaps = days(date(2026, 10, 1), date(2026, 12, 9))
    posts = [post(datetime(2026, m, 5, 3, tzinfo=UTC), likes=m) for m in (10, 11, 12)]
    rows = account_kpis(AccountHistory(account(), snaps, posts), as_of=AS_OF, tz=TOKYO, fixed_monthly_hours=1)
    quarter = rows["quarter"][-1]
    assert quarter.period.label == "2026-Q4"
    assert quarter.posts == 3 and quarter.engagements.value == 33
    assert quarter.reach.value == 100 * len(snaps)
    assert quarter.staff_hours.value == pytest.approx(3 * 0.5 + 3 * 1)
    assert rows["year"][-1].period.label == "2026"


def rate(value: float | None) -> Figure:
    return Figure(value, "engagements ÷ reach")


@pytest.mark.parametrize(
    ("values", "direction", "falling"),
    [
        ([4.0, 3.0, 2.0, 1.0], "falling", 3),
        ([1.0, 3.0, 2.0, 1.0], "falling", 2),
        ([1.0, 2.0, 3.0], "rising", 0),
        ([2.0, 2.0], "flat", 0),
        ([2.0, None], "unknown", 0),
    ],
)
def test_trend_over_the_last_periods(values, direction, falling):
    trend = trend_of([rate(v) for v in values])
    assert trend.direction == direction and trend.falling == falling


def test_rank_is_within_platform_and_kind():
    def row(account_id: str, platform: str, likes: int):
        record = account(account_id=account_id, platform=platform)
        return november(AccountHistory(record, days(*NOV), [post(datetime(2026, 11, 2, 3, tzinfo=UTC), likes=likes)]))

    rows = [
        row("ig-a", "instagram", 50),
        row("ig-b", "instagram", 10),
        row("ig-c", "instagram", 30),
        row("x-a", "x", 1),
    ]
    groups = {"ig-a": "instagram/general", "ig-b": "instagram/general", "ig-c": "instagram/general", "x-a": "x/general"}
    ranks = {r.account_id: r.rank for r in rank_accounts(rows, groups)}
    assert (ranks["ig-a"].position, ranks["ig-c"].position, ranks["ig-b"].position) == (1, 2, 3)
    assert ranks["ig-b"].of == 3
    assert (ranks["x-a"].position, ranks["x-a"].of) == (1, 1)


def test_residents_comments_count_as_engagement():
    with_comments = post(datetime(2026, 11, 2, 3, tzinfo=UTC), likes=10, comments=5)
    row = november(AccountHistory(account(), days(*NOV), [with_comments]))
    assert row.engagements.value == 15


def test_a_late_daily_snapshot_marks_the_reach_provisional():
    snaps = days(*NOV)
    snaps[-1] = snaps[-1]._replace(final_at=AS_OF + timedelta(hours=48))
    row = november(AccountHistory(account(), snaps, [post(datetime(2026, 11, 2, 3, tzinfo=UTC))]))
    assert row.reach.value == 3000 and row.reach.status.startswith("late: insight not final until ")
    assert row.engagement_rate.usable
