"""Comment storms (炎上): a burst of negative comments against an account's own baseline.

Pure over per-bucket counts (10-minute buckets by default) and an explicit ``now``, so a DAG
passes the ledger's counts and the time of its run, and tests drive a clock. For each key (an
account, or one post of an account) the last ``window_buckets`` are compared with the trailing
``baseline_buckets`` before them: the window is *hot* when its count is improbable under the
baseline's rate (one-sided Poisson tail below ``p_value``), at least ``min_ratio`` times what the
baseline expects, and at least ``min_count``. Hot is not enough: a storm also needs
``negative_share`` of the window's items to be negative (complaints, abuse), so a popular event
post's busy, friendly day raises nothing.

A young account has little baseline: its rate is blended with ``prior_rate`` as if it had
``min_baseline_buckets`` of history at that rate (a Gamma prior), so its first comments are
judged against an assumption rather than against nothing.

State per key: quiet → storm (one alert) → escalated each time the window's count reaches
``growth_factor`` times the busiest bucket last announced (the window's own count would grow
as the storm fills it, and escalate a storm that is only steady) → calmed down after ``calm_buckets`` buckets in a
row without storm conditions. Each notice has a ``dedup_key``, so raising it twice is harmless.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from koho.config.feedback import StormParams


@dataclass(frozen=True)
class Counts:
    """Items in one bucket, and how many of them were negative."""

    total: int = 0
    negative: int = 0


@dataclass(frozen=True)
class Reading:
    """The window against the baseline, at one instant."""

    count: int
    negative: int
    #: The busiest bucket of the window: how hard it is raining now, whatever the window's ramp-up.
    peak: int
    expected: float
    p_value: float
    hot: bool
    storm: bool

    @property
    def negative_share(self) -> float:
        return self.negative / self.count if self.count else 0.0


@dataclass(frozen=True)
class WatchState:
    """Where one key stands; kept by the caller between runs (it is plain data)."""

    phase: Literal["quiet", "storm"] = "quiet"
    started_at: datetime | None = None
    announced: int = 0
    escalations: int = 0
    calm_run: int = 0
    last_bucket: datetime | None = None


@dataclass(frozen=True)
class Notice:
    kind: Literal["storm", "escalated", "calmed"]
    key: str
    at: datetime
    started_at: datetime
    reading: Reading
    dedup_key: str


def bucket_start(moment: datetime, params: StormParams) -> datetime:
    """The start of the bucket ``moment`` falls in (buckets are aligned on the hour)."""
    minutes = moment.minute - moment.minute % params.bucket_minutes
    return moment.replace(minute=minutes, second=0, microsecond=0)


def tally(events: Iterable[tuple[str, datetime, bool]], params: StormParams) -> dict[str, dict[datetime, Counts]]:
    """Per key, per bucket: the counts of ``(key, created_at, negative)`` events."""
    out: dict[str, dict[datetime, Counts]] = {}
    for key, created_at, negative in events:
        buckets = out.setdefault(key, {})
        start = bucket_start(created_at, params)
        old = buckets.get(start, Counts())
        buckets[start] = Counts(old.total + 1, old.negative + int(bool(negative)))
    return out


def poisson_tail(count: int, expected: float) -> float:
    """P(X >= count) for X ~ Poisson(expected). Hand-written: no statistics package is among the
    pins, and one tail sum does not warrant one."""
    if count <= 0:
        return 1.0
    if expected <= 0:
        return 0.0
    if count <= expected:
        # The lower sum is small and well conditioned here; the tail is near 1.
        term = math.exp(-expected)
        lower = term
        for i in range(1, count):
            term *= expected / i
            lower += term
        return max(0.0, 1.0 - lower)
    log_term = -expected + count * math.log(expected) - math.lgamma(count + 1)
    term, total, i = math.exp(log_term), 0.0, count
    while term > total * 1e-12 and i < count + 10_000:
        total += term
        i += 1
        term *= expected / i
    return min(1.0, total)


def read(
    series: Mapping[datetime, Counts], now: datetime, params: StormParams, since: datetime | None = None
) -> Reading:
    """The reading at ``now``: the window is the ``window_buckets`` buckets ending with now's.

    ``since``: when counting began for this key (its first bucket if not given); the baseline
    counts only buckets from then on, so a new account is not judged by days it did not exist.
    """
    step = timedelta(minutes=params.bucket_minutes)
    current = bucket_start(now, params)
    window_start = current - step * (params.window_buckets - 1)
    baseline_start = window_start - step * params.baseline_buckets
    first = bucket_start(since, params) if since else min(series, default=window_start)
    observed_from = max(baseline_start, first)
    observed = max(0, round((window_start - observed_from) / step))
    count = negative = peak = 0
    baseline_total = 0
    for start, counts in series.items():
        if window_start <= start <= current:
            count += counts.total
            negative += counts.negative
            peak = max(peak, counts.total)
        elif observed_from <= start < window_start:
            baseline_total += counts.total
    prior = params.min_baseline_buckets
    rate = (baseline_total + params.prior_rate * prior) / (observed + prior) if observed < prior else None
    if rate is None:
        rate = baseline_total / observed
    expected = max(rate, 1e-9) * params.window_buckets
    p = poisson_tail(count, expected)
    hot = count >= params.min_count and count >= params.min_ratio * expected and p < params.p_value
    storm = hot and negative >= params.negative_share * count
    return Reading(count, negative, peak, round(expected, 4), p, hot, storm)


def step(
    key: str, state: WatchState, reading: Reading, now: datetime, params: StormParams
) -> tuple[WatchState, Notice | None]:
    """Advance one key by one reading; at most one notice."""
    bucket = bucket_start(now, params)
    if state.phase == "quiet":
        if not reading.storm:
            return replace(state, last_bucket=bucket), None
        new = WatchState("storm", bucket, reading.peak, 0, 0, bucket)
        return new, _notice("storm", key, now, new, reading, "")
    if reading.storm:
        if reading.peak >= state.announced * params.growth_factor:
            new = replace(
                state, announced=reading.peak, escalations=state.escalations + 1, calm_run=0, last_bucket=bucket
            )
            return new, _notice("escalated", key, now, new, reading, f":{new.escalations}")
        return replace(state, calm_run=0, last_bucket=bucket), None
    if bucket == state.last_bucket:
        return state, None  # a second run in the same bucket is not another quiet bucket
    calm = state.calm_run + 1
    if calm >= params.calm_buckets:
        assert state.started_at is not None
        notice = _notice("calmed", key, now, state, reading, "")
        return WatchState(last_bucket=bucket), notice
    return replace(state, calm_run=calm, last_bucket=bucket), None


def _notice(kind, key: str, now: datetime, state: WatchState, reading: Reading, suffix: str) -> Notice:
    assert state.started_at is not None
    return Notice(
        kind, key, now, state.started_at, reading, f"storm:{key}:{state.started_at:%Y%m%dT%H%M}:{kind}{suffix}"
    )


def watch(
    series_by_key: Mapping[str, Mapping[datetime, Counts]],
    states: Mapping[str, WatchState],
    now: datetime,
    params: StormParams,
    since: Mapping[str, datetime] | None = None,
) -> tuple[dict[str, WatchState], list[Notice]]:
    """One run over every key: the new states and the notices to raise (keys of stormy states
    with no counts left still step, so they can calm down)."""
    new_states: dict[str, WatchState] = {}
    notices: list[Notice] = []
    for key in sorted(set(series_by_key) | {k for k, s in states.items() if s.phase == "storm"}):
        series = series_by_key.get(key, {})
        reading = read(series, now, params, (since or {}).get(key))
        new_states[key], notice = step(key, states.get(key, WatchState()), reading, now, params)
        if notice:
            notices.append(notice)
    return new_states, notices
