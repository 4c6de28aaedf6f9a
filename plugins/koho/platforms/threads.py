"""Threads through the Threads API (graph.threads.net, ``/v1.0``).

Publishing is two steps like Instagram: ``POST /{threads-user-id}/threads`` (``media_type`` TEXT
or IMAGE, ``text`` up to 500 characters, ``reply_to_id`` for a follow-up in a thread,
``link_attachment`` for a link preview) makes a container; it is checked with
``GET /{container-id}?fields=status`` and published with ``POST /{threads-user-id}/threads_publish``
(``creation_id``). "Did it post?" is answered by the remembered container's status (PUBLISHED
means it landed), else by matching the text among own posts (``/threads``) or own replies
(``/replies``).

Limits per profile in a moving 24 h: 250 posts, 1,000 replies, 100 deletes
(:meth:`ThreadsHook.publishing_quota` reads the post quota). Deleting answers
``{"success": true, "deleted_id"}``.

Search: Threads has a keyword search for posts but no profile search. ``search_accounts`` looks
candidate usernames up with the Profile Discovery API (``GET /profile_lookup?username=``; the app
needs the ``threads_profile_discovery`` permission, and only public profiles are found).

Tokens: long-lived Threads tokens last 60 days and graph.threads.net has no ``debug_token``, so
the expiry comes from the connection extra ``token_expires_at``. ``GET /refresh_access_token``
would return a new token that must then be stored; the hook does not do that (see
:meth:`GraphHook.refresh_auth`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, ClassVar

from koho.platforms._graph import ContainerHook, PublishingQuota, candidate_usernames, epoch, is_video, stop_before
from koho.platforms.base import parse_time
from koho.platforms.errors import PermanentlyRejected, PlatformError
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

TEXT_MAX = 500
CAROUSEL_MAX = 20
POST_FIELDS = "id,text,timestamp,permalink"
DEFAULT_SUFFIXES = ("_official", ".official", "official", "_pr", "_jp")
METRIC_FIELDS = {
    "views": "impressions",
    "likes": "likes",
    "replies": "replies",
    "reposts": "reposts",
    "quotes": "quotes",
}


class ThreadsHook(ContainerHook):
    """A Threads profile (connection: password = Threads access token, extra account_id = Threads user id)."""

    platform = "threads"
    default_api_version = "v1.0"
    inspects_token = False
    capabilities = Capabilities(replies=True, image_required=False, idempotency_key=False)
    default_post_metrics: ClassVar[tuple[str, ...]] = ("views", "likes", "replies", "reposts", "quotes")

    status_field = "status"
    error_field = "error_message"
    container_edge = "threads"
    publish_edge = "threads_publish"

    # ------------------------------------------------------------------ identity

    def verify_credentials(self) -> AccountInfo:
        me = self.get_json("me", params={"fields": "id,username,name,threads_profile_picture_url"})
        username = me.get("username") or self.connection.login or str(me["id"])
        return AccountInfo(
            remote_id=str(me["id"]),
            handle=username,
            display_name=me.get("name"),
            url=f"https://www.threads.com/@{username}",
            token_expires_at=self.token_expires_at(),
        )

    # ------------------------------------------------------------------ publishing

    def check_publishable(self, post: OutgoingPost) -> None:
        if len(post.text) > TEXT_MAX:
            raise PermanentlyRejected(
                f"Threads text is at most {TEXT_MAX} characters, got {len(post.text)}",
                kind="too_long",
                platform=self.platform,
                account=self.account_label,
            )
        if not post.text and not post.image_urls:
            raise PermanentlyRejected(
                "a Threads post needs text or an image",
                kind="invalid",
                platform=self.platform,
                account=self.account_label,
            )
        if len(post.image_urls) > CAROUSEL_MAX:
            raise PermanentlyRejected(
                f"a Threads carousel holds at most {CAROUSEL_MAX} items",
                kind="bad_media",
                platform=self.platform,
                account=self.account_label,
            )

    def child_params(self, url: str) -> dict[str, Any]:
        return {"media_type": "VIDEO", "video_url": url} if is_video(url) else {"media_type": "IMAGE", "image_url": url}

    def container_params(self, post: OutgoingPost) -> dict[str, Any]:
        params: dict[str, Any] = {"text": post.text}
        if len(post.image_urls) == 1:
            params.update(self.child_params(post.image_urls[0]))
        elif not post.image_urls:
            params["media_type"] = "TEXT"
            if post.link and post.link not in post.text:
                params["link_attachment"] = post.link
        if post.reply_to:
            params["reply_to_id"] = post.reply_to
        return params

    def published_post(self, media_id: str) -> PublishedPost:
        try:
            remote = self.get_post(media_id)
        except PlatformError as exc:  # published; a missing permalink must not turn that into a failure
            self.log.warning("%s: published %s but could not read it back (%s)", self.platform, media_id, exc.reason)
            return PublishedPost(media_id, None)
        return PublishedPost(media_id, remote.url, remote.created_at)

    def recent_for(self, post: OutgoingPost, since: datetime) -> Iterable[RemotePost]:
        return self._list("replies" if post.reply_to else "threads", since, 100)

    def publishing_quota(self) -> PublishingQuota:
        """Posts published in the moving 24 h and the profile's quota (``threads_publishing_limit``)."""
        return self._quota("threads_publishing_limit")

    # ------------------------------------------------------------------ reading

    def _remote(self, row: dict) -> RemotePost:
        return RemotePost(str(row["id"]), row.get("text") or "", parse_time(row.get("timestamp")), row.get("permalink"))

    def get_post(self, remote_id: str) -> RemotePost:
        return self._remote(self.get_json(remote_id, params={"fields": POST_FIELDS}))

    def _list(self, edge: str, since: datetime, limit: int) -> list[RemotePost]:
        rows = self.paged(
            self.user_node, edge, params={"fields": POST_FIELDS, "since": epoch(since), "limit": min(limit, 100)}
        )
        return stop_before((self._remote(r) for r in rows), since, limit)

    def list_recent_posts(self, since: datetime, *, limit: int = 100) -> list[RemotePost]:
        """Own top-level posts (replies published by the account are on ``/replies``)."""
        return self._list("threads", since, limit)

    def post_metrics(self, remote_id: str) -> PostMetrics:
        counts: dict[str, int] = {}
        extra: dict[str, int] = {}
        for name, value in self._insights(remote_id, self.post_metric_names()).items():
            target = METRIC_FIELDS.get(name)
            if target:
                counts[target] = value
            else:
                extra[name] = value
        return PostMetrics(
            remote_id=remote_id,
            impressions=counts.get("impressions"),
            likes=counts.get("likes", 0),
            reposts=counts.get("reposts", 0),
            replies=counts.get("replies", 0),
            quotes=counts.get("quotes", 0),
            extra=extra,
        )

    def account_metrics(self) -> AccountMetrics:
        values = self._insights(self.user_node, ["followers_count", "views"], edge="threads_insights")
        return AccountMetrics(followers=values.get("followers_count"), views=values.get("views"))

    def _post_comments(self, post_id: str, after: datetime | None) -> Iterator[Comment]:
        rows = self.paged(
            post_id,
            "conversation",
            params={
                "fields": "id,text,timestamp,username,permalink,replied_to",
                "reverse": "true",
                "limit": 100,
            },
        )
        own = (self.connection.login or "").lstrip("@").lower()
        for row in rows:
            author = row.get("username") or "unknown"
            if author.lower() == own:
                continue
            yield Comment(
                remote_id=str(row["id"]),
                text=row.get("text") or "",
                author=author,
                created_at=parse_time(row.get("timestamp")),
                post_id=str((row.get("replied_to") or {}).get("id") or post_id),
                url=row.get("permalink"),
            )

    def search_accounts(self, query: str, *, limit: int = 20) -> list[AccountInfo]:
        """Profile Discovery look-ups of usernames derived from ``query`` (exact usernames only)."""
        suffixes = self._extra_list("search_suffixes", DEFAULT_SUFFIXES)
        found: list[AccountInfo] = []
        for username in candidate_usernames(query, suffixes)[: max(limit, 1) * 4]:
            try:
                hit = self.get_json(
                    "profile_lookup",
                    params={"username": username, "fields": "username,name,follower_count,is_verified"},
                )
            except PermanentlyRejected as exc:
                if exc.kind == "not_found":
                    continue
                raise
            name = hit.get("username") or username
            found.append(
                AccountInfo(
                    remote_id=name,
                    handle=name,
                    display_name=hit.get("name"),
                    followers=hit.get("follower_count"),
                    url=f"https://www.threads.com/@{name}",
                )
            )
            if len(found) >= limit:
                break
        return found
