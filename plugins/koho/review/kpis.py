"""Figures per account and period, each with the formula used and a status where it is not sound.

A figure that cannot be computed honestly has ``value=None`` and a status saying why ("not
offered by the platform", "no data", "counter went down on <date>", a metric the platform
rejected). A figure built on insights that may still change (platforms settle them up to 48 h
late) keeps its provisional value and says so ("late: insight not final until <time>"). Data is
bucketed by month in one pass; quarters and years add months up, so a review is linear in the
number of snapshots and posts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from koho.review.insights import Tally
from koho.review.model import AccountHistory
from koho.review.periods import KINDS, Period, PeriodKind, periods_between

NOT_OFFERED = "not offered by the platform"
NO_DATA = "no data"
NO_POSTS = "no posts"
#: The trend looks at the last three periods' changes.
TREND_WINDOW = 3


def late_status(until: datetime, tz: ZoneInfo) -> str:
    return f"late: insight not final until {until.astimezone(tz):%Y-%m-%d %H:%M}"


def is_late(status: str | None) -> bool:
    return bool(status) and status.startswith("late:")


class Figure(NamedTuple):
    """One number of the review; ``status`` None means sound, a late status means provisional."""

    value: float | None
    formula: str
    status: str | None = None

    @property
    def usable(self) -> bool:
        return self.value is not None and (self.status is None or is_late(self.status))


@dataclass(slots=True)
class _Month:
    """Running sums of one account's month."""

    days: int = 0
    followers_first: int | None = None
    followers_last: int | None = None
    reach: int = 0
    reach_days: int = 0
    impressions: int = 0
    impressions_days: int = 0
    rejected: dict[str, str] = field(default_factory=dict)
    late_until: datetime | None = None
    posts: int = 0
    engagements: int = 0
    dropped_on: date | None = None
    last_post: date | None = None


@dataclass(frozen=True, slots=True)
class Trend:
    """Direction of the engagement rate over the last periods; ``falling`` counts periods in a row."""

    direction: str  # "rising", "falling", "flat", "unknown"
    falling: int
    rising: int


@dataclass(frozen=True, slots=True)
class Rank:
    position: int | None  # 1 = highest engagement rate in the group; None when not comparable
    of: int
    group: str  # "<platform>/<kind>"


@dataclass(frozen=True, slots=True)
class PeriodKpis:
    account_id: str
    period: Period
    posts: int
    followers: Figure
    growth_rate: Figure  # percent over the period
    reach: Figure
    impressions: Figure
    engagements: Figure
    engagement_rate: Figure  # percent
    staff_hours: Figure
    cost_per_1000: Figure
    days_since_last_post: Figure
    trend: Trend = Trend("unknown", 0, 0)
    rank: Rank | None = None


def _months(
    history: AccountHistory, tz: ZoneInfo, as_of: datetime, tally: Tally | None = None
) -> dict[tuple[int, int], _Month]:
    """Month buckets of one account; ``tally`` (what worked) is fed the sound posts on the way."""
    months: dict[tuple[int, int], _Month] = {}
    key: tuple[int, int] | None = None
    m = _Month()
    for snap in history.snapshots:  # usually in day order: the month changes rarely
        day = snap.day
        if (day.year, day.month) != key:
            key = (day.year, day.month)
            m = months.get(key) or months.setdefault(key, _Month())
        m.days += 1
        if snap.followers is not None:
            if m.followers_first is None:
                m.followers_first = snap.followers
            m.followers_last = snap.followers
        if snap.reach is not None:
            m.reach += snap.reach
            m.reach_days += 1
        if snap.impressions is not None:
            m.impressions += snap.impressions
            m.impressions_days += 1
        for metric, message in snap.rejected:
            m.rejected.setdefault(metric, message)
        if snap.final_at is not None and snap.final_at > as_of:
            m.late_until = max(m.late_until or snap.final_at, snap.final_at)
    for post in history.posts:
        local = post.posted_at.astimezone(tz)
        if (local.year, local.month) != key:
            key = (local.year, local.month)
            m = months.get(key) or months.setdefault(key, _Month())
        m.posts += 1
        total = post.likes + post.reposts + post.replies + post.comments
        m.engagements += total
        if post.previous is not None and post.counters.below(post.previous):
            seen = (post.read_at or post.posted_at).astimezone(tz).date()
            m.dropped_on = min(m.dropped_on or seen, seen)
        if post.final_at is not None and post.final_at > as_of:
            m.late_until = max(m.late_until or post.final_at, post.final_at)
        elif tally is not None:
            tally.add(local, total, post.has_image, post.has_link)
        day = local.date()
        if m.last_post is None or day > m.last_post:
            m.last_post = day
    return months


