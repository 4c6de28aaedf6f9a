"""Verdicts for the demo city's stories, with Japanese reasons that carry the figures."""

from __future__ import annotations

import shutil

import pytest
from conftest import AS_OF

from koho.config import load_config
from koho.config.loader import include_dir
from koho.review.verdict import review_accounts


@pytest.fixture(scope="module")
def review(demo_histories, policy):
    return review_accounts(demo_histories.values(), policy, as_of=AS_OF)


def last_month(review, account_id: str):
    return next(r for r in reversed(review.kpis[account_id]["month"]) if r.period.label == "2026-11")


def test_thriving_is_kept(review):
    verdict = review.verdicts["city-x"]
    assert verdict.verdict == "KEEP"
    rate = last_month(review, "city-x").engagement_rate.value
    assert f"{rate:.1f} %" in verdict.reasons[0]


def test_dormant_is_retired_for_assessment_with_its_days(review):
    verdict = review.verdicts["city-bluesky"]
    assert verdict.verdict == "RETIRE" and verdict.assess_closing
    days = int(review.kpis["city-bluesky"]["month"][-1].days_since_last_post.value)
    assert days >= 150
    assert verdict.reasons == (f"{days}日間投稿がありません（90日以上更新のないアカウントは閉鎖を検討します）",)
    assert "リーチ：プラットフォームが提供していません" in verdict.notes


def test_costly_with_little_reach_is_retired_with_hours_and_reach(review):
    verdict = review.verdicts["city-youtube"]
    assert verdict.verdict in ("IMPROVE", "RETIRE")
    row = last_month(review, "city-youtube")
    assert row.staff_hours.value > 10 and row.reach.value < 2000
    cost = next(r for r in verdict.reasons if "職員工数" in r)
    assert f"月 {round(row.staff_hours.value)} 時間" in cost
    assert f"リーチ {round(row.reach.value):,}" in cost


def test_declining_is_told_to_improve_with_rank_and_trend(review):
    verdict = review.verdicts["kanko-instagram"]
    assert verdict.verdict == "IMPROVE"
    row = last_month(review, "kanko-instagram")
    assert row.rank.group == "instagram/special" and row.rank.position == row.rank.of == 2
    assert row.trend.falling >= 3
    reason = verdict.reasons[0]
    assert f"エンゲージメント率 {row.engagement_rate.value:.1f} %" in reason
    assert "Instagram 2 アカウント中最下位" in reason
    assert f"{row.trend.falling}か月連続で低下" in reason


def test_new_account_is_not_judged_yet(review):
    verdict = review.verdicts["kosodate-line"]
    assert verdict.verdict == "KEEP" and "開設から40日" in verdict.reasons[0]


def test_platform_without_reach_is_judged_by_followers_and_says_so(review):
    row = last_month(review, "city-mastodon")
    assert row.reach.value is None and row.engagement_rate.formula == "engagements per post ÷ followers"
    assert review.verdicts["city-mastodon"].verdict == "KEEP"
    assert "フォロワー比" in review.verdicts["city-mastodon"].reasons[0]


def test_every_account_gets_a_verdict_and_reasons(review, demo_histories):
    assert set(review.verdicts) == set(demo_histories)
    assert all(v.reasons for v in review.verdicts.values())


def test_thresholds_are_policy_data(demo_histories, policy):
    lenient = replace_policy(policy, dormant_days=200)
    verdict = review_accounts(demo_histories.values(), lenient, as_of=AS_OF).verdicts["city-bluesky"]
    assert not verdict.assess_closing and "日間投稿がありません" not in verdict.reasons[0]
    strict = replace_policy(
        policy, engagement_bands=policy.engagement_bands.model_copy(update={"low_below": 6.0, "high_above": 8.0})
    )
    assert review_accounts(demo_histories.values(), strict, as_of=AS_OF).verdicts["city-x"].verdict == "IMPROVE"


def test_fixed_monthly_hours_per_account_count_in_staff_hours(demo_histories, policy):
    costly = replace_policy(policy, fixed_monthly_hours_by_account={"city-facebook": 400.0})
    review = review_accounts([demo_histories["city-facebook"]], costly, as_of=AS_OF)
    row = last_month(review, "city-facebook")
    assert row.staff_hours.value == pytest.approx(row.posts * 0.4 + 400.0)
    assert review.verdicts["city-facebook"].verdict == "IMPROVE"


def replace_policy(policy, **changes):
    return type(policy).model_validate(policy.model_dump() | changes)


@pytest.mark.parametrize(
    ("yaml", "field", "message"),
    [
        ("  dormant_days: 0\n", "review.dormant_days", "greater than or equal to 1"),
        ("  engagement_bands: {low_below: 6, high_above: 5}\n", "review.engagement_bands", "low_below must not be"),
        ("  retire_cost_per_1000: 1.0\n", "review", "retire_cost_per_1000 must not be below"),
        ("  fixed_monthly_hours_by_account: {city-x: -1}\n", "review.fixed_monthly_hours_by_account", "greater"),
        ("  dormant_dayz: 90\n", "review.dormant_dayz", "unknown field"),
    ],
)
def test_bad_review_policy_is_located(tmp_path, yaml, field, message):
    shutil.copytree(include_dir() / "config", tmp_path / "config")
    policy_file = tmp_path / "config" / "policy.yaml"
    lines = policy_file.read_text(encoding="utf-8").splitlines(keepends=True)
    at = lines.index("review:\n") + 1
    key = yaml.split(":")[0]
    lines = [line for line in lines if not line.startswith(key + ":")]
    lines.insert(at, yaml)
    policy_file.write_text("".join(lines), encoding="utf-8")
    problems = [p for p in load_config(tmp_path / "config").problems if p.where.file == "policy.yaml"]
    match = [p for p in problems if (p.where.field or "").startswith(field) and message in p.message]
    assert match, "; ".join(map(str, problems))
    # A rule across fields is located at the section, a single field at its own line.
    assert match[0].where.line == (at if field == "review" else at + 1), str(match[0])


def test_what_worked_comes_with_the_review(review):
    found = review.insights["city-x"]
    # The history's noon and evening posts draw more than morning and night ones.
    assert {s.key for s in found.best_hours[:2]} == {12, 18}
    assert found.image.lift > 1 > found.link.lift
    assert any("時台" in line for line in found.summary_ja())


def test_a_late_insight_is_a_note_not_a_judgement(demo_histories, policy):
    history = demo_histories["city-facebook"]
    snaps = list(history.snapshots)
    last = max(i for i, s in enumerate(snaps) if s.day.month == 11)
    snaps[last] = snaps[last]._replace(final_at=AS_OF.replace(day=3))
    late = type(history)(history.account, snaps, history.posts)
    verdict = review_accounts([late], policy, as_of=AS_OF).verdicts["city-facebook"]
    assert verdict.verdict == "KEEP"
    assert any("確定しない暫定値" in note for note in verdict.notes)
