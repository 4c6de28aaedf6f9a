"""Plain-Japanese wording of the review's figures and statuses, with the numbers in them."""

from __future__ import annotations

from koho.review.kpis import NO_DATA, NO_POSTS, NOT_OFFERED, Figure, PeriodKpis


def number(value: float) -> str:
    """1234.5 -> "1,235"; small values keep one decimal ("0.3")."""
    return f"{value:,.1f}" if abs(value) < 10 and value != int(value) else f"{round(value):,}"


def percent(value: float) -> str:
    return f"{value:.1f} %"


def status_ja(status: str) -> str:
    """The reader's words for a figure's status (see koho.review.kpis)."""
    if status == NOT_OFFERED:
        return "プラットフォームが提供していません"
    if status == NO_POSTS:
        return "投稿がありません"
    if status.startswith(NO_DATA):
        return "データがありません" + (f"（{status[len(NO_DATA) :].strip()}）" if status != NO_DATA else "")
    if status.startswith("counter went down on "):
        return f"{status.removeprefix('counter went down on ')} にカウンターが減少したため採用していません"
    if status.startswith("late: insight not final until "):
        return f"{status.removeprefix('late: insight not final until ')} まで確定しない暫定値です"
    if status.startswith("rejected by the platform: "):
        return f"プラットフォームが指標を受け付けませんでした（{status.removeprefix('rejected by the platform: ')}）"
    return status


def figure_ja(label: str, figure: Figure, unit: str = "") -> str:
    if figure.value is None:
        return f"{label}：{status_ja(figure.status or NO_DATA)}"
    text = f"{label}：{number(figure.value)}{unit}"
    return f"{text}（{status_ja(figure.status)}）" if figure.status else text


def dormant(days: int, limit: int) -> str:
    return f"{days}日間投稿がありません（{limit}日以上更新のないアカウントは閉鎖を検討します）"


def never_posted() -> str:
    return "投稿が一度もありません"


def new_account(days: int) -> str:
    return f"開設から{days}日のため、まだ評価しません"


def rate_basis(row: PeriodKpis) -> str:
    return "リーチ比" if row.engagement_rate.formula == "engagements ÷ reach" else "フォロワー比・1投稿あたり"


def engagement(row: PeriodKpis, platform_name: str, falling_periods: int, low: bool) -> str:
    parts = [f"エンゲージメント率 {percent(row.engagement_rate.value)}（{rate_basis(row)}）"]
    if row.rank and row.rank.position is not None and row.rank.of > 1:
        if row.rank.position == row.rank.of:
            parts.append(f"{platform_name} {row.rank.of} アカウント中最下位")
        else:
            parts.append(f"{platform_name} {row.rank.of} アカウント中 {row.rank.position} 位")
    if row.trend.falling >= falling_periods:
        parts.append(f"{row.trend.falling}か月連続で低下")
    if low:
        parts.append("目安の下限を下回っています")
    return "、".join(parts)


def good_engagement(row: PeriodKpis, low: float, high: float) -> str:
    rate = row.engagement_rate.value
    where = (
        f"目安（{number(low)}〜{number(high)} %）を上回っています"
        if rate > high
        else f"目安の {number(low)}〜{number(high)} % の範囲です"
    )
    return f"エンゲージメント率 {percent(rate)}（{rate_basis(row)}）は{where}"


def costly(row: PeriodKpis, offers_reach: bool) -> str:
    noun = "リーチ" if offers_reach else "エンゲージメント"
    basis = row.reach.value if offers_reach else row.engagements.value
    return (
        f"月 {number(row.staff_hours.value)} 時間の職員工数で{noun} {number(basis or 0)}"
        f"（1,000あたり {number(row.cost_per_1000.value)} 時間）"
    )
