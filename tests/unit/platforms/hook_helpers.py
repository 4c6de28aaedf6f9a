"""Helpers for the platform hook tests that are plain functions rather than fixtures."""

from __future__ import annotations

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
