"""A platform's read quota as a shared budget: spent request by request, reported per run.

The quota's window is a :class:`koho.collection.budgets.Window` in the shared store, under the
platform (``shared_by: app``: YouTube's project units, X's paid reads) or under the account's
connection (LINE's insight calls per channel). Each read's first request is paid *before* it is
sent: a read the quota cannot take is not made. A read that turns out to page is charged for
every request it made, counted on the hook's HTTP session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from koho.collection.budgets import Window, budget_key
from koho.config.schema import ReadQuotaConfig
from koho.platforms.errors import RateLimited


class QuotaExhausted(RateLimited):
    """The platform's read quota has no room for this read until ``reset_at``.

    A rate limit of Koho's own making: it is raised before the platform is asked, so the
    platform's count is never exceeded; retrying after ``reset_at`` is what fixes it.
    """


@dataclass(frozen=True)
class QuotaUse:
    """How much of one quota a run's reads of one account used (JSON-safe for XCom and reports)."""

    platform: str
    units: int
    limit: int
    per_seconds: int
    remaining: int | None
    shared_by: str
    cost_usd: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class QuotaMeter:
    """Spends ``quota`` for the reads of one account and counts what they used."""

    def __init__(
        self,
        platform: str,
        conn_id: str,
        quota: ReadQuotaConfig | None,
        *,
        account: str | None = None,
        storage: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.platform, self.quota, self.account = platform, quota, account or conn_id
        self.units = 0
        self._clock = clock
        self._window: Window | None = None
        if quota is not None:
            scope = (platform,) if quota.shared_by == "app" else (platform, conn_id)
            self._window = Window(budget_key("quota", *scope), quota.units, quota.per_seconds, storage, clock)

    def _charge(self, cost: int) -> None:
        assert self._window is not None
        wait = self._window.acquire(cost)
        if wait > 0:
            reset_at = datetime.fromtimestamp(self._clock(), UTC) + timedelta(seconds=wait)
            raise QuotaExhausted(
                f"read quota used up ({self.quota.units} units per {self.quota.per_seconds} s); "  # type: ignore[union-attr]
                f"room again at {reset_at.isoformat(timespec='seconds')}",
                reset_at=reset_at,
                platform=self.platform,
                account=self.account,
            )
        self.units += cost

    @contextmanager
    def reading(self, hook: Any, method: str) -> Iterator[None]:
        """Around one hook read: pays its first request before, the further ones (pages) after."""
        cost = self.quota.cost_of(method) if self.quota else 0
        if not cost:
            yield
            return
        self._charge(cost)
        requests_made = [0]

        def count(response: Any, *args: Any, **kwargs: Any) -> Any:
            requests_made[0] += 1
            return response

        session = hook.get_conn()
        session.hooks["response"].append(count)
        try:
            yield
        finally:
            session.hooks["response"].remove(count)
            for _ in range(max(0, requests_made[0] - 1)):
                # Already spent on the platform: counted even when the window is over (then the
                # next read is refused).
                try:
                    self._charge(cost)
                except QuotaExhausted:
                    self.units += cost

    def use(self) -> QuotaUse | None:
        """What this meter's reads used, with what is left of the window now."""
        if self.quota is None or self._window is None:
            return None
        price = self.quota.usd_per_unit
        return QuotaUse(
            platform=self.platform,
            units=self.units,
            limit=self.quota.units,
            per_seconds=self.quota.per_seconds,
            remaining=self._window.remaining(),
            shared_by=self.quota.shared_by,
            cost_usd=round(self.units * price, 6) if price is not None else None,
        )
