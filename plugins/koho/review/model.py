"""The review's input: what is known of one account, as plain data built from the ledger.

Counters are as the platform reported them; ``None`` means the platform gave no figure (not
zero). ``final_at`` is when an insight stops changing (platforms settle insights up to 48 h
late); ``rejected`` holds metrics the platform refused, with its message. Per-day and per-post
records are named tuples: a city has hundreds of thousands of them and tuples build fastest.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """Registry data of one account (from accounts.yaml), plus what its platform offers."""

    account_id: str
    platform: str
    platform_name: str  # shown in reasons, e.g. "Instagram"
    kind: str
    staff_hours_per_post: float
    offers_reach: bool  # False where the platform has no reach or impressions (Bluesky, Mastodon)
    created_on: date | None = None  # first day the account existed, when known


class Snapshot(NamedTuple):
    """One day's account figures (local date in the city's time zone)."""

    day: date
    followers: int | None
    reach: int | None = None
    impressions: int | None = None
    final_at: datetime | None = None
    rejected: tuple[tuple[str, str], ...] = ()  # (metric, platform's message)


class Counters(NamedTuple):
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    comments: int = 0  # residents' comments Koho collected for the post

    @property
    def total(self) -> int:
        return sum(self)

    def below(self, other: Counters) -> bool:
        """True when any counter is lower than in ``other`` (an earlier reading)."""
        return any(now < before for now, before in zip(self, other, strict=True))


class PostRecord(NamedTuple):
    """One published post: latest counters, the reading before them, and its features."""

    post_id: str
    posted_at: datetime  # aware
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    comments: int = 0  # residents' comments Koho collected for the post
    read_at: datetime | None = None
    previous: Counters | None = None  # the reading before ``counters``, to catch counters going down
    reach: int | None = None
    has_image: bool = False
    has_link: bool = False
    final_at: datetime | None = None

    @property
    def counters(self) -> Counters:
        return Counters(self.likes, self.reposts, self.replies, self.comments)

    @property
    def engagements(self) -> int:
        return self.likes + self.reposts + self.replies + self.comments

    @property
    def sound(self) -> bool:
        """False when a counter went down since the previous reading: the figures are not to be trusted."""
        return self.previous is None or not self.counters.below(self.previous)


@dataclass(slots=True)
class AccountHistory:
    """Everything the review needs of one account."""

    account: AccountRecord
    snapshots: list[Snapshot] = field(default_factory=list)
    posts: list[PostRecord] = field(default_factory=list)


@contextmanager
def bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while building or reviewing many records.

    The records hold no reference cycles, yet each batch of new objects triggers a collection
    that rescans all the older ones: at a city's 400 days (hundreds of thousands of records)
    that doubled the review's time. Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
