"""KEEP, IMPROVE or RETIRE per account, with its reasons in plain Japanese and the figures in them.

The rules and thresholds are data (policy.yaml ``review:``, :class:`koho.config.schema.ReviewPolicy`).
A verdict is a recommendation for a person to decide on; nothing here changes an account.
A figure with a status (not offered, no data, counter went down...) is never judged as if it
were a number: it is reported as a note instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from koho.config.schema import ReviewPolicy
from koho.review import reasons
from koho.review.insights import Insights, Tally
from koho.review.kpis import PeriodKpis, account_kpis, rank_accounts
from koho.review.model import AccountHistory, bulk
from koho.review.periods import KINDS, Period, PeriodKind

Verdict = Literal["KEEP", "IMPROVE", "RETIRE"]


@dataclass(frozen=True, slots=True)
class AccountVerdict:
    account_id: str
    verdict: Verdict
    reasons: tuple[str, ...]
    notes: tuple[str, ...]  # figures that could not be judged, and why
    period: str  # the month the verdict is based on
    assess_closing: bool = False  # RETIRE because the account is not updated any more


@dataclass(frozen=True, slots=True)
class Review:
    kpis: dict[str, dict[PeriodKind, list[PeriodKpis]]]  # account id -> kind -> periods, oldest first
    verdicts: dict[str, AccountVerdict]
    insights: dict[str, Insights]  # what worked, per account


def review_accounts(
    histories: Iterable[AccountHistory], policy: ReviewPolicy, *, as_of: datetime, tz: ZoneInfo | str = "Asia/Tokyo"
) -> Review:
    """Figures for every account and period, ranks within platform and kind, and a verdict each."""
    with bulk():
        return _review(histories, policy, as_of, ZoneInfo(tz) if isinstance(tz, str) else tz)


def _review(histories: Iterable[AccountHistory], policy: ReviewPolicy, as_of: datetime, zone: ZoneInfo) -> Review:
    histories = list(histories)
    groups = {h.account.account_id: f"{h.account.platform}/{h.account.kind}" for h in histories}
    tallies = {h.account.account_id: Tally() for h in histories}
    figures = {
        h.account.account_id: account_kpis(
            h,
            as_of=as_of,
            tz=zone,
            fixed_monthly_hours=policy.fixed_hours_for(h.account.account_id),
            tally=tallies[h.account.account_id],
        )
        for h in histories
    }
    for kind in KINDS:
        by_period: dict[Period, list[PeriodKpis]] = {}
        for rows in figures.values():
            for row in rows[kind]:
                by_period.setdefault(row.period, []).append(row)
        ranked = {(r.account_id, r.period): r for rows in by_period.values() for r in rank_accounts(rows, groups)}
        for account_id, rows in figures.items():
            rows[kind] = [ranked[(account_id, r.period)] for r in rows[kind]]
    today = as_of.astimezone(zone).date()
    verdicts = {
        h.account.account_id: judge(h, figures[h.account.account_id]["month"], policy, today) for h in histories
    }
    return Review(figures, verdicts, {account_id: tally.result() for account_id, tally in tallies.items()})


def judge(history: AccountHistory, months: list[PeriodKpis], policy: ReviewPolicy, today) -> AccountVerdict:
    """One account's verdict from its monthly figures (the last complete month, else the current one)."""
    account = history.account
    complete = [r for r in months if r.period.last < today]
    row = complete[-1] if complete else months[-1] if months else None
    current = months[-1] if months else None
    label = row.period.label if row else ""
    started = account.created_on or (history.snapshots[0].day if history.snapshots else None)
    age = (today - started).days if started else None
    notes = _notes(row) if row else ()

    if age is not None and age < policy.new_account_days:
        return AccountVerdict(account.account_id, "KEEP", (reasons.new_account(age),), notes, label)
    since = current.days_since_last_post if current else None
    if since is None or since.value is None:
        return AccountVerdict(account.account_id, "RETIRE", (reasons.never_posted(),), notes, label, True)
    if since.value >= policy.dormant_days:
        reason = reasons.dormant(int(since.value), policy.dormant_days)
        return AccountVerdict(account.account_id, "RETIRE", (reason,), notes, label, True)

    bands = policy.engagement_bands
    problems: list[str] = []
    rate = row.engagement_rate
    low = rate.usable and rate.value < bands.low_below
    falling = row.trend.falling >= policy.falling_periods
    lowest = bool(row.rank and row.rank.position is not None and row.rank.of > 1 and row.rank.position == row.rank.of)
    if rate.usable and (low or (falling and lowest)):
        problems.append(reasons.engagement(row, account.platform_name, policy.falling_periods, low))
    cost = row.cost_per_1000
    improve_above, retire_above = policy.cost_limits(account.offers_reach)
    costly = cost.usable and cost.value > improve_above
    if costly:
        problems.append(reasons.costly(row, account.offers_reach))
    if costly and low and cost.value > retire_above:
        return AccountVerdict(account.account_id, "RETIRE", tuple(problems), notes, label)
    if problems:
        return AccountVerdict(account.account_id, "IMPROVE", tuple(problems), notes, label)
    good = (reasons.good_engagement(row, bands.low_below, bands.high_above),) if rate.usable else ()
    return AccountVerdict(
        account.account_id, "KEEP", good or ("判断できる数値に問題は見つかりませんでした",), notes, label
    )


def _notes(row: PeriodKpis) -> tuple[str, ...]:
    shown = (
        ("リーチ", row.reach),
        ("インプレッション", row.impressions),
        ("エンゲージメント", row.engagements),
        ("エンゲージメント率", row.engagement_rate),
        ("フォロワー", row.followers),
    )
    return tuple(reasons.figure_ja(label, figure) for label, figure in shown if figure.status)
