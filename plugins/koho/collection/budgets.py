"""Budgets and rate-limit windows shared by every process that uses an account.

Mapped tasks run in several processes at once (LocalExecutor's workers, Celery workers on several
machines); a budget kept in one hook object would hold within one process only. So every window
lives in one store, a ``limits`` storage chosen by configuration:

* ``$KOHO_BUDGET_STORAGE`` — a ``limits`` storage URI: ``redis://host:6379/2`` in the distributed
  setup, ``sqlite:///<file>`` for the processes of one machine, ``memory://`` for one process;
* unset: ``sqlite:///$AIRFLOW_HOME/koho-budgets.sqlite`` (the embedded setup needs no server);
* ``$KOHO_BUDGET_PREFIX`` (default ``koho``) starts every key, so two Koho installations (or two
  test runs) can share one Redis.

Two kinds of window are kept there:

* :class:`Window` — a moving window Koho sets itself (``write_budget``, a platform's read quota):
  at most ``calls`` per ``seconds``, counted when allowed. ``limits`` counts windows in whole
  seconds, so a window is rounded *up* to the next second: never looser than configured.
* :class:`AnnouncedWindows` — what a platform announced in its rate-limit headers (remaining calls
  until a reset time): every process takes its calls from the same remaining count.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from limits import RateLimitItemPerSecond
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from koho.collection import sqlite_storage  # noqa: F401 - registers the sqlite:// scheme

STORAGE_ENV = "KOHO_BUDGET_STORAGE"
PREFIX_ENV = "KOHO_BUDGET_PREFIX"
#: The shortest wait a full window asks for: a retry sooner than this would only spin.
MIN_WAIT = 0.01


def storage_uri() -> str:
    """The configured store (see the module docstring)."""
    configured = os.environ.get(STORAGE_ENV, "").strip()
    if configured:
        return configured
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    return f"sqlite:///{(home / 'koho-budgets.sqlite').resolve()}"


@cache
def _storage(uri: str) -> Storage:
    return storage_from_string(uri)


def budget_storage() -> Storage:
    """The shared store, one per process and URI (``limits`` storages reconnect after a fork)."""
    return _storage(storage_uri())


def budget_key(*parts: str) -> str:
    """A store key, under ``$KOHO_BUDGET_PREFIX``: e.g. ``koho/line/koho_city_line/write``."""
    prefix = os.environ.get(PREFIX_ENV, "").strip() or "koho"
    return "/".join((prefix, *parts))


@dataclass
class Window:
    """At most ``calls`` per ``seconds`` (rounded up to whole seconds) for ``key``, across processes."""

    key: str
    calls: int
    seconds: float
    storage: Storage | None = None
    clock: Callable[[], float] = time.time
    _item: RateLimitItemPerSecond = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.calls < 1 or self.seconds <= 0:
            raise ValueError(f"window '{self.key}' needs calls >= 1 and seconds > 0")
        self._item = RateLimitItemPerSecond(self.calls, max(1, math.ceil(self.seconds)), namespace="w")

    @property
    def _limiter(self) -> MovingWindowRateLimiter:
        return MovingWindowRateLimiter(self.storage or budget_storage())

    def acquire(self, cost: int = 1) -> float:
        """Take ``cost`` calls now and return 0, or return the seconds until they could fit."""
        limiter = self._limiter
        if cost > self.calls:
            raise ValueError(f"a cost of {cost} can never fit window '{self.key}' ({self.calls} calls)")
        if limiter.hit(self._item, self.key, cost=cost):
            return 0.0
        reset, _ = limiter.get_window_stats(self._item, self.key)
        return max(MIN_WAIT, reset - self.clock())

    def remaining(self) -> int:
        """Calls left in the window now (for reports)."""
        return self._limiter.get_window_stats(self._item, self.key)[1]


class AnnouncedWindows:
    """The windows a platform announces (``remaining`` calls until ``reset_at``), shared by processes.

    A counter per bucket holds ``remaining + 1`` until the reset; each call takes its cost from it
    first. The latest announcement replaces the count: it is the platform's own, and it includes
    every process's calls.
    """

    def __init__(self, storage: Storage | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._given = storage
        self.clock = clock

    @property
    def storage(self) -> Storage:
        return self._given or budget_storage()

    def note(self, key: str, remaining: int, reset_at: datetime) -> None:
        """Remember what the platform said after a response."""
        seconds = reset_at.timestamp() - self.clock()
        if seconds <= 0:
            return
        expiry = max(1, math.ceil(seconds))
        self.storage.clear(key)
        self.storage.incr(key, expiry, amount=max(0, remaining) + 1)
        # The reset to the millisecond beside it: a storage's own expiry may be whole seconds (Redis).
        self.storage.clear(f"{key}/reset")
        self.storage.incr(f"{key}/reset", expiry, amount=round(reset_at.timestamp() * 1000))

    def take(self, key: str, cost: int = 1) -> datetime | None:
        """Take ``cost`` calls from the announced window; ``None`` to go ahead, else when it resets."""
        storage = self.storage
        if storage.get(key) == 0:
            return None  # nothing announced (or its reset has passed)
        # Take first, then look: two processes can never both take the last call. Expiry 1 s only
        # applies if the counter expired meanwhile; then the stray count must not outlive a second.
        if storage.incr(key, 1, amount=-cost) >= 1:
            return None
        storage.incr(key, 1, amount=cost)  # give it back: the window cannot take this call
        reset_ms = storage.get(f"{key}/reset")
        return datetime.fromtimestamp(reset_ms / 1000 if reset_ms else storage.get_expiry(key), UTC)
