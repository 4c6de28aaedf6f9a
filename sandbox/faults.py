"""Fault injection: rules that make the next matching requests fail the way real platforms fail.

A rule matches a platform, optionally one account (id or handle) and one operation, and fires
either for the next ``count`` matching requests or at random with probability ``rate`` (seeded,
so a run can be repeated). Kinds:

``rate_limit``       429 with the platform's reset headers
``server_error``     a 5xx in the platform's error shape
``slow``             answer only after ``delay`` seconds (beyond the client's timeout)
``expired_token``    the platform's expired-token error
``duplicate``        the platform's duplicate-content rejection (on publish)
``lost_response``    apply the request, then fail as a gateway would (or after ``delay``)
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from itertools import count as _counter

KINDS = frozenset({"rate_limit", "server_error", "slow", "expired_token", "duplicate", "lost_response"})
#: ``media`` is an upload of an image before its post (X, Mastodon), so a fault can hit the post alone.
OPERATIONS = frozenset({"publish", "media", "delete", "read", "metrics", "comments", "verify", "search", "auth", "*"})


@dataclass
class Fault:
    platform: str
    kind: str
    account: str | None = None
    operation: str = "*"
    count: int | None = 1
    rate: float | None = None
    delay: float = 0.0
    seed: int | None = None
    fault_id: int = 0
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind '{self.kind}'; expected one of {sorted(KINDS)}")
        if self.operation not in OPERATIONS:
            raise ValueError(f"unknown operation '{self.operation}'; expected one of {sorted(OPERATIONS)}")
        if self.rate is not None:
            if not 0 < self.rate <= 1:
                raise ValueError("rate must be in (0, 1]")
            self.count = None
        elif self.count is None or self.count < 1:
            raise ValueError("a fault needs count >= 1 or a rate")
        self._rng = random.Random(self.seed)

    def matches(self, platform: str, accounts: tuple[str, ...], operation: str) -> bool:
        return (
            self.platform == platform
            and (self.account is None or self.account.lstrip("@").lower() in accounts)
            and self.operation in ("*", operation)
        )

    def public(self) -> dict:
        data = asdict(self)
        data.pop("_rng", None)
        return data


class FaultBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = _counter(1)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.fault_id = next(self._ids)
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def draw(self, platform: str, accounts: tuple[str, ...], operation: str) -> Fault | None:
        """The fault to apply to this request, if any; count-based rules are used up as they fire."""
        accounts = tuple(a.lstrip("@").lower() for a in accounts if a)
        with self._lock:
            for fault in self._faults:
                if not fault.matches(platform, accounts, operation):
                    continue
                if fault.rate is not None:
                    if fault._rng.random() < fault.rate:
                        fault.fired += 1
                        return fault
                    continue
                if fault.count and fault.count > 0:
                    fault.count -= 1
                    fault.fired += 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None
