"""The review's input: what is known of one account, as plain data built from the ledger.

Counters are as the platform reported them; ``None`` means the platform gave no figure (not
zero). ``final_at`` is when an insight stops changing (platforms settle insights up to 48 h
late); ``rejected`` holds metrics the platform refused, with its message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One day's account figures (local date in the city's time zone)."""

    day: date
    followers: int | None
    reach: int | None = None
    impressions: int | None = None
    final_at: datetime | None = None
    rejected: tuple[tuple[str, str], ...] = ()  # (metric, platform's message)


@dataclass(frozen=True, slots=True)
class Counters:
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    comments: int = 0  # residents' comments Koho collected for the post

    @property
    def total(self) -> int:
        return self.likes + self.reposts + self.replies + self.comments

    def below(self, other: Counters) -> bool:
        """True when any counter is lower than in ``other`` (an earlier reading)."""
        return (
            self.likes < other.likes
            or self.reposts < other.reposts
            or self.replies < other.replies
            or self.comments < other.comments
        )


@dataclass(frozen=True, slots=True)
class PostRecord:
    """One published post: latest counters, the reading before them, and its features."""

    post_id: str
    posted_at: datetime  # aware
    counters: Counters
    read_at: datetime | None = None
    previous: Counters | None = None  # the reading before ``counters``, to catch counters going down
    reach: int | None = None
    has_image: bool = False
    has_link: bool = False
    final_at: datetime | None = None


@dataclass(slots=True)
class AccountHistory:
    """Everything the review needs of one account."""

    account: AccountRecord
    snapshots: list[Snapshot] = field(default_factory=list)
    posts: list[PostRecord] = field(default_factory=list)
