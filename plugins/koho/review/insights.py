"""What worked for one account: best hours and weekdays, posts with images or links against without.

Means of engagements per post, local time; a slot with fewer than ``min_posts`` posts is not
ranked (a single lucky post is not a lesson). Posts whose counters went down are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


def _best(sums: dict[int, list[int]], top: int, min_posts: int) -> tuple[Slot, ...]:
    slots = [Slot(k, n, total / n) for k, (n, total) in sums.items() if n >= min_posts]
    slots.sort(key=lambda s: (-s.mean_engagements, s.key))
    return tuple(slots[:top])


class Tally:
    """Running sums per hour, weekday and feature; fed one sound post at a time (the review does it
    while bucketing months, so posts are walked once)."""

    __slots__ = ("hours", "image", "link", "posts", "weekdays")

    def __init__(self) -> None:
        self.hours: dict[int, list[int]] = {}
        self.weekdays: dict[int, list[int]] = {}
        self.image = [[0, 0], [0, 0]]  # [without, with] x [posts, engagements]
        self.link = [[0, 0], [0, 0]]
        self.posts = 0

    def add(self, local: datetime, engagements: int, has_image: bool, has_link: bool) -> None:
        self.posts += 1
        hour, weekday = local.hour, local.weekday()
        entry = self.hours.get(hour) or self.hours.setdefault(hour, [0, 0])
        entry[0] += 1
        entry[1] += engagements
        entry = self.weekdays.get(weekday) or self.weekdays.setdefault(weekday, [0, 0])
        entry[0] += 1
        entry[1] += engagements
        entry = self.image[1 if has_image else 0]
        entry[0] += 1
        entry[1] += engagements
        entry = self.link[1 if has_link else 0]
        entry[0] += 1
        entry[1] += engagements

    def result(self, *, top: int = 3, min_posts: int = 3) -> Insights:
        return Insights(
            _best(self.hours, top, min_posts),
            _best(self.weekdays, top, min_posts),
            _compare("image", self.image),
            _compare("link", self.link),
            self.posts,
        )


def insights(posts: list[PostRecord], tz: ZoneInfo, *, top: int = 3, min_posts: int = 3) -> Insights:
    """What worked, over ``posts``; posts whose counters went down are left out."""
    tally = Tally()
    for post in posts:
        if post.sound:
            tally.add(post.posted_at.astimezone(tz), post.engagements, post.has_image, post.has_link)
    return tally.result(top=top, min_posts=min_posts)


def _compare(feature: str, sides: list[list[int]]) -> Comparison:
    (no_n, no_total), (yes_n, yes_total) = sides
    return Comparison(feature, yes_n, yes_total / yes_n if yes_n else None, no_n, no_total / no_n if no_n else None)
