"""Platform-neutral values that hooks take and return.

They are plain, JSON-friendly dataclasses so that operators can push them to XCom with
:func:`dataclasses.asdict` and DAG code never sees a platform's own JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Capabilities:
    """What a platform's API lets Koho do; operators and planners consult this, not platform names."""

    publish: bool = True
    delete: bool = True
    replies: bool = True  # can publish a reply to its own post (threads, follow-ups)
    images: bool = True
    image_required: bool = False
    #: The hook sends the image bytes itself (X, Mastodon, Bluesky upload them), so it is given
    #: Koho's own copy of a local image; the others are given a public URL the platform fetches.
    uploads_images: bool = False
    links: bool = True
    comments: bool = True
    search_accounts: bool = True
    idempotency_key: bool = False  # the API deduplicates retries by a client key
    #: Its posts count towards an account's caps, spacing and quiet hours (a channel Koho writes
    #: itself, such as the website, does not: a news page disturbs nobody at night).
    counts_towards_caps: bool = True
    #: Its text is fitted to a length limit (shortened, split into a thread); else it takes the full text.
    needs_fitting: bool = True
    #: Its deliveries go to an account of accounts.yaml; else to a pseudo-account the channel provides.
    registry_account: bool = True


@dataclass(frozen=True)
class OutgoingPost:
    """One post as it should appear on one account, already fitted to the platform.

    ``created_at`` is fixed when the delivery is planned, not when it is sent, so that a retry
    carries the same value; Bluesky reconciliation matches on it.
    """

    text: str
    link: str | None = None
    image_urls: tuple[str, ...] = ()
    reply_to: str | None = None  # remote id of the post this one answers (threads, follow-ups)
    created_at: datetime | None = None
    language: str = "ja"


@dataclass(frozen=True)
class PublishedPost:
    remote_id: str
    url: str | None
    created_at: datetime | None = None
    reconciled: bool = False  # True when found by reconciliation rather than by the publish answer


@dataclass(frozen=True)
class RemotePost:
    remote_id: str
    text: str
    created_at: datetime | None
    url: str | None = None


@dataclass(frozen=True)
class PostMetrics:
    remote_id: str
    impressions: int | None = None
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    quotes: int = 0
    clicks: int | None = None
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountMetrics:
    followers: int | None
    posts: int | None = None
    views: int | None = None
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountInfo:
    """An account as the platform describes it: one's own (verify) or a search hit (look-alikes)."""

    remote_id: str
    handle: str
    display_name: str | None = None
    followers: int | None = None
    url: str | None = None
    token_expires_at: datetime | None = None


@dataclass(frozen=True)
class Comment:
    """A resident's reply, comment or mention; its text is untrusted input."""

    remote_id: str
    text: str
    author: str
    created_at: datetime | None
    post_id: str | None = None  # the post it answers, when the platform says
    url: str | None = None


@dataclass(frozen=True)
class CommentPage:
    comments: list[Comment]
    cursor: str | None  # pass back to ``comments_since`` to get only newer ones
