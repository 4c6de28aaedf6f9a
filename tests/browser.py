"""Headless Chromium for the browser tests: Debian's Chromium driven by Playwright (from PyPI).

Playwright's own browser builds are never downloaded; ``scripts/ensure_chromium.sh`` (run by
``make test``) installs the system Chromium where it is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page, sync_playwright


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Chromium is not installed: run scripts/ensure_chromium.sh (make test does)")
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    """The system Chromium, headless; ``--no-sandbox`` because CI runs as root."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def page_in(browser: Browser, *, timezone: str = "Asia/Tokyo") -> Iterator[Page]:
    """A fresh page (own cookies) as a browser in Japan shows it; any script dialog fails the test."""
    context = browser.new_context(timezone_id=timezone, locale="ja-JP", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        yield page
        assert not dialogs, f"the page ran a script dialog: {dialogs}"
    finally:
        context.close()