def _merge(parts: list[_Month]) -> _Month:
    """The months of a quarter or year as one bucket (a month is its own)."""
    if len(parts) == 1:
        return parts[0]
    out = _Month()
    for m in parts:
        out.days += m.days
        if out.followers_first is None:
            out.followers_first = m.followers_first
        if m.followers_last is not None:
            out.followers_last = m.followers_last
        out.reach += m.reach
        out.reach_days += m.reach_days
        out.impressions += m.impressions
        out.impressions_days += m.impressions_days
        for metric, message in m.rejected.items():
            out.rejected.setdefault(metric, message)
        if m.late_until is not None:
            out.late_until = max(out.late_until or m.late_until, m.late_until)
        out.posts += m.posts
        out.engagements += m.engagements
        if m.dropped_on is not None:
            out.dropped_on = min(out.dropped_on or m.dropped_on, m.dropped_on)
        if m.last_post is not None:
            out.last_post = max(out.last_post or m.last_post, m.last_post)
    return out


def _sum_figure(
    total: int, known_days: int, days: int, formula: str, offered: bool, rejected: str | None, late: str | None
) -> Figure:
    if not offered:
        return Figure(None, formula, NOT_OFFERED)
    if rejected is not None:
        return Figure(None, formula, f"rejected by the platform: {rejected}")
    if not days or not known_days:
        return Figure(None, formula, NO_DATA)
    if known_days < days:
        return Figure(None, formula, f"{NO_DATA} for {days - known_days} of {days} days")
    return Figure(float(total), formula, late)


def _period(
    history: AccountHistory,
    period: Period,
    parts: list[_Month],
    before: int | None,
    last_post: date | None,
    fixed_hours: float,
    tz: ZoneInfo,
    as_of: datetime,
    earlier: list[Figure],
) -> PeriodKpis:
    account = history.account
    m = _merge(parts) if parts else _Month()
    days, posts = m.days, m.posts
    late = late_status(m.late_until, tz) if m.late_until else None
    rejected = m.rejected

    followers_last = m.followers_last
    start = before if before is not None else m.followers_first
    followers = Figure(
        None if followers_last is None else float(followers_last),
        "followers at the end of the period",
        NO_DATA if followers_last is None else None,
    )
    growth_formula = "(followers at end - followers before) ÷ followers before"
    if followers_last is None or not start:
        growth = Figure(None, growth_formula, NO_DATA)
    else:
        growth = Figure((followers_last - start) / start * 100, growth_formula)

    def rejection(*metrics: str) -> str | None:
        return next((f"{name}: {rejected[name]}" for name in metrics if name in rejected), None)

    offered = account.offers_reach
    reach = _sum_figure(
        m.reach, m.reach_days, days, "sum of daily reach", offered, rejection("reach") if rejected else None, late
    )
    impressions = _sum_figure(
        m.impressions,
        m.impressions_days,
        days,
        "sum of daily impressions",
        offered,
        rejection("impressions", "views") if rejected else None,
        late,
    )

    engagement_formula = "likes + reposts + replies + comments of the period's posts"
    if m.dropped_on is not None:
        engagements = Figure(None, engagement_formula, f"counter went down on {m.dropped_on:%Y-%m-%d}")
    elif not posts:
        engagements = Figure(0.0 if days else None, engagement_formula, NO_POSTS if days else NO_DATA)
    else:
        engagements = Figure(float(m.engagements), engagement_formula, late)

    rate = _engagement_rate(account.offers_reach, engagements, reach, followers, posts)

    hours = posts * account.staff_hours_per_post + fixed_hours * len(parts)
    staff = Figure(hours, "posts × staff_hours_per_post + fixed monthly hours × months")
    basis = reach if account.offers_reach else engagements
    noun = "reach" if account.offers_reach else "engagements"
    cost_formula = f"staff hours per 1,000 {noun}"
    if not basis.usable:
        cost = Figure(None, cost_formula, basis.status or NO_DATA)
    elif not basis.value:
        cost = Figure(None, cost_formula, f"no {noun}")
    else:
        cost = Figure(hours / basis.value * 1000, cost_formula, basis.status)

    end = min(period.last, as_of.astimezone(tz).date())
    since_formula = "days from the last post to the period's end (or today)"
    since = (
        Figure(None, since_formula, NO_POSTS)
        if last_post is None
        else Figure(float((end - last_post).days), since_formula)
    )
    trend = trend_of([*earlier, rate])
    return PeriodKpis(
        account.account_id,
        period,
        posts,
        followers,
        growth,
        reach,
        impressions,
        engagements,
        rate,
        staff,
        cost,
        since,
        trend,
    )


