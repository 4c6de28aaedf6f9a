"""The sandbox timeline in a real browser: a deep link from a remote id lands on the post, the thread
and link card show, and a resident-looking hostile text stays text (no script runs)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from koho.platforms.types import OutgoingPost
from sandbox.timeline import anchor
from tests.browser import chromium, page_in
from tests.unit.test_sandbox_timeline import HOSTILE, city, publish  # noqa: F401 - the fixture is used by name

pytestmark = pytest.mark.slow


def test_a_deep_link_shows_the_post_in_its_thread_with_its_link_card(sandbox, city, tmp_path):  # noqa: F811
    first = publish(city, "city-x", OutgoingPost("1/2 こほ市の防災訓練のお知らせです。"), "b1")
    second = publish(
        city,
        "city-x",
        OutgoingPost("2/2 詳しくは https://www.city.example.jp/bousai/", reply_to=first.remote_id),
        "b2",
    )
    publish(city, "city-mastodon", OutgoingPost(HOSTILE), "b3")

    with chromium() as browser, page_in(browser) as page:
        page.goto(f"{sandbox.url}/_timeline/post?{urlencode({'platform': 'x', 'id': second.remote_id})}")
        target = page.locator(f"#{anchor('x', second.remote_id)}")
        assert target.is_visible() and "2/2 詳しくは" in target.inner_text()
        assert page.evaluate("location.hash") == f"#{anchor('x', second.remote_id)}"
        root = page.locator(f"#{anchor('x', first.remote_id)}")
        assert "1/2 こほ市の防災訓練" in root.inner_text() and root.locator(".thread .post").count() == 1
        assert target.locator(".linkcard").inner_text().lower().startswith("www.city.example.jp")
        page.screenshot(path=str(tmp_path / "timeline-x.png"), full_page=True)

        page.goto(f"{sandbox.url}/_timeline?platform=mastodon")
        assert page.locator(".post.mastodon .text").first.inner_text() == HOSTILE
        assert page.locator("section.mastodon img").count() == 0  # the <img> in the text is text


def test_the_api_docs_work_with_no_network_beyond_the_sandbox(sandbox):
    """As on a closed city-hall network: every request elsewhere fails, and Swagger UI still shows the API."""
    refused: list[str] = []

    def only_the_sandbox(route) -> None:
        if route.request.url.startswith(sandbox.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with chromium() as browser, page_in(browser) as page:
        page.route("**/*", only_the_sandbox)
        page.goto(f"{sandbox.url}/_docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        assert page.locator(".opblock", has_text="/_timeline/post").count() == 1
    assert refused == []
