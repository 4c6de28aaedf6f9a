"""Fixtures shared by the platform hook tests: recorded waits and hooks wired to a sandbox account.

Every hook module tests against its own account with its own hook class, but the wiring is the same:
an ``AIRFLOW_CONN_*`` connection to the sandbox, a retry policy with millisecond backoff and a ``sleep``
that records the wait instead of sleeping, so the tests can assert on retries and announced resets
without waiting for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from koho.platforms.base import PlatformHook, RetryPolicy

H = TypeVar("H", bound=PlatformHook)


def fast_retry(attempts: int) -> RetryPolicy:
    """A retry policy whose backoff is milliseconds: tests count retries, they do not sit through them."""
    return RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def waits() -> list[float]:
    """The seconds each hook was asked to wait, in order (hooks get ``sleep=waits.append``)."""
    return []


@pytest.fixture
def hook_factory(connect: Callable[..., str], waits: list[float]) -> Callable[..., Callable[..., Any]]:
    """``hook_factory(HookClass, platform, account, *, attempts=3, timeout=None, **conn_extra)`` -> ``make_hook``.

    ``make_hook(account=None, *, attempts=..., timeout=..., **extra)`` connects to ``account`` (by default
    the one given to the factory) with ``conn_extra`` and ``extra`` as the connection's extra fields, and
    returns a new hook on it. ``timeout=None`` leaves the hook's own default.
    """

    def factory(
        hook_cls: type[H],
        platform: str,
        default_account: dict,
        *,
        attempts: int = 3,
        timeout: float | None = None,
        **conn_extra: Any,
    ) -> Callable[..., H]:
        default_attempts, default_timeout = attempts, timeout

        def make_hook(
            account: dict | None = None,
            *,
            attempts: int = default_attempts,
            timeout: float | None = default_timeout,
            **extra: Any,
        ) -> H:
            conn_id = connect(platform, account or default_account, **conn_extra, **extra)
            options = {} if timeout is None else {"timeout": timeout}
            return hook_cls(conn_id, retry=fast_retry(attempts), sleep=waits.append, **options)

        return make_hook

    return factory


@pytest.fixture
def hook(make_hook: Callable[..., PlatformHook]) -> PlatformHook:
    """A hook on the module's account, from the module's own ``make_hook`` fixture."""
    return make_hook()
