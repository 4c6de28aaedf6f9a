"""In-memory state shared by the platform routers: accounts, posts, comments, idempotency keys.

One lock guards everything: the sandbox serves tests and demos, not traffic, and a single lock
keeps "reads reflect writes" trivially true across concurrent requests.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.faults import FaultBook
from sandbox.ratelimit import RateLimiter


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Account:
    """An account on one platform. ``token`` is None for accounts Koho does not own (look-alikes, residents)."""

    platform: str
    account_id: str
    handle: str
    display_name: str = ""
    token: str | None = None
    password: str | None = None  # Bluesky app password; the session token is issued at login
    followers: int = 0
    token_expires_at: datetime | None = None
    token_revoked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Post:
    platform: str
    post_id: str
    account_id: str
    text: str
    created_at: datetime
    reply_to: str | None = None
    link: str | None = None
    media: list[str] = field(default_factory=list)
    deleted: bool = False
    metrics: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comment:
    platform: str
    comment_id: str
    post_id: str | None
    account_id: str  # the official account the comment is addressed to
    author: str
    text: str
    created_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stats:
    """Request counters per (platform, account id, status) — benchmarks read them to count 429s."""

    counts: dict[tuple[str, str, int], int] = field(default_factory=dict)
    rejections: list[tuple[str, str, float]] = field(default_factory=list)  # (platform, account, epoch) of 429s

    def record(self, platform: str, account_id: str, status: int, epoch: float) -> None:
        key = (platform, account_id, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        if status == 429:
            self.rejections.append((platform, account_id, epoch))


class SandboxState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults = FaultBook()
        self.limits = RateLimiter()
        self._in_flight = 0
        self._idle = threading.Condition()
        self.reset()

    def request_started(self) -> None:
        with self._idle:
            self._in_flight += 1

    def request_finished(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no platform request is being answered (a ``slow`` fault's request included).

        A request that outlived its client's timeout is still answered later and counted then;
        waiting for it before a reset keeps it from landing in the next test's fresh state.
        """
        with self._idle:
            return self._idle.wait_for(lambda: not self._in_flight, timeout=timeout)

    def reset(self) -> None:
        with self.lock:
            self.accounts: dict[tuple[str, str], Account] = {}
            self.posts: dict[str, dict[str, Post]] = {}
            self.comments: dict[str, list[Comment]] = {}
            self.idempotency: dict[tuple[str, str, str], tuple[datetime, Any]] = {}
            self.scratch: dict[str, dict[str, Any]] = {}  # per-platform router state (containers, sessions)
            self.stats = Stats()
            self._ids = itertools.count(1_000_001)
            self.faults.clear()
            self.limits.reset()

    def next_id(self) -> str:
        """A fresh numeric id, increasing (X and Mastodon ids sort by time; so do ours)."""
        with self.lock:
            return str(next(self._ids))

    # accounts -----------------------------------------------------------------

    def add_account(self, account: Account) -> Account:
        with self.lock:
            self.accounts[(account.platform, account.account_id)] = account
            return account

    def account(self, platform: str, account_id: str) -> Account | None:
        return self.accounts.get((platform, account_id))

    def account_by_token(self, platform: str, token: str | None) -> Account | None:
        if not token:
            return None
        with self.lock:
            for acc in self.accounts.values():
                if acc.platform == platform and acc.token == token:
                    return acc
        return None

    def account_by_handle(self, platform: str, handle: str) -> Account | None:
        handle = handle.lstrip("@").lower()
        with self.lock:
            for acc in self.accounts.values():
                if acc.platform == platform and acc.handle.lstrip("@").lower() == handle:
                    return acc
        return None

    def platform_accounts(self, platform: str) -> list[Account]:
        with self.lock:
            return [a for a in self.accounts.values() if a.platform == platform]

    # posts and comments -------------------------------------------------------------

    def add_post(self, post: Post) -> Post:
        with self.lock:
            self.posts.setdefault(post.platform, {})[post.post_id] = post
            return post

    def post(self, platform: str, post_id: str) -> Post | None:
        post = self.posts.get(platform, {}).get(post_id)
        return None if post is None or post.deleted else post

    def account_posts(self, platform: str, account_id: str, *, include_deleted: bool = False) -> list[Post]:
        """Newest first."""
        with self.lock:
            posts = [
                p
                for p in self.posts.get(platform, {}).values()
                if p.account_id == account_id and (include_deleted or not p.deleted)
            ]
        return sorted(posts, key=lambda p: (p.created_at, int(p.post_id) if p.post_id.isdigit() else 0), reverse=True)

    def add_comment(self, comment: Comment) -> Comment:
        with self.lock:
            self.comments.setdefault(comment.platform, []).append(comment)
            return comment

    def account_comments(self, platform: str, account_id: str) -> list[Comment]:
        """Oldest first."""
        with self.lock:
            return [c for c in self.comments.get(platform, []) if c.account_id == account_id]

    # idempotency --------------------------------------------------------------------

    def remembered(self, platform: str, account_id: str, key: str, ttl_seconds: float) -> Any | None:
        with self.lock:
            hit = self.idempotency.get((platform, account_id, key))
            if hit and (utcnow() - hit[0]).total_seconds() <= ttl_seconds:
                return hit[1]
            return None

    def remember(self, platform: str, account_id: str, key: str, value: Any) -> None:
        with self.lock:
            self.idempotency[(platform, account_id, key)] = (utcnow(), value)
