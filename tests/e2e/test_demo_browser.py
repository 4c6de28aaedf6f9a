"""The demo as a newcomer sees it, in a real browser, on a real Airflow.

The rolling demo calendar (``koho.calendar.demo``, what ``make run`` writes) is generated for now;
calendar_sync plans it (refusing the post that breaks city-x's spacing) and calendar_publish
sends the greeting. Then Chromium logs in through the Airflow UI, opens the Koho calendar view and
finds the published posts (title, platform, status) with links to the sandbox timeline, follows
one, and finds the post's text on the platform's timeline.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bench.airflow_stack import AirflowStack, relaxed_config, wait_for
from koho.calendar.demo import write_demo_calendar
from koho.config import load_config
from koho.ledger.db import Ledger
from koho.ledger.models import Delivery
from koho.timeutil import to_local, utcnow
from tests.browser import chromium, page_in

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

DAGS = ("calendar_sync", "calendar_publish", "calendar_approval")
GREETING = "Koho デモへようこそ"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo-browser")
    # Quiet hours off, so that the greeting reaches every greeter at any hour of the test; city-x
    # keeps its 30-minute spacing, which refuses the demo's second post.
    config = relaxed_config(work / "config", keep_caps=["city-x"])
    with AirflowStack(work, config_dir=config) as live:
        live.wait_for_dags(DAGS)
        yield live


def login(page, stack: AirflowStack) -> None:
    """Through the Airflow UI's own login form, as a person would."""
    page.goto(f"{stack.api}/", wait_until="networkidle")
    page.locator("input[name='username'], #username").first.fill("admin")
    page.locator("input[name='password'], #password").first.fill(stack.password)
    page.locator("input[name='password'], #password").first.press("Enter")
    page.wait_for_url(lambda url: "login" not in url, timeout=60_000)


def test_the_demo_calendar_shows_its_published_posts_in_the_calendar_and_on_the_timeline(stack, tmp_path):
    config = load_config(stack.config_dir)
    # generated as if make run had started two and a half minutes ago: the greeting is a minute away
    path = write_demo_calendar(stack.calendar_dir, config, now=utcnow() - timedelta(seconds=150))
    assert path.parent == stack.calendar_dir

    run = stack.trigger("calendar_sync", run_id="demo-sync")
    assert stack.wait_run("calendar_sync", run, timeout=120) == "failed"  # the refused post is reported
    ledger = Ledger(stack.ledger_url)

    def greeting_published():
        with ledger.session(readonly=True) as session:
            rows = [d for d in session.scalars(select(Delivery)) if d.entry_id.endswith("-hello")]
        return rows if rows and all(d.status == "published" for d in rows) else None

    published = wait_for(
        greeting_published, timeout=240, what="the greeting to be published", on_timeout=lambda: stack.tail("scheduler")
    )
    accounts = {row["id"]: row for row in stack.rows}
    greeted = {d.account_id: d for d in published}
    assert len({accounts[a]["platform"] for a in greeted}) >= 4

    day = to_local(published[0].due_at).date().isoformat()
    with chromium() as browser, page_in(browser) as page:
        login(page, stack)
        page.goto(f"{stack.api}/koho/calendar?view=week&date={day}", wait_until="load")
        page.screenshot(path=str(tmp_path / "calendar-week.png"), full_page=True)
        items = page.locator("table.cal li.status-published", has_text=GREETING)
        assert items.count() == len(greeted)
        for account_id in greeted:
            row = page.locator("tr", has=page.locator("th.account", has_text=accounts[account_id]["display_name"]))
            assert row.locator("li.status-published", has_text=GREETING).count() == 1, account_id
        waiting = page.locator("table.cal li.status-awaiting_approval")
        assert waiting.count() == 1 and "防災訓練のお知らせ" in waiting.inner_text()

        link = page.locator("li.status-published", has_text=GREETING).locator("a.timeline").first
        href = link.get_attribute("href")
        assert href and href.startswith(f"{stack.sandbox.url}/_timeline/post?")
        page.goto(href, wait_until="load")
        page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
        target = page.locator(":target")
        assert "こほ市の公式アカウントです" in target.inner_text()
        page.goto(f"{stack.sandbox.url}/_timeline", wait_until="load")
        for account_id in greeted:
            platform = accounts[account_id]["platform"]
            section = page.locator(f"section[data-platform='{platform}']")
            assert section.locator(".post .text", has_text="Koho のデモから投稿しています").count() >= 1, platform
