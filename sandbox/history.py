"""A deterministic 400-day history for the demo city's accounts, each with a story a reviewer knows.

Stories: ``thriving`` (growing, lively), ``steady``, ``declining`` (engagement falling month after
month), ``dormant`` (no post for the last 150 days), ``costly`` (many staff hours, little reach)
and ``new`` (opened 40 days ago). The same seed and end date give the same history, to the post.

:func:`generate` is pure; :func:`seed_history` loads a history into the sandbox state as past
posts with counters and the account's follower count, so every platform router's existing read
endpoints (timelines, media lists, post metrics) serve it, and posts Koho makes add to it.
Daily follower and reach figures are kept in ``Account.extra["history"]`` for routers that
offer account insights.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sandbox.state import Account, Post, SandboxState

DAYS = 400
TOKYO = ZoneInfo("Asia/Tokyo")
#: Platforms whose APIs give no reach or impressions: their history has none to serve.
NO_REACH = frozenset({"bluesky", "mastodon"})

#: Demo account id (include/config/accounts.yaml) -> story; accounts not named here are steady.
STORIES: dict[str, str] = {
    "city-x": "thriving",
    "kanko-instagram": "declining",
    "city-bluesky": "dormant",
    "city-youtube": "costly",
    "kosodate-line": "new",
}
STORY_NAMES = ("thriving", "steady", "declining", "dormant", "costly", "new")
DORMANT_DAYS = 150
NEW_DAYS = 40


@dataclass(frozen=True, slots=True)
class Params:
    followers: int
    growth: float  # per day, fraction
    posts_per_day: float
    reach_per_follower: float  # daily reach as a share of followers
    reach_floor: int  # daily reach regardless of followers (a small audience found by search)
    rate_start: float  # engagements per reach at day 0 ...
    rate_end: float  # ... and at the last day


PARAMS: dict[str, Params] = {
    "thriving": Params(4000, 0.0025, 2.0, 0.8, 0, 0.05, 0.05),
    "steady": Params(3000, 0.0002, 1.0, 0.6, 0, 0.025, 0.025),
    "declining": Params(2500, -0.0003, 1.0, 0.5, 0, 0.03, 0.004),
    "dormant": Params(800, -0.0005, 0.7, 0.3, 0, 0.02, 0.02),
    "costly": Params(300, 0.0001, 0.3, 0.0, 30, 0.003, 0.003),
    "new": Params(50, 0.03, 1.0, 0.5, 0, 0.04, 0.04),
}
#: Local posting hours and their pull: noon and evening posts do better (what "what worked" finds).
HOURS = ((8, 1.0), (12, 1.4), (18, 1.6), (21, 0.8))


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    followers: int
    reach: int | None
    impressions: int | None


@dataclass(frozen=True, slots=True)
class HistoryPost:
    posted_at: datetime  # UTC
    text: str
    likes: int
    reposts: int
    replies: int
    impressions: int | None
    has_image: bool
    has_link: bool


@dataclass(frozen=True, slots=True)
class History:
    account_id: str
    platform: str
    story: str
    days: list[Day]
    posts: list[HistoryPost]


def story_of(account_id: str) -> str:
    return STORIES.get(account_id, "steady")


def generate(
    account_id: str, platform: str, *, end: date, story: str | None = None, seed: int = 2026, days: int = DAYS
) -> History:
    """The account's history for the ``days`` local days ending at ``end`` (inclusive)."""
    story = story or story_of(account_id)
    p = PARAMS[story]
    rng = random.Random(zlib.crc32(f"{seed}:{account_id}".encode()))
    first = end - timedelta(days=days - 1)
    born = days - NEW_DAYS if story == "new" else 0
    out_days: list[Day] = []
    posts: list[HistoryPost] = []
    followers = float(p.followers)
    for t in range(born, days):
        day = first + timedelta(days=t)
        age = t - born
        followers = p.followers * math.exp(p.growth * age)
        progress = t / max(days - 1, 1)
        rate = p.rate_start + (p.rate_end - p.rate_start) * progress
        reach = int(followers * p.reach_per_follower * rng.uniform(0.9, 1.1)) + p.reach_floor
        offered = platform not in NO_REACH
        out_days.append(Day(day, int(followers), reach if offered else None, int(reach * 1.4) if offered else None))
        if story == "dormant" and t >= days - DORMANT_DAYS:
            continue
        count = _count(rng, p.posts_per_day)
        for n in range(count):
            hour, pull = HOURS[rng.randrange(len(HOURS))]
            has_image = rng.random() < 0.6
            has_link = rng.random() < 0.4
            lift = pull * (1.3 if has_image else 1.0) * (0.85 if has_link else 1.0) / 1.2
            expected = reach / max(count, 1) * rate * lift * rng.uniform(0.9, 1.1)
            engagements = int(expected + rng.random())  # rounded at random: small accounts keep their share
            likes = round(engagements * 0.7)
            reposts = round(engagements * 0.2)
            local = datetime.combine(day, time(hour, rng.randrange(60)), TOKYO)
            posts.append(
                HistoryPost(
                    local.astimezone(UTC),
                    f"{day:%m月%d日}のお知らせ（{n + 1}）",
                    likes,
                    reposts,
                    engagements - likes - reposts,
                    int(reach / max(count, 1) * 1.4) if offered else None,
                    has_image,
                    has_link,
                )
            )
    return History(account_id, platform, story, out_days, posts)


def _count(rng: random.Random, mean: float) -> int:
    """Posts on one day: the integer part, plus one more with the fractional part's chance."""
    whole = int(mean)
    return whole + (1 if rng.random() < mean - whole else 0)


def seed_history(state: SandboxState, account: Account, koho_id: str, *, end: date, seed: int = 2026) -> History:
    """Load ``koho_id``'s history into ``account``: past posts with counters, followers, daily figures."""
    history = generate(koho_id, account.platform, end=end, seed=seed)
    with state.lock:
        for item in history.posts:
            metrics = {"likes": item.likes, "reposts": item.reposts, "replies": item.replies}
            if item.impressions is not None:
                metrics["impressions"] = metrics["views"] = item.impressions
            state.add_post(
                Post(
                    platform=account.platform,
                    post_id=state.next_id(),
                    account_id=account.account_id,
                    text=item.text,
                    created_at=item.posted_at,
                    link="https://www.city.example.jp/news/" if item.has_link else None,
                    media=["https://www.city.example.jp/img/sample.jpg"] if item.has_image else [],
                    metrics=metrics,
                    extra={"history": True},
                )
            )
        account.followers = history.days[-1].followers if history.days else account.followers
        account.extra["history"] = [
            {"day": d.day.isoformat(), "followers": d.followers, "reach": d.reach, "impressions": d.impressions}
            for d in history.days
        ]
        account.extra["story"] = history.story
    return history
