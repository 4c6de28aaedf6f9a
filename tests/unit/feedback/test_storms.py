"""Comment storms: one alert per storm, escalation, calm notice; a busy friendly day raises none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from koho.config.feedback import StormParams
from koho.feedback.storms import Counts, WatchState, poisson_tail, read, step, tally, watch

P = StormParams()
T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
BUCKET = timedelta(minutes=10)


def baseline(days: int = 7, per_bucket: int = 1, negative_every: int = 10) -> dict[datetime, Counts]:
    """A quiet account: ``per_bucket`` comments every 10 minutes for ``days`` before T0."""
    start = T0 - timedelta(days=days)
    n = days * 24 * 6
    return {start + BUCKET * i: Counts(per_bucket, int(i % negative_every == 0)) for i in range(n)}


def run(series: dict, buckets: list[Counts], states=None, key="city-x"):
    """Feed one bucket at a time, reading right after each: the notices in order."""
    states = dict(states or {})
    notices = []
    for i, counts in enumerate(buckets):
        now = T0 + BUCKET * i + timedelta(minutes=9)
        series[T0 + BUCKET * i] = counts
        states, found = watch({key: series}, states, now, P)
        notices += found
    return notices, states


def test_poisson_tail_matches_known_values() -> None:
    assert poisson_tail(0, 3.0) == 1.0
    assert poisson_tail(1, 3.0) == pytest.approx(1 - 0.049787, rel=1e-5)
    assert poisson_tail(10, 3.0) == pytest.approx(0.0011025, rel=1e-3)
    assert poisson_tail(100, 6.0) < 1e-60


def test_a_storm_raises_one_alert_escalates_as_it_grows_and_calms_down() -> None:
    series = baseline()
    storm = [Counts(10, 6)] * 3 + [Counts(30, 20)] * 3 + [Counts(1, 0)] * 12
    notices, states = run(series, storm)

    kinds = [n.kind for n in notices]
    assert kinds == ["storm", "escalated", "calmed"]
    first = notices[0]
    assert first.reading.storm and first.reading.count >= P.min_count
    assert len({n.dedup_key for n in notices}) == 3
    assert all(n.started_at == first.started_at for n in notices)
    assert states["city-x"].phase == "quiet"


def test_storm_is_deduplicated_while_it_lasts() -> None:
    notices, states = run(baseline(), [Counts(10, 6)] * 12)

    assert [n.kind for n in notices] == ["storm"]
    assert states["city-x"].phase == "storm"


def test_a_busy_friendly_day_raises_nothing() -> None:
    # A popular event post: 40 comments per 10 minutes all afternoon, almost all thanks.
    notices, _ = run(baseline(), [Counts(40, 2)] * 24)

    assert notices == []
    reading = read({T0: Counts(40, 2)} | baseline(), T0 + timedelta(minutes=9), P)
    assert reading.hot and not reading.storm


def test_a_usual_rate_is_no_storm_even_when_negative() -> None:
    # An account that always gets ~20 comments an hour, many of them complaints.
    series = {k: Counts(4, 3) for k in baseline()}
    notices, _ = run(series, [Counts(4, 3)] * 12)

    assert notices == []


def test_new_account_without_baseline_alerts_on_a_real_storm_only() -> None:
    small, _ = run({}, [Counts(2, 2)] * 6, key="new")
    big, _ = run({}, [Counts(15, 12)] * 6, key="new")

    assert small == []
    assert [n.kind for n in big] == ["storm"]


def test_a_second_run_in_the_same_bucket_does_not_count_as_quiet() -> None:
    params = StormParams(calm_buckets=2)
    storm = WatchState("storm", T0, 20, 0, 1, T0)
    quiet = read({}, T0, params)

    state, notice = step("k", storm, quiet, T0 + timedelta(minutes=5), params)

    assert notice is None and state.calm_run == 1


def test_window_must_be_shorter_than_baseline() -> None:
    with pytest.raises(ValueError, match="baseline_buckets must be longer"):
        StormParams(window_buckets=20, baseline_buckets=10)


def test_marked_comments_per_account_and_per_post_drive_the_watch(marker) -> None:
    """From texts to notices: the marks say what is negative, tally buckets them per account and
    per post, and only the post under fire (with its account) raises an alert."""
    history = [("city-x", None, T0 - timedelta(days=6) + BUCKET * i, "市報を読みました") for i in range(0, 864, 3)]
    event = [("city-x", "event", T0 + timedelta(minutes=i % 60), "楽しかったです、ありがとう") for i in range(120)]
    storm = [("city-x", "tax", T0 + timedelta(minutes=i % 60), "税金泥棒、ふざけるな") for i in range(60)]

    def events():
        for account, post, at, text in history + event + storm:
            negative = marker.mark(text).negative
            yield f"account:{account}", at, negative
            if post:
                yield f"post:{account}/{post}", at, negative

    series = tally(events(), P)
    since = {key: T0 - timedelta(days=6) for key in series}
    _, notices = watch(series, {}, T0 + timedelta(minutes=59), P, since)

    assert sorted(n.key for n in notices) == ["account:city-x", "post:city-x/tax"]
    assert all(n.kind == "storm" for n in notices)
    assert sum(c.total for c in series["post:city-x/event"].values()) == 120


def test_a_storm_whose_comments_stopped_still_calms_down() -> None:
    params = StormParams(calm_buckets=2)
    state = WatchState("storm", T0, 20, 0, 0, T0)

    states, first = watch({}, {"k": state}, T0 + BUCKET, params)
    states, second = watch({}, states, T0 + 2 * BUCKET, params)

    assert first == [] and [n.kind for n in second] == ["calmed"]
    assert states["k"].phase == "quiet"
