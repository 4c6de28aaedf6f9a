"""What worked for one account: best hours and weekdays, posts with images or links against without.

Means of engagements per post, local time; a slot with fewer than ``min_posts`` posts is not
ranked (a single lucky post is not a lesson). Posts whose counters went down are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from koho.review.model import PostRecord

WEEKDAYS_JA = ("月", "火", "水", "木", "金", "土", "日")


@dataclass(frozen=True, slots=True)
class Slot:
    key: int  # hour 0-23 or weekday 0 (Monday)-6
    posts: int
    mean_engagements: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """Mean engagements per post with and without a feature; ``None`` where a side has no posts."""

    feature: str  # "image" or "link"
    with_posts: int
    with_mean: float | None
    without_posts: int
    without_mean: float | None

    @property
    def lift(self) -> float | None:
        """with ÷ without; above 1 means the feature went with more engagement."""
        if self.with_mean is None or not self.without_mean:
            return None
        return self.with_mean / self.without_mean


@dataclass(frozen=True, slots=True)
class Insights:
    best_hours: tuple[Slot, ...]
    best_weekdays: tuple[Slot, ...]
    image: Comparison
    link: Comparison
    posts: int

    def summary_ja(self) -> list[str]:
        lines = []
        if self.best_hours:
            lines.append("反応の多い時間帯：" + "、".join(f"{s.key}時台" for s in self.best_hours))
        if self.best_weekdays:
            lines.append("反応の多い曜日：" + "、".join(f"{WEEKDAYS_JA[s.key]}曜" for s in self.best_weekdays))
        for c, name in ((self.image, "画像"), (self.link, "リンク")):
            if c.lift is not None:
                lines.append(f"{name}あり {c.with_mean:.1f} 件／なし {c.without_mean:.1f} 件（1投稿あたりの反応）")
        return lines


def _sound(post: PostRecord) -> bool:
    return post.previous is None or not post.counters.below(post.previous)


def _best(sums: dict[int, list[int]], top: int, min_posts: int) -> tuple[Slot, ...]:
    slots = [Slot(k, n, total / n) for k, (n, total) in sums.items() if n >= min_posts]
    slots.sort(key=lambda s: (-s.mean_engagements, s.key))
    return tuple(slots[:top])


def _compare(feature: str, posts: list[PostRecord]) -> Comparison:
    yes = [p.counters.total for p in posts if getattr(p, f"has_{feature}")]
    no = [p.counters.total for p in posts if not getattr(p, f"has_{feature}")]
    return Comparison(
        feature, len(yes), sum(yes) / len(yes) if yes else None, len(no), sum(no) / len(no) if no else None
    )


def insights(posts: list[PostRecord], tz: ZoneInfo, *, top: int = 3, min_posts: int = 3) -> Insights:
    sound = [p for p in posts if _sound(p)]
    hours: dict[int, list[int]] = {}
    weekdays: dict[int, list[int]] = {}
    for post in sound:
        local = post.posted_at.astimezone(tz)
        for table, key in ((hours, local.hour), (weekdays, local.weekday())):
            entry = table.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] += post.counters.total
    return Insights(
        _best(hours, top, min_posts),
        _best(weekdays, top, min_posts),
        _compare("image", sound),
        _compare("link", sound),
        len(sound),
    )
