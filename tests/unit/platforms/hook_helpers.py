"""Helpers for the platform hook tests that are plain functions rather than fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from harness.waiting import wait_for
from koho.platforms.errors import PlatformError


def errors_under_faults(
    sandbox, platform: str, kinds: Iterable[str], attempt: Callable[[str], object], *, count: int
) -> list[str]:
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


def write_png(path: Path, *, width: int = 4, height: int = 3, size: int = 256) -> str:
    """A file that is a PNG to every check a platform makes (signature, IHDR size), ``size`` bytes long.

    The tail is random so that no two test images are the same upload.
    """
    header = b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR"
    header += width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    path.write_bytes(header + os.urandom(max(0, size - len(header))))
    return str(path)


def requests_seen(sandbox, platform: str) -> int:
    """How many requests the sandbox has answered for ``platform`` (to prove a refusal sent none)."""
    return sum(n for (p, account, _), n in sandbox.state.stats.counts.items() if p == platform and account == "*")


def wait_until(condition: Callable[[], bool], what: str, *, deadline_seconds: float = 10.0) -> None:
    """Poll the sandbox until ``condition()`` holds: an event awaited, not a guessed duration."""
    wait_for(condition, timeout=deadline_seconds, what=what, interval=0.05)


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
