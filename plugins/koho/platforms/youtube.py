"""YouTube Data API v3, read side: channel statistics, uploads, video metrics, comments, search.

Koho does not upload to YouTube (videos are made and uploaded by staff in YouTube Studio); it
reads the city's channel for the usefulness review, the feedback digest and the look-alike scan.
Hence ``publish``/``delete`` raise :class:`NotSupported` and the capabilities say so.

What the API is like, and why the code is shaped the way it is:

* Authentication is an OAuth access token (connection password) or an API key (extra
  ``api_key``). The key is sent as ``X-Goog-Api-Key`` rather than ``key=`` so it never appears in
  URLs, which end up in exception chains and proxy logs. Google access tokens live one hour, so
  the hook refreshes them with the extras ``refresh_token``, ``client_id``, ``client_secret``
  (and ``token_uri``, default Google's) when the API answers 401.
* Every request costs quota, not requests: 10,000 units a day for the list methods (1 unit each)
  and a separate, small bucket for ``search.list`` (100 calls a day by default; older docs priced
  it at 100 of the 10,000 units). The daily quota resets at midnight Pacific time and YouTube
  sends no rate-limit headers, so on ``quotaExceeded`` the hook computes that reset itself and
  remembers it: later calls in the same bucket fail fast instead of spending more requests.
  ``quota_units`` counts what this hook instance has spent.
* Statistics are JSON strings; ``subscriberCount`` is absent when the channel hides it and is
  rounded to three significant figures otherwise.
* YouTube has no impressions in the Data API: a video's views stand in for reach
  (``PostMetrics.impressions``) and are also given as ``extra["views"]``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import requests

from koho import secrets
from koho.platforms.base import PlatformHook, RateLimitInfo, _retry_after, parse_time
from koho.platforms.errors import (
    AuthExpired,
    PermanentlyRejected,
    PlatformError,
    RateLimited,
    TransientError,
)
from koho.platforms.types import (
    AccountInfo,
    AccountMetrics,
    Capabilities,
    Comment,
    CommentPage,
    OutgoingPost,
    PostMetrics,
    PublishedPost,
    RemotePost,
)

API = "/youtube/v3"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
PACIFIC = ZoneInfo("America/Los_Angeles")

#: Reasons that mean the daily quota is spent (reset at midnight Pacific time).
DAILY_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded", "dailyLimitExceededUnreg"})
#: Reasons that mean "too fast": a short back-off is enough.
SHORT_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})
AUTH_REASONS = frozenset({"authError", "keyInvalid", "keyExpired", "API_KEY_INVALID", "required"})
SERVER_REASONS = frozenset({"backendError", "internalError", "serviceUnavailable"})

PAGE_SIZE = 50  # maxResults ceiling of channels, playlistItems, videos and search
COMMENT_PAGE_SIZE = 100  # commentThreads allows 100
_TAGS = re.compile(r"<[^>]+>")


def next_pacific_midnight(now: datetime | None = None) -> datetime:
    """When YouTube's daily quota resets: the next midnight in America/Los_Angeles, as UTC."""
    now = (now or datetime.now(UTC)).astimezone(PACIFIC)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=PACIFIC)
    return midnight.astimezone(UTC)


