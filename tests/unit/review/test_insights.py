"""What worked: best hours and weekdays in Tokyo time, image and link posts against the others."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from koho.review.insights import insights
from koho.review.model import Counters, PostRecord

TOKYO = ZoneInfo("Asia/Tokyo")


def post(day: int, utc_hour: int, likes: int, *, image=False, link=False, previous=None) -> PostRecord:
    at = datetime(2026, 11, day, utc_hour, tzinfo=UTC)
    return PostRecord(f"{day}-{utc_hour}", at, likes=likes, previous=previous, has_image=image, has_link=link)


def test_best_hours_are_local_and_need_enough_posts():
    posts = [post(d, 3, 50) for d in (2, 3, 4)]  # 12:00 in Tokyo
    posts += [post(d, 0, 10) for d in (2, 3, 4)]  # 09:00
    posts += [post(5, 9, 500)]  # 18:00, a single lucky post
    result = insights(posts, TOKYO, min_posts=3)
    assert [s.key for s in result.best_hours] == [12, 9]
    assert result.best_hours[0].mean_engagements == 50


def test_best_weekdays():
    posts = [post(d, 3, 40) for d in (2, 9, 16)]  # Mondays
    posts += [post(d, 3, 5) for d in (4, 11, 18)]  # Wednesdays
    result = insights(posts, TOKYO)
    assert [s.key for s in result.best_weekdays] == [0, 2]
    assert "月曜" in "".join(result.summary_ja())


def test_images_and_links_against_without():
    posts = [post(2, 3, 30, image=True), post(3, 3, 10, image=True), post(4, 3, 10), post(5, 3, 10, link=True)]
    result = insights(posts, TOKYO)
    assert (result.image.with_posts, result.image.with_mean) == (2, 20)
    assert result.image.without_mean == 10 and result.image.lift == pytest.approx(2.0)
    assert result.link.with_mean == 10 and result.link.without_mean == pytest.approx(50 / 3)


def test_posts_whose_counters_went_down_are_left_out():
    bad = post(2, 3, 1000, image=True, previous=Counters(likes=2000))
    result = insights([bad, post(3, 3, 10, image=True)], TOKYO)
    assert result.posts == 1 and result.image.with_mean == 10


def test_no_posts_no_invented_figures():
    result = insights([], TOKYO)
    assert result.best_hours == () and result.image.with_mean is None and result.image.lift is None
    assert result.summary_ja() == []
