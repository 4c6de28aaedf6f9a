"""Incremental readers over the hooks' read methods: an account, its hook and its ledger cursor in,
normalised records and the new cursor out.

A reader never stores anything and never swallows an error it cannot place: what it read before a
failure comes back with the cursor that covers exactly that, so the caller stores it and the next
run continues from there (nothing is read twice, nothing is skipped). A read the quota cannot take
stops the account's batch early (``complete=False``) with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from koho.collection.quota import QuotaExhausted, QuotaMeter
from koho.platforms.errors import PermanentlyRejected, PlatformError


@dataclass(frozen=True)
class AccountRef:
    """What a reader needs of an account: its Koho id, platform, connection and recent posts."""

    id: str
    platform: str
    conn_id: str
    #: Remote ids of the account's recent posts (from the ledger's published deliveries): the posts
    #: whose counters are read, and where platforms keep comments per post.
    recent_post_ids: tuple[str, ...] = ()


@dataclass
class Batch:
    """What one reader read for one account."""

    records: list[Any]
    cursor: str | None  # to store for next time; None: the stream keeps no cursor
    complete: bool = True
    stopped: str | None = None  # why the batch ended early (quota, a failed page)
    skipped: list[str] = field(default_factory=list)  # items the platform refused, with the reason


class Reader(Protocol):
    """One stream of one kind of record; ``stream`` names its ledger cursor."""

    stream: str
    method: str

    def read(self, account: AccountRef, hook: Any, cursor: str | None, meter: QuotaMeter) -> Batch: ...


class CommentsReader:
    """Replies, comments and mentions newer than the cursor (``comments_since``), each once.

    A hook returns what it can in one call (its own page cap); the reader calls again from the
    new cursor until nothing newer comes, so a run after a long outage catches up completely.
    """

    stream: ClassVar[str] = "comments"
    method: ClassVar[str] = "comments_since"

    def __init__(self, *, max_calls: int = 50) -> None:
        self.max_calls = max_calls

    def read(self, account: AccountRef, hook: Any, cursor: str | None, meter: QuotaMeter) -> Batch:
        records: list[Any] = []
        seen: set[str] = set()
        current = cursor
        for _ in range(self.max_calls):
            try:
                with meter.reading(hook, self.method):
                    page = hook.comments_since(current, post_ids=account.recent_post_ids)
            except PlatformError as exc:
                if not records and not isinstance(exc, QuotaExhausted):
                    raise
                return Batch(records, current, complete=False, stopped=str(exc))
            fresh = [c for c in page.comments if c.remote_id not in seen]
            seen.update(c.remote_id for c in fresh)
            records.extend(fresh)
            moved = page.cursor is not None and page.cursor != current
            current = page.cursor if page.cursor is not None else current
            if not fresh or not moved:
                return Batch(records, current)
        return Batch(
            records, current, complete=False, stopped=f"stopped after {self.max_calls} calls; continues next run"
        )


class AccountMetricsReader:
    """The account's counters now (followers, posts, views): one snapshot, no cursor."""

    stream: ClassVar[str] = "account_metrics"
    method: ClassVar[str] = "account_metrics"

    def read(self, account: AccountRef, hook: Any, cursor: str | None, meter: QuotaMeter) -> Batch:
        with meter.reading(hook, self.method):
            return Batch([hook.account_metrics()], None)


class PostMetricsReader:
    """Counters of the account's recent posts, one request each, resuming where a round stopped.

    The cursor is the last post read in an unfinished round (empty once a round is done): after
    the quota ran out mid-round, the next run reads the remaining posts first instead of
    starting over. A post the platform no longer has is skipped with the reason.
    """

    stream: ClassVar[str] = "post_metrics"
    method: ClassVar[str] = "post_metrics"

    def read(self, account: AccountRef, hook: Any, cursor: str | None, meter: QuotaMeter) -> Batch:
        posts = list(account.recent_post_ids)
        if cursor and cursor in posts:
            posts = posts[posts.index(cursor) + 1 :]
        records: list[Any] = []
        skipped: list[str] = []
        last = cursor or ""
        for remote_id in posts:
            try:
                with meter.reading(hook, self.method):
                    records.append(hook.post_metrics(remote_id))
            except PermanentlyRejected as exc:
                skipped.append(f"post {remote_id}: {exc}")
            except PlatformError as exc:
                if not records and not isinstance(exc, QuotaExhausted):
                    raise
                return Batch(records, last, complete=False, stopped=str(exc), skipped=skipped)
            last = remote_id
        return Batch(records, "", skipped=skipped)


class SearchAccountsReader:
    """Accounts whose names resemble each query (look-alikes of the official account): no cursor."""

    stream: ClassVar[str] = "search"
    method: ClassVar[str] = "search_accounts"

    def __init__(self, queries: Sequence[str], *, limit: int = 20) -> None:
        self.queries, self.limit = list(queries), limit

    def read(self, account: AccountRef, hook: Any, cursor: str | None, meter: QuotaMeter) -> Batch:
        records: list[Any] = []
        for query in self.queries:
            try:
                with meter.reading(hook, self.method):
                    records.extend(hook.search_accounts(query, limit=self.limit))
            except PlatformError as exc:
                if not records and not isinstance(exc, QuotaExhausted):
                    raise
                return Batch(records, None, complete=False, stopped=str(exc))
        return Batch(records, None)
