"""Facebook Page through the Graph API (Pages API) with a Page access token.

Publishing: ``POST /{page-id}/feed`` (``message``, ``link``) for text and links; one image goes
through ``POST /{page-id}/photos`` (``url``, ``caption``), several images are uploaded unpublished
and attached to a feed post with ``attached_media``. Facebook has no idempotency key: after an
unknown outcome Koho reads ``GET /{page-id}/published_posts?since=`` and matches the message
(the base hook's ``find_published``); a 506 "duplicate" answer on a retry is only a hint.

Replies: a Page cannot publish a post "in reply to" its own post; the nearest thing is a comment
under it, which readers see as a comment, not as a follow-up in their feed. Koho therefore
declares ``replies=False`` and publishes follow-ups as new Page posts.

Account search uses the Pages Search API (``GET /pages/search?q=``), which needs the "Page Public
Metadata Access" feature for the app; Graph offers no other page search.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlparse

from koho.platforms._graph import GraphHook, epoch, stop_before
from koho.platforms.base import parse_time
from koho.platforms.errors import PlatformError
from koho.platforms.types import (
    AccountInfo,
    AccountMetrics,
    Capabilities,
    Comment,
    OutgoingPost,
    PostMetrics,
    PublishedPost,
    RemotePost,
)

POST_FIELDS = "id,message,created_time,permalink_url"
ENGAGEMENT_FIELDS = "reactions.summary(total_count).limit(0),comments.summary(total_count).limit(0),shares"

#: Which PostMetrics field an insight metric fills; anything else lands in ``extra``.
METRIC_FIELDS = {
    "post_media_view": "impressions",
    "post_impressions": "impressions",  # retired in 2025; kept so old configurations still map
    "post_clicks": "clicks",
}


class FacebookHook(GraphHook):
    """A Facebook Page (connection: host = Graph base URL, password = Page access token)."""

    platform = "facebook"
    capabilities = Capabilities(replies=False, image_required=False, idempotency_key=False)
    default_post_metrics: ClassVar[tuple[str, ...]] = ("post_media_view", "post_clicks")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._page_id: str | None = None

    # ------------------------------------------------------------------ identity

    @property
    def page_id(self) -> str:
        """The extra ``account_id``, else the id of ``/me`` (a Page token's ``/me`` is the Page)."""
        if self._page_id is None:
            configured = self.extras.get("account_id")
            self._page_id = str(configured) if configured else str(self.get_json("me", params={"fields": "id"})["id"])
        return self._page_id

    def verify_credentials(self) -> AccountInfo:
        me = self.get_json("me", params={"fields": "id,name,username,link,followers_count"})
        return AccountInfo(
            remote_id=str(me["id"]),
            handle=me.get("username") or self.connection.login or str(me["id"]),
            display_name=me.get("name"),
            followers=me.get("followers_count"),
            url=me.get("link"),
            token_expires_at=self.token_expires_at(),
        )

    # ------------------------------------------------------------------ publishing

    def publish(self, post: OutgoingPost, *, idempotency_key: str) -> PublishedPost:
        """One attempt; Facebook has no idempotency key, so ``publish_once`` reconciles by message."""
        if post.reply_to:
            raise self._unsupported("publish a reply to a Page post (Koho posts follow-ups as new Page posts)")
        if len(post.image_urls) == 1:
            caption = post.text if not post.link or post.link in post.text else f"{post.text}\n{post.link}"
            body = self.post_form(self.page_id, "photos", data={"url": post.image_urls[0], "caption": caption})
            post_id = str(body.get("post_id") or body["id"])
        else:
            data: dict[str, str] = {"message": post.text}
            if post.link:
                data["link"] = post.link
            for index, url in enumerate(post.image_urls):
                data[f"attached_media[{index}]"] = f'{{"media_fbid":"{self._unpublished_photo(url)}"}}'
            post_id = str(self.post_form(self.page_id, "feed", data=data)["id"])
        return self._published(post_id)

    def _unpublished_photo(self, url: str) -> str:
        # Safe to repeat: an unpublished photo is invisible until a post attaches it.
        body = self.post_form(self.page_id, "photos", data={"url": url, "published": "false"}, retry_unknown=True)
        return str(body["id"])

    def _published(self, post_id: str) -> PublishedPost:
        try:
            remote = self.get_post(post_id)
        except PlatformError as exc:  # it is published; a missing URL must not turn that into a failure
            self.log.warning("%s: published %s but could not read it back (%s)", self.platform, post_id, exc.reason)
            return PublishedPost(post_id, f"https://www.facebook.com/{post_id}")
        return PublishedPost(post_id, remote.url, remote.created_at)

    # ------------------------------------------------------------------ reading

    def _remote(self, row: dict) -> RemotePost:
        return RemotePost(
            str(row["id"]), row.get("message") or "", parse_time(row.get("created_time")), row.get("permalink_url")
        )

    def get_post(self, remote_id: str) -> RemotePost:
        return self._remote(self.get_json(remote_id, params={"fields": POST_FIELDS}))

    def list_recent_posts(self, since: datetime, *, limit: int = 100) -> list[RemotePost]:
        rows = self.paged(
            self.page_id,
            "published_posts",
            params={"fields": POST_FIELDS, "since": epoch(since), "limit": min(limit, 100)},
        )
        return stop_before((self._remote(r) for r in rows), since, limit)

    def post_metrics(self, remote_id: str) -> PostMetrics:
        """Reactions, comments and shares from the post; views and clicks from its insights."""
        fields = self.get_json(remote_id, params={"fields": ENGAGEMENT_FIELDS})
        values = self._insights(remote_id, self.post_metric_names())
        mapped: dict[str, int] = {}
        extra: dict[str, int] = {}
        for name, value in values.items():
            target = METRIC_FIELDS.get(name)
            if target:
                mapped.setdefault(target, value)
            else:
                extra[name] = value
        return PostMetrics(
            remote_id=remote_id,
            impressions=mapped.get("impressions"),
            likes=_summary_total(fields.get("reactions")),
            replies=_summary_total(fields.get("comments")),
            reposts=int((fields.get("shares") or {}).get("count") or 0),
            quotes=0,
            clicks=mapped.get("clicks"),
            extra=extra,
        )

    def account_metrics(self) -> AccountMetrics:
        page = self.get_json(self.page_id, params={"fields": "followers_count,fan_count"})
        followers = page.get("followers_count")
        extra = {"fan_count": int(page["fan_count"])} if page.get("fan_count") is not None else {}
        return AccountMetrics(followers=followers if followers is not None else page.get("fan_count"), extra=extra)

    def _post_comments(self, post_id: str, after: datetime | None) -> Iterator[Comment]:
        rows = self.paged(
            post_id,
            "comments",
            params={
                "fields": "id,message,created_time,from,permalink_url",
                "order": "reverse_chronological",
                "filter": "stream",
                "limit": 100,
            },
        )
        for row in rows:
            created = parse_time(row.get("created_time"))
            if after is not None and created is not None and created < after:
                return  # newest first: everything further down is older than the cursor
            author = row.get("from") or {}
            if str(author.get("id")) == self.page_id:
                continue
            yield Comment(
                remote_id=str(row["id"]),
                text=row.get("message") or "",
                author=author.get("name") or "unknown",
                created_at=created,
                post_id=post_id,
                url=row.get("permalink_url"),
            )

    def search_accounts(self, query: str, *, limit: int = 20) -> list[AccountInfo]:
        """Pages whose name matches ``query`` (Pages Search API; needs Page Public Metadata Access)."""
        rows = self.paged(
            "pages",
            "search",
            params={"q": query, "fields": "id,name,link,verification_status", "limit": min(limit, 100)},
        )
        found = []
        for row in rows:
            link = row.get("link")
            handle = urlparse(link).path.strip("/").split("/")[-1] if link else ""
            found.append(
                AccountInfo(
                    remote_id=str(row["id"]), handle=handle or str(row["id"]), display_name=row.get("name"), url=link
                )
            )
            if len(found) >= limit:
                break
        return found


def _summary_total(connection: dict | None) -> int:
    return int(((connection or {}).get("summary") or {}).get("total_count") or 0)
