"""Fixed-window rate limits per (platform, account, bucket), as the platforms announce them in headers.

Each router names its buckets (X limits per endpoint, Bluesky per write points, Mastodon per
account) and sets defaults; the admin API can shrink windows so benchmarks run in seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    limit: int
    remaining: int
    reset_epoch: float  # when the window reopens, epoch seconds (float; routers format as needed)
    allowed: bool


class RateLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._defaults: dict[tuple[str, str], tuple[int, float]] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._overrides: dict[tuple[str, str], tuple[int, float]] = {}
            self._windows: dict[tuple[str, str, str], tuple[float, int]] = {}  # start, used

    def default(self, platform: str, bucket: str, limit: int, window_seconds: float) -> None:
        """Routers declare their platform's real limits here at start-up."""
        with self._lock:
            self._defaults[(platform, bucket)] = (limit, window_seconds)

    def configure(self, platform: str, bucket: str, limit: int, window_seconds: float) -> None:
        """Override a limit (admin API); survives until :meth:`reset`."""
        with self._lock:
            self._overrides[(platform, bucket)] = (limit, window_seconds)
            for key in [k for k in self._windows if k[0] == platform and k[2] == bucket]:
                del self._windows[key]

    def settings(self, platform: str, bucket: str) -> tuple[int, float] | None:
        return self._overrides.get((platform, bucket)) or self._defaults.get((platform, bucket))

    def hit(
        self, platform: str, account_id: str, bucket: str, cost: int = 1, now: float | None = None
    ) -> Window | None:
        """Count one request (of ``cost`` points); ``None`` when the bucket has no limit."""
        settings = self.settings(platform, bucket)
        if settings is None:
            return None
        limit, seconds = settings
        now = time.time() if now is None else now
        with self._lock:
            key = (platform, account_id, bucket)
            start, used = self._windows.get(key, (now, 0))
            if now - start >= seconds:
                start, used = now, 0
            allowed = used + cost <= limit
            if allowed:
                used += cost
            self._windows[key] = (start, used)
            return Window(limit, max(0, limit - used), start + seconds, allowed)
