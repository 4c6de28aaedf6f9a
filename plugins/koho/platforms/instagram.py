"""Instagram professional accounts through the Instagram Graph API (content publishing).

Publishing is two steps: ``POST /{ig-user-id}/media`` makes a container (``image_url`` +
``caption``; ``media_type=REELS`` + ``video_url`` for a video; a ``CAROUSEL`` of ``is_carousel_item``
children for several images), ``GET /{container-id}?fields=status_code`` is polled (bounded, with
the hook's sleep) until FINISHED, then ``POST /{ig-user-id}/media_publish`` (``creation_id``)
publishes it. An image or a video is required: a text-only post is refused before any call.
Caption limits (2,200 characters, 30 hashtags, 20 @mentions) are the API's to enforce; its
refusal (36004 / 2207010) comes back as ``PermanentlyRejected(kind="too_long")``.

"Did it post?": the container remembered for the idempotency key is asked for its status —
PUBLISHED means the publish landed, and the media is then found by its caption in
``GET /{ig-user-id}/media``; FINISHED means it did not, and the same container is published (a
container publishes at most once). Without a remembered container (the worker was killed) the
caption is matched in recent media.

Not available through this API: deleting media (``delete`` raises NotSupported; Koho's operators
turn that into a "delete by hand" task) and account search. ``search_accounts`` looks candidate
usernames up one by one with Business Discovery
(``GET /{ig-user-id}?fields=business_discovery.username(name){...}``), which only finds
Business and Creator accounts by exact username.

The default host is graph.facebook.com (Instagram API with Facebook Login): set the extra
``account_id`` to the IG user id, since ``/me`` there is the Facebook user. For Instagram Login
tokens set the host to https://graph.instagram.com (``/me`` is then the IG user);
``debug_token`` is unavailable there and the extra ``token_expires_at`` is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from koho.platforms._graph import ContainerHook, PublishingQuota, candidate_usernames, epoch, is_video, stop_before
from koho.platforms.base import parse_time
from koho.platforms.errors import NotSupported, PermanentlyRejected, PlatformError
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

MEDIA_FIELDS = "id,caption,timestamp,permalink"
CAROUSEL_MAX = 10
DISCOVERY_FIELDS = "id,username,name,followers_count,media_count"
DEFAULT_SUFFIXES = ("_official", ".official", "official", "_pr", "_jp")

#: Which PostMetrics field an insight metric fills; anything else lands in ``extra``.
METRIC_FIELDS = {
    "views": "impressions",
    "impressions": "impressions",
    "likes": "likes",
    "comments": "replies",
    "shares": "reposts",
}


class InstagramHook(ContainerHook):
    """An Instagram professional account (connection: password = access token, extra account_id = IG user id)."""

    platform = "instagram"
    capabilities = Capabilities(delete=False, replies=False, image_required=True, links=False, idempotency_key=False)
    default_post_metrics: ClassVar[tuple[str, ...]] = ("views", "reach", "saved", "shares")

    status_field = "status_code"
    error_field = "status"
    container_edge = "media"
    publish_edge = "media_publish"

    # ------------------------------------------------------------------ identity

    def verify_credentials(self) -> AccountInfo:
        me = self.get_json(self.user_node, params={"fields": "id,username,name,followers_count"})
        username = me.get("username") or self.connection.login or str(me["id"])
        return AccountInfo(
            remote_id=str(me["id"]),
            handle=username,
            display_name=me.get("name"),
            followers=me.get("followers_count"),
            url=f"https://www.instagram.com/{username}/",
            token_expires_at=self.token_expires_at(),
        )

    # ------------------------------------------------------------------ publishing

    def caption_for(self, post: OutgoingPost) -> str:
        """Links are not clickable in captions; one is still appended so that readers can copy it."""
        return self.text_with_link(post, "\n\n")

    def check_publishable(self, post: OutgoingPost) -> None:
        if not post.image_urls:
            raise PermanentlyRejected(
                "Instagram publishes only with an image or a video; this post has none",
                kind="bad_media",
                platform=self.platform,
                account=self.account_label,
            )
        if len(post.image_urls) > CAROUSEL_MAX:
            raise PermanentlyRejected(
                f"an Instagram carousel holds at most {CAROUSEL_MAX} items, got {len(post.image_urls)}",
                kind="bad_media",
                platform=self.platform,
                account=self.account_label,
            )
        if post.reply_to:
            raise self._unsupported("publish a reply post")

    def child_params(self, url: str) -> dict[str, Any]:
        return {"media_type": "VIDEO", "video_url": url} if is_video(url) else {"image_url": url}

    def container_params(self, post: OutgoingPost) -> dict[str, Any]:
        params: dict[str, Any] = {"caption": self.caption_for(post)}
        if len(post.image_urls) == 1:
            url = post.image_urls[0]
            params.update({"media_type": "REELS", "video_url": url} if is_video(url) else {"image_url": url})
        return params

    def published_post(self, media_id: str) -> PublishedPost:
        try:
            remote = self.get_post(media_id)
        except PlatformError as exc:  # published; a missing permalink must not turn that into a failure
            self.log.warning("%s: published %s but could not read it back (%s)", self.platform, media_id, exc.reason)
            return PublishedPost(media_id, None)
        return PublishedPost(media_id, remote.url, remote.created_at)

    def publishing_quota(self) -> PublishingQuota:
        """Posts published in the moving window and the account's quota (``content_publishing_limit``)."""
        return self._quota("content_publishing_limit")

    def delete(self, remote_id: str) -> None:
        raise NotSupported(
            "Instagram's API cannot delete published media; delete it by hand in the Instagram app",
            platform=self.platform,
            account=self.account_label,
        )

    # ------------------------------------------------------------------ reading

    def _remote(self, row: dict) -> RemotePost:
        return RemotePost(
            str(row["id"]), row.get("caption") or "", parse_time(row.get("timestamp")), row.get("permalink")
        )

    def get_post(self, remote_id: str) -> RemotePost:
        return self._remote(self.get_json(remote_id, params={"fields": MEDIA_FIELDS}))

    def list_recent_posts(self, since: datetime, *, limit: int = 100) -> list[RemotePost]:
        rows = self.paged(
            self.user_node, "media", params={"fields": MEDIA_FIELDS, "since": epoch(since), "limit": min(limit, 100)}
        )
        return stop_before((self._remote(r) for r in rows), since, limit)

    def post_metrics(self, remote_id: str) -> PostMetrics:
        """Like and comment counts from the media; views, shares and the rest from its insights."""
        fields = self.get_json(remote_id, params={"fields": "like_count,comments_count"})
        counts = {"likes": int(fields.get("like_count") or 0), "replies": int(fields.get("comments_count") or 0)}
        extra: dict[str, int] = {}
        for name, value in self._insights(remote_id, self.post_metric_names()).items():
            target = METRIC_FIELDS.get(name)
            if target in ("impressions", "reposts"):
                counts.setdefault(target, value)
            elif target is None:
                extra[name] = value
        return PostMetrics(
            remote_id=remote_id,
            impressions=counts.get("impressions"),
            likes=counts["likes"],
            reposts=counts.get("reposts", 0),
            replies=counts["replies"],
            quotes=0,
            extra=extra,
        )

    def account_metrics(self) -> AccountMetrics:
        me = self.get_json(self.user_node, params={"fields": "followers_count,media_count"})
        return AccountMetrics(followers=me.get("followers_count"), posts=me.get("media_count"))

    def _post_comments(self, post_id: str, after: datetime | None) -> Iterator[Comment]:
        rows = self.paged(post_id, "comments", params={"fields": "id,text,timestamp,username,from", "limit": 50})
        own = (self.connection.login or "").lstrip("@").lower()
        for row in rows:
            author = row.get("username") or (row.get("from") or {}).get("username") or "unknown"
            if author.lower() == own or str((row.get("from") or {}).get("id")) == self.user_node:
                continue
            yield Comment(
                remote_id=str(row["id"]),
                text=row.get("text") or "",
                author=author,
                created_at=parse_time(row.get("timestamp")),
                post_id=post_id,
            )

    def search_accounts(self, query: str, *, limit: int = 20) -> list[AccountInfo]:
        """Business Discovery look-ups of usernames derived from ``query`` (exact usernames only).

        Instagram's API has no account search. Each candidate (``query`` as a username, with
        ``_``/``.``/nothing between words, then with the extra ``search_suffixes``) costs one call;
        unknown usernames are skipped. Japanese queries yield no candidates: search by handle.
        """
        suffixes = self._extra_list("search_suffixes", DEFAULT_SUFFIXES)
        found: list[AccountInfo] = []
        for username in candidate_usernames(query, suffixes)[: max(limit, 1) * 4]:
            spec = f"business_discovery.username({username}){{{DISCOVERY_FIELDS}}}"
            try:
                body = self.get_json(self.user_node, params={"fields": spec})
            except PermanentlyRejected as exc:
                if exc.kind in ("not_found", "invalid"):
                    continue
                raise
            hit = body.get("business_discovery") or {}
            if not hit:
                continue
            name = hit.get("username") or username
            found.append(
                AccountInfo(
                    remote_id=str(hit.get("id") or name),
                    handle=name,
                    display_name=hit.get("name"),
                    followers=hit.get("followers_count"),
                    url=f"https://www.instagram.com/{name}/",
                )
            )
            if len(found) >= limit:
                break
        return found
