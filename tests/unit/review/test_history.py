"""The sandbox's story history: deterministic, each story recognisable, served by the routers' read endpoints."""

from __future__ import annotations

from datetime import date, timedelta

import requests

from sandbox.history import DAYS, DORMANT_DAYS, NEW_DAYS, generate

END = date(2026, 11, 30)


def test_same_seed_same_history_other_seed_other_history():
    assert generate("city-x", "x", end=END) == generate("city-x", "x", end=END)
    assert generate("city-x", "x", end=END, seed=1).posts != generate("city-x", "x", end=END).posts


def test_four_hundred_days_ending_on_the_end_date():
    history = generate("city-facebook", "facebook", end=END)
    assert len(history.days) == DAYS
    assert history.days[-1].day == END and history.days[0].day == END - timedelta(days=DAYS - 1)


def test_dormant_account_has_no_post_in_its_last_150_days():
    history = generate("city-bluesky", "bluesky", end=END)
    assert history.story == "dormant"
    last = max(p.posted_at for p in history.posts).date()
    assert (END - last).days >= DORMANT_DAYS - 1
    assert len(history.days) == DAYS  # the account still exists and is counted


def test_new_account_exists_only_for_its_last_days():
    history = generate("kosodate-line", "line", end=END)
    assert history.story == "new" and len(history.days) == NEW_DAYS
    assert min(p.posted_at for p in history.posts).date() >= END - timedelta(days=NEW_DAYS + 1)


def test_platforms_without_reach_have_none_in_their_history():
    history = generate("city-mastodon", "mastodon", end=END)
    assert all(d.reach is None and d.impressions is None for d in history.days)
    assert all(p.impressions is None for p in history.posts)
    assert all(d.reach for d in generate("city-x", "x", end=END).days)


def test_thriving_grows_and_declining_shrinks():
    thriving = generate("city-x", "x", end=END).days
    declining = generate("kanko-instagram", "instagram", end=END).days
    assert thriving[-1].followers > 2 * thriving[0].followers
    assert declining[-1].followers < declining[0].followers


def _seed(sandbox, platform: str, handle: str, koho_id: str) -> dict:
    return sandbox.admin(
        "POST",
        "/history",
        json={"accounts": [{"platform": platform, "handle": handle, "koho_id": koho_id}], "end": str(END)},
    )[0]


def test_x_serves_the_history_and_reads_reflect_writes(sandbox):
    account = sandbox.add_account("x", "koho_city")
    seeded = _seed(sandbox, "x", "koho_city", "city-x")
    expected = generate("city-x", "x", end=END)
    assert seeded == {
        "koho_id": "city-x",
        "story": "thriving",
        "posts": len(expected.posts),
        "followers": expected.days[-1].followers,
    }
    auth = {"Authorization": f"Bearer {account['token']}"}
    me = requests.get(f"{sandbox.url}/x/2/users/me?user.fields=public_metrics", headers=auth, timeout=10).json()
    assert me["data"]["public_metrics"]["followers_count"] == expected.days[-1].followers
    url = f"{sandbox.url}/x/2/users/{account['account_id']}/tweets?max_results=5&tweet.fields=public_metrics"
    newest = requests.get(url, headers=auth, timeout=10).json()["data"][0]
    latest = max(expected.posts, key=lambda p: p.posted_at)
    assert newest["public_metrics"]["like_count"] == latest.likes

    made = requests.post(f"{sandbox.url}/x/2/tweets", json={"text": "新しいお知らせ"}, headers=auth, timeout=10)
    assert made.status_code == 201, made.text
    assert requests.get(url, headers=auth, timeout=10).json()["data"][0]["id"] == made.json()["data"]["id"]
    posts = sandbox.admin("GET", "/posts", params={"platform": "x"})
    assert len(posts) == len(expected.posts) + 1


def test_mastodon_counts_the_history_and_new_posts(sandbox):
    account = sandbox.add_account("mastodon", "kohocity_sample")
    _seed(sandbox, "mastodon", "kohocity_sample", "city-mastodon")
    expected = generate("city-mastodon", "mastodon", end=END)
    auth = {"Authorization": f"Bearer {account['token']}"}
    me = requests.get(f"{sandbox.url}/mastodon/api/v1/accounts/verify_credentials", headers=auth, timeout=10).json()
    assert me["statuses_count"] == len(expected.posts)
    assert me["followers_count"] == expected.days[-1].followers
    made = requests.post(
        f"{sandbox.url}/mastodon/api/v1/statuses", json={"status": "お知らせ"}, headers=auth, timeout=10
    )
    assert made.status_code == 200, made.text
    me = requests.get(f"{sandbox.url}/mastodon/api/v1/accounts/verify_credentials", headers=auth, timeout=10).json()
    assert me["statuses_count"] == len(expected.posts) + 1


def test_instagram_media_count_includes_the_history(sandbox):
    account = sandbox.add_account("instagram", "koho_city_sample")
    _seed(sandbox, "instagram", "koho_city_sample", "kanko-instagram")
    expected = generate("kanko-instagram", "instagram", end=END)
    url = f"{sandbox.url}/instagram/v21.0/{account['account_id']}?fields=media_count,followers_count"
    body = requests.get(url, headers={"Authorization": f"Bearer {account['token']}"}, timeout=10).json()
    assert body["media_count"] == len(expected.posts)
    assert body["followers_count"] == expected.days[-1].followers


def test_history_for_an_unknown_account_is_a_clear_404(sandbox):
    response = requests.post(
        f"{sandbox.url}/_admin/history",
        json={"accounts": [{"platform": "x", "handle": "nobody", "koho_id": "city-x"}]},
        timeout=10,
    )
    assert response.status_code == 404 and "nobody" in response.text
