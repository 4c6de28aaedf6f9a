"""Waiting for an event: a condition polled with a deadline, never a sleep guessing a duration.

Built on tenacity (the project's retry library) so that every wait in the tests and benchmarks
reads the same way: retry while the condition is falsy, stop at the deadline, name what was
awaited when it did not come.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_fixed


class WaitAborted(RuntimeError):
    """``abort`` gave a reason to stop waiting before the deadline (a process died, say)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"gave up waiting for {what}: {reason}")
        self.what = what
        self.reason = reason


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    on_timeout: Callable[[], str] | None = None,
    abort: Callable[[], str | None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Poll ``condition`` until it returns something truthy, and return that.

    After ``timeout`` seconds raise TimeoutError naming ``what``, followed by ``on_timeout()``'s
    text (a log tail, say). ``abort`` is asked after every falsy answer and may return a reason
    to raise :class:`WaitAborted` at once. An exception from ``condition`` is not retried: it
    is a failure, not a "not yet".
    """

    def attempt() -> Any:
        value = condition()
        if not value and abort is not None and (reason := abort()):
            raise WaitAborted(what, reason)
        return value

    def give_up(state: RetryCallState) -> Any:
        extra = f"\n{on_timeout()}" if on_timeout else ""
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")

    retrying = Retrying(
        retry=retry_if_result(operator.not_),
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry_error_callback=give_up,
        sleep=sleep,
    )
    return retrying(attempt)