def _engagement_rate(offers_reach: bool, engagements: Figure, reach: Figure, followers: Figure, posts: int) -> Figure:
    if offers_reach:
        formula = "engagements ÷ reach"
        if not engagements.usable or not reach.usable:
            return Figure(None, formula, engagements.status if not engagements.usable else reach.status)
        if not reach.value:
            return Figure(None, formula, "no reach")
        status = engagements.status or reach.status
        return Figure(engagements.value / reach.value * 100, formula, status)
    formula = "engagements per post ÷ followers"
    if not posts:
        return Figure(None, formula, NO_POSTS)
    if not engagements.usable:
        return Figure(None, formula, engagements.status)
    if not followers.usable or not followers.value:
        return Figure(None, formula, followers.status or "no followers")
    return Figure(engagements.value / posts / followers.value * 100, formula, engagements.status)


def account_kpis(
    history: AccountHistory,
    *,
    as_of: datetime,
    tz: ZoneInfo,
    fixed_monthly_hours: float,
    kinds: Iterable[PeriodKind] = KINDS,
    tally: Tally | None = None,
) -> dict[PeriodKind, list[PeriodKpis]]:
    """Every period's figures for one account, oldest first, with the trend over the periods before.

    ``tally`` (what worked) is fed the account's sound posts in the same pass.
    """
    months = _months(history, tz, as_of, tally)
    today = as_of.astimezone(tz).date()
    first = min((date(y, m, 1) for y, m in months), default=today)
    out: dict[PeriodKind, list[PeriodKpis]] = {}
    for kind in kinds:
        rows: list[PeriodKpis] = []
        before: int | None = None
        last_post: date | None = None
        for period in periods_between(kind, first, today):
            parts = [months[key] for key in period.months if key in months]
            for m in parts:
                if m.last_post is not None:
                    last_post = m.last_post
            earlier = [r.engagement_rate for r in rows[-TREND_WINDOW:]]
            row = _period(history, period, parts, before, last_post, fixed_monthly_hours, tz, as_of, earlier)
            rows.append(row)
            if row.followers.value is not None:
                before = int(row.followers.value)
        out[kind] = rows
    return out


def trend_of(rates: list[Figure], window: int = TREND_WINDOW) -> Trend:
    """Direction over the last ``window`` periods, and how many of them in a row fell or rose."""
    values = [f.value for f in rates[-(window + 1) :] if f.usable]
    if len(values) < 2:
        return Trend("unknown", 0, 0)
    falling = rising = 0
    for a, b in zip(reversed(values[:-1]), reversed(values[1:]), strict=True):
        if b < a and not rising:
            falling += 1
        elif b > a and not falling:
            rising += 1
        else:
            break
    direction = "falling" if falling else "rising" if rising else "flat"
    return Trend(direction, falling, rising)


def rank_accounts(rows: list[PeriodKpis], groups: dict[str, str]) -> list[PeriodKpis]:
    """Rank rows of one period by engagement rate within their group (``groups``: account id -> group)."""
    by_group: dict[str, list[PeriodKpis]] = {}
    for row in rows:
        by_group.setdefault(groups[row.account_id], []).append(row)
    ranked: list[PeriodKpis] = []
    for group, members in by_group.items():
        comparable = sorted((r for r in members if r.engagement_rate.usable), key=lambda r: -r.engagement_rate.value)
        positions = {r.account_id: i for i, r in enumerate(comparable, 1)}
        for r in members:
            ranked.append(replace(r, rank=Rank(positions.get(r.account_id), len(members), group)))
    return ranked
