"""Helpers for the platform hook tests that are plain functions rather than fixtures."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from koho.platforms.errors import PlatformError


def errors_under_faults(sandbox, platform: str, kinds: Iterable[str], attempt: Callable[[str], object], *,
                        count: int) -> list[str]:
    """The messages of the platform errors ``attempt(kind)`` raised, one sandbox fault kind at a time.

    Each fault is armed ``count`` times so that retries meet it too, and cleared after its attempt so the
    next kind starts clean; the secrecy tests then check that no message carries the token.
    """
    messages = []
    for kind in kinds:
        sandbox.fault(platform, kind, count=count)
        try:
            attempt(kind)
        except PlatformError as exc:
            messages.append(str(exc))
        sandbox.admin("DELETE", "/faults")
    return messages


def wait_until(condition: Callable[[], bool], what: str, *, deadline_seconds: float = 10.0) -> None:
    """Poll the sandbox until ``condition()`` holds: an event awaited, not a guessed duration."""
    deadline = time.monotonic() + deadline_seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


def sleep_until(landed: Callable[[], bool], asked: list[float]) -> Callable[[float], None]:
    """A stand-in for a hook's ``sleep`` that records the wait asked for and returns once ``landed()``.

    For ``slow`` faults, whose request outlives the hook's timeout and is applied afterwards: whatever
    the hook waits for after the timeout (a backoff, the in-flight grace), the test lets it resume only
    when the late request has really landed, so the retry or reconciliation meets the worst case: the
    post is on the platform although the hook never heard so. It also keeps a late request from
    landing in the next test's sandbox.
    """

    def sleep(seconds: float) -> None:
        asked.append(seconds)
        wait_until(landed, "the slow request's landing")

    return sleep