def _int(value: Any) -> int | None:
    """Statistics come as strings (``"1234"``); missing ones (hidden counts) are ``None``."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class _CommentCursor:
    """Where ``comments_since`` stopped: the newest ``publishedAt`` seen and the ids at that instant.

    ``commentThreads`` (order=time) lists newest first with second-precision times, and comment
    ids carry no order, so "newer" means a later time, or the same second with an unseen id.
    Serialized as ``<iso time>|<id>,<id>``: opaque to callers.
    """

    def __init__(self, at: datetime | None = None, ids: Iterable[str] = ()) -> None:
        self.at = at
        self.ids = set(ids)

    @classmethod
    def parse(cls, cursor: str | None) -> _CommentCursor:
        if not cursor:
            return cls()
        when, _, ids = cursor.partition("|")
        return cls(parse_time(when), [i for i in ids.split(",") if i])

    def is_new(self, comment: Comment) -> bool:
        if self.at is None or comment.created_at is None:
            return True
        return comment.created_at > self.at or (comment.created_at == self.at and comment.remote_id not in self.ids)

    def is_older(self, comment: Comment) -> bool:
        return self.at is not None and comment.created_at is not None and comment.created_at < self.at

    def advance(self, comments: Iterable[Comment]) -> _CommentCursor:
        at, ids = self.at, set(self.ids)
        for comment in comments:
            if comment.created_at is None:
                continue
            if at is None or comment.created_at > at:
                at, ids = comment.created_at, {comment.remote_id}
            elif comment.created_at == at:
                ids.add(comment.remote_id)
        return _CommentCursor(at, ids)

    def __str__(self) -> str:
        if self.at is None:
            return ""
        return f"{self.at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}|{','.join(sorted(self.ids))}"


class YouTubeHook(PlatformHook):
    """Read a city's YouTube channel through the Data API v3."""

    conn_type = "koho_youtube"
    hook_name = "Koho: YouTube"
    platform = "youtube"
    display_name = "YouTube"
    default_host = "https://www.googleapis.com"
    capabilities = Capabilities(
        publish=False,
        delete=False,
        replies=False,
        images=False,
        links=False,
        comments=True,
        search_accounts=True,
        idempotency_key=False,
    )
    extra_fields: ClassVar[dict[str, tuple[str, str]]] = {
        "account_id": ("Channel ID", "The channel id (UC...). Asked from the API (mine=true) when empty."),
        "api_key": ("API key", "Optional Google API key for public reads when no OAuth token is set."),
        "refresh_token": ("OAuth refresh token", "Renews the one-hour access token automatically."),
        "client_id": ("OAuth client id", "The Google Cloud OAuth client the refresh token belongs to."),
        "client_secret": ("OAuth client secret", "Secret of that OAuth client."),
        "token_uri": ("Token endpoint", f"Where tokens are refreshed; default {GOOGLE_TOKEN_URI}."),
        "token_expires_at": ("Token expires at", "ISO 8601 time the access token expires, if known."),
    }
    secret_extra_fields = frozenset({"api_key", "refresh_token", "client_secret"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._access_token: str | None = None
        self._access_expires_at: datetime | None = None
        self._channel: dict[str, Any] | None = None
        #: Quota spent by this hook per bucket ("quota" units, "search" calls); failed calls count too.
        self.quota_units: Counter[str] = Counter()

    # ----------------------------------------------------------------- auth

    @property
    def token(self) -> str:
        return self._access_token or self.connection.password or ""

    @property
    def api_key(self) -> str:
        return str(self.extras.get("api_key") or "")

    def auth_headers(self) -> dict[str, str]:
        """OAuth when there is a token; otherwise the API key (sending both fails across projects)."""
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.api_key:
            return {"X-Goog-Api-Key": self.api_key}
        return {}

    def refresh_auth(self) -> bool:
        """Get a new access token with the refresh token; ``False`` when not configured or refused."""
        refresh_token = self.extras.get("refresh_token")
        client_id = self.extras.get("client_id")
        if not refresh_token or not client_id:
            return False
        session = self.get_conn()
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            "client_secret": self.extras.get("client_secret") or "",
        }
        try:
            response = session.post(
                self.extras.get("token_uri") or GOOGLE_TOKEN_URI,
                data=form,
                headers={"Authorization": None, "X-Goog-Api-Key": None},  # type: ignore[dict-item]
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            self.log.warning("youtube: could not reach the token endpoint (%s)", type(exc).__name__)
            return False
        if response.status_code != 200:
            error = _oauth_error_name(response)
            self.log.warning("youtube: token refresh refused for %s (%s)", self.account_label, error)
            return False
        payload = response.json()
        access = str(payload.get("access_token") or "")
        if not access:
            return False
        secrets.register(access)
        self._access_token = access
        if payload.get("expires_in"):
            self._access_expires_at = datetime.now(UTC) + timedelta(seconds=int(payload["expires_in"]))
        session.headers.pop("X-Goog-Api-Key", None)
        session.headers["Authorization"] = f"Bearer {access}"
        self.log.info("youtube: access token for %s renewed", self.account_label)
        return True

    # ----------------------------------------------------------------- exchange and taxonomy

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        self.quota_units[self.rate_bucket(method, path)] += 1
        return super().request(method, path, **kwargs)

    def rate_bucket(self, method: str, path: str) -> str:
        """``search.list`` draws on its own daily bucket; everything else on the shared units."""
        return "search" if path.rstrip("/").endswith("/search") else "quota"

    def parse_rate_limit(self, response: requests.Response) -> RateLimitInfo | None:
        """YouTube sends no rate-limit headers; a spent daily quota is known until Pacific midnight."""
        if response.status_code < 400:
            return None
        _, reasons = _error_body(response)
        if reasons & DAILY_QUOTA_REASONS:
            return RateLimitInfo(limit=None, remaining=0, reset_at=next_pacific_midnight())
        return None

    def classify_error(self, response: requests.Response) -> PlatformError:
        error, reasons = _error_body(response)
        if not error:
            return super().classify_error(response)
        status = response.status_code
        message = secrets.redact(_TAGS.sub("", str(error.get("message") or "")).strip()) or f"HTTP {status}"
        code = sorted(reasons)[0] if reasons else None
        kw: dict[str, Any] = {"platform": self.platform, "account": self.account_label, "status": status, "code": code}
        if reasons & DAILY_QUOTA_REASONS:
            reset = next_pacific_midnight()
            return RateLimited(f"daily quota spent until {reset.isoformat()}: {message}", reset_at=reset, **kw)
        if reasons & SHORT_LIMIT_REASONS or status == 429:
            return RateLimited(message, reset_at=_retry_after(response), **kw)
        if status == 401 or reasons & AUTH_REASONS or _api_key_invalid(error):
            return AuthExpired(message, **kw)
        if status >= 500 or reasons & SERVER_REASONS:
            return TransientError(message, **kw)
        if status == 404 or any(r.endswith("NotFound") for r in reasons):
            return PermanentlyRejected(message, kind="not_found", **kw)
        if status == 403:
            return PermanentlyRejected(message, kind="forbidden", **kw)
        return PermanentlyRejected(message, kind="invalid", **kw)

    def _get(self, resource: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.call("GET", f"{API}/{resource}", params=params).json()

    def _pages(self, resource: str, params: dict[str, Any], *, max_pages: int | None = None) -> Iterator[dict]:
        """Each page of a list method, following ``nextPageToken`` (1 unit per page)."""
        params = dict(params)
        pages = 0
        while True:
            page = self._get(resource, params)
            pages += 1
            yield page
            token = page.get("nextPageToken")
            if not token or (max_pages is not None and pages >= max_pages):
                return
            params["pageToken"] = token

    # ----------------------------------------------------------------- channel

    def _channel_filter(self) -> dict[str, str]:
        if self.extras.get("account_id"):
            return {"id": str(self.extras["account_id"])}
        if self.token:
            return {"mine": "true"}
        raise PermanentlyRejected(
            "an API key alone cannot say which channel is ours: set the connection extra 'account_id'",
            kind="invalid",
            platform=self.platform,
            account=self.account_label,
        )

    def _fetch_channel(self, filters: dict[str, str]) -> dict[str, Any]:
        data = self._get("channels", {"part": "snippet,statistics,contentDetails", **filters})
        items = data.get("items") or []
        if not items:
            where = (
                "the token's Google account has no YouTube channel"
                if "mine" in filters
                else (f"channel {filters.get('id')} does not exist")
            )
            raise PermanentlyRejected(where, kind="not_found", platform=self.platform, account=self.account_label)
        return items[0]

    def channel(self, *, refresh: bool = False) -> dict[str, Any]:
        """The connection's channel resource (snippet, statistics, contentDetails), fetched once."""
        if self._channel is None or refresh:
            self._channel = self._fetch_channel(self._channel_filter())
        return self._channel

    @property
    def channel_id(self) -> str:
        return str(self.extras.get("account_id") or self.channel()["id"])

    def _uploads_playlist(self) -> str:
        return self.channel()["contentDetails"]["relatedPlaylists"]["uploads"]

    def verify_credentials(self) -> AccountInfo:
        """Who the credentials reach: ``mine=true`` with OAuth (and it must be the configured channel)."""
        configured = self.extras.get("account_id")
        channel = self._fetch_channel({"mine": "true"} if self.token else self._channel_filter())
        if configured and channel["id"] != configured:
            raise PermanentlyRejected(
                f"the token belongs to channel {channel['id']}, not to the configured {configured}",
                kind="forbidden",
                platform=self.platform,
                account=self.account_label,
            )
        self._channel = channel
        info = _account_info(channel)
        expires = self._access_expires_at or parse_time(self.extras.get("token_expires_at"))
        return AccountInfo(
            info.remote_id, info.handle, info.display_name, info.followers, info.url, token_expires_at=expires
        )

    def account_metrics(self) -> AccountMetrics:
        stats = self.channel(refresh=True).get("statistics", {})
        followers = None if stats.get("hiddenSubscriberCount") else _int(stats.get("subscriberCount"))
        return AccountMetrics(
            followers=followers, posts=_int(stats.get("videoCount")), views=_int(stats.get("viewCount"))
        )

    # ----------------------------------------------------------------- videos

    def publish(self, post: OutgoingPost, *, idempotency_key: str) -> PublishedPost:
        """Koho reads YouTube only; uploads are done by staff in YouTube Studio."""
        raise self._unsupported("publish (Koho uses YouTube read-only)")

    def delete(self, remote_id: str) -> None:
        raise self._unsupported("delete videos (Koho uses YouTube read-only)")

    def list_recent_posts(self, since: datetime, *, limit: int = 100) -> list[RemotePost]:
        """The channel's videos published at or after ``since``, newest first, from its uploads playlist.

        The uploads playlist lists newest first; reading stops after the first page that holds
        nothing newer than ``since`` (one page of slack for scheduled premieres out of order).
        """
        params = {"part": "snippet,contentDetails", "playlistId": self._uploads_playlist(), "maxResults": PAGE_SIZE}
        posts: list[RemotePost] = []
        for page in self._pages("playlistItems", params):
            newer = 0
            for item in page.get("items") or []:
                post = _playlist_post(item)
                if post is None or post.created_at is None or post.created_at < since:
                    continue
                newer += 1
                posts.append(post)
            if not newer or len(posts) >= limit:
                break
        posts.sort(key=lambda p: p.created_at or since, reverse=True)
        return posts[:limit]

    def _videos(self, ids: list[str], part: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), PAGE_SIZE):
            chunk = ids[start : start + PAGE_SIZE]
            data = self._get("videos", {"part": part, "id": ",".join(chunk), "maxResults": len(chunk)})
            found.update({item["id"]: item for item in data.get("items") or []})
        return found

    def _not_found(self, remote_id: str) -> PermanentlyRejected:
        return PermanentlyRejected(
            f"video {remote_id} not found (deleted or private)",
            kind="not_found",
            platform=self.platform,
            account=self.account_label,
            status=404,
        )

    def get_post(self, remote_id: str) -> RemotePost:
        item = self._videos([remote_id], "snippet").get(remote_id)
        if item is None:
            raise self._not_found(remote_id)
        snippet = item.get("snippet", {})
        published = parse_time(snippet.get("publishedAt"))
        return RemotePost(remote_id, _video_text(snippet), published, _watch_url(remote_id))

    def post_metrics(self, remote_id: str) -> PostMetrics:
        metrics = self.post_metrics_many([remote_id])
        if remote_id not in metrics:
            raise self._not_found(remote_id)
        return metrics[remote_id]

    def post_metrics_many(self, remote_ids: Iterable[str]) -> dict[str, PostMetrics]:
        """Metrics of many videos at 1 quota unit per 50; missing (deleted, private) ones are left out."""
        ids = list(dict.fromkeys(remote_ids))
        out: dict[str, PostMetrics] = {}
        for video_id, item in self._videos(ids, "statistics").items():
            stats = item.get("statistics", {})
            views = _int(stats.get("viewCount"))
            extra = {"views": views} if views is not None else {}
            out[video_id] = PostMetrics(
                remote_id=video_id,
                impressions=views,
                likes=_int(stats.get("likeCount")) or 0,
                replies=_int(stats.get("commentCount")) or 0,
                extra=extra,
            )
        return out

    # ----------------------------------------------------------------- comments and search

    def comments_since(
        self, cursor: str | None = None, *, post_ids: Iterable[str] = (), max_pages: int = 20
    ) -> CommentPage:
        """Residents' top-level comments newer than ``cursor``, oldest first.

        Without ``post_ids`` the whole channel is read (``allThreadsRelatedToChannelId``); with
        them, each video's threads. A video that is gone or has comments disabled is skipped
        with a log line rather than failing the others. ``max_pages`` bounds the first read
        (``cursor=None``) of a busy channel. A cursor belongs to one ``post_ids`` selection:
        keep one per selection.
        """
        after = _CommentCursor.parse(cursor)
        ids = list(dict.fromkeys(post_ids))
        filters = [{"videoId": v} for v in ids] or [{"allThreadsRelatedToChannelId": self.channel_id}]
        found: dict[str, Comment] = {}
        for extra in filters:
            try:
                self._collect_comments(extra, after, found, max_pages)
            except PermanentlyRejected as exc:
                if not ids or exc.kind not in ("not_found", "forbidden"):
                    raise
                self.log.info("youtube: skipping comments of video %s (%s)", extra.get("videoId"), exc.reason)
        comments = sorted(found.values(), key=lambda c: c.created_at or datetime.min.replace(tzinfo=UTC))
        return CommentPage(comments=comments, cursor=str(after.advance(comments)) or cursor)

    def _collect_comments(
        self, filters: dict[str, str], after: _CommentCursor, found: dict[str, Comment], max_pages: int
    ) -> None:
        params = {
            "part": "snippet",
            "order": "time",
            "textFormat": "plainText",
            "maxResults": COMMENT_PAGE_SIZE,
            **filters,
        }
        for page in self._pages("commentThreads", params, max_pages=max_pages):
            reached_old = False
            for thread in page.get("items") or []:
                comment = _thread_comment(thread)
                if after.is_older(comment):
                    reached_old = True
                    break
                if after.is_new(comment):
                    found[comment.remote_id] = comment
            if reached_old:
                return

    def search_accounts(self, query: str, *, limit: int = 20) -> list[AccountInfo]:
        """Channels matching ``query`` (look-alike scan), with their subscriber counts.

        Quota: ``search.list`` spends the small search bucket (100 calls a day by default; on
        older projects 100 of the 10,000 daily units), plus 1 unit for the ``channels.list``
        that fills in handles and subscribers. Run it from the periodic scan, never per post.
        """
        data = self._get(
            "search", {"part": "snippet", "type": "channel", "q": query, "maxResults": max(1, min(limit, PAGE_SIZE))}
        )
        ids = [item["id"]["channelId"] for item in data.get("items") or [] if item.get("id", {}).get("channelId")]
        if not ids:
            return []
        details = self._get("channels", {"part": "snippet,statistics", "id": ",".join(ids), "maxResults": len(ids)})
        by_id = {item["id"]: item for item in details.get("items") or []}
        return [_account_info(by_id[i]) for i in ids if i in by_id][:limit]


# ----------------------------------------------------------------------------- parsing helpers


def _error_body(response: requests.Response) -> tuple[dict[str, Any], set[str]]:
    """Google's ``{"error": {...}}`` and the set of ``reason`` values in it (empty when not JSON)."""
    try:
        payload = response.json()
    except ValueError:
        return {}, set()
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return {}, set()
    reasons = {str(e.get("reason")) for e in error.get("errors") or [] if isinstance(e, dict) and e.get("reason")}
    return error, reasons


def _api_key_invalid(error: dict[str, Any]) -> bool:
    details = error.get("details") or []
    if any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details):
        return True
    return "API key not valid" in str(error.get("message") or "")


def _oauth_error_name(response: requests.Response) -> str:
    try:
        return str(response.json().get("error") or f"HTTP {response.status_code}")
    except ValueError:
        return f"HTTP {response.status_code}"


def _watch_url(video_id: str) -> str:
    return f"https://www.youtube.com/watch?v={video_id}"


def _video_text(snippet: dict[str, Any]) -> str:
    title = str(snippet.get("title") or "")
    description = str(snippet.get("description") or "")
    return f"{title}\n{description}".strip()


def _playlist_post(item: dict[str, Any]) -> RemotePost | None:
    snippet = item.get("snippet", {})
    details = item.get("contentDetails", {})
    video_id = details.get("videoId") or snippet.get("resourceId", {}).get("videoId")
    published = details.get("videoPublishedAt")  # absent for private or deleted videos
    if not video_id or not published:
        return None
    return RemotePost(video_id, _video_text(snippet), parse_time(published), _watch_url(video_id))


def _thread_comment(thread: dict[str, Any]) -> Comment:
    top = thread.get("snippet", {}).get("topLevelComment", {})
    snippet = top.get("snippet", {})
    comment_id = str(top.get("id") or thread.get("id"))
    video_id = snippet.get("videoId") or thread.get("snippet", {}).get("videoId")
    text = snippet.get("textDisplay")
    if text is None:
        text = snippet.get("textOriginal", "")
    return Comment(
        remote_id=comment_id,
        text=str(text),
        author=str(snippet.get("authorDisplayName") or ""),
        created_at=parse_time(snippet.get("publishedAt")),
        post_id=video_id,
        url=f"{_watch_url(video_id)}&lc={comment_id}" if video_id else None,
    )


def _account_info(channel: dict[str, Any]) -> AccountInfo:
    snippet = channel.get("snippet", {})
    stats = channel.get("statistics", {})
    custom = str(snippet.get("customUrl") or "")
    followers = None if stats.get("hiddenSubscriberCount") else _int(stats.get("subscriberCount"))
    url = (
        f"https://www.youtube.com/{custom}"
        if custom.startswith("@")
        else (f"https://www.youtube.com/channel/{channel['id']}")
    )
    return AccountInfo(
        remote_id=channel["id"],
        handle=custom.lstrip("@") or channel["id"],
        display_name=snippet.get("title"),
        followers=followers,
        url=url,
    )
