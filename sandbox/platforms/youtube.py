"""YouTube Data API v3, read side, as the sandbox serves it.

Koho only *reads* YouTube (a city's videos are uploaded by hand in YouTube Studio), so this
router serves the list methods Koho uses: ``channels``, ``playlistItems``, ``videos``,
``commentThreads`` and ``search``, under the real paths (``/youtube/v3/...``; mounted at
``/youtube``, so the hook's base URL is ``http://127.0.0.1:PORT/youtube``), plus the OAuth
``token`` endpoint (real host ``https://oauth2.googleapis.com/token``) so that access-token
refresh can be exercised.

Faithful points that the hook depends on:

* statistics are JSON *strings* (``"viewCount": "1234"``) and ``subscriberCount`` is rounded
  to three significant figures, omitted when ``hiddenSubscriberCount`` is true;
* paging by opaque ``nextPageToken``/``prevPageToken``; ``maxResults`` up to 50 (100 for
  ``commentThreads``); an unknown id simply yields no item (``videos``) or no ``items`` key at
  all (``channels``), while an unknown ``videoId``/``playlistId`` filter is a 404;
* errors are Google's JSON error shape ``{"error": {"code", "message", "errors": [{"message",
  "domain", "reason"}], "status"}}`` with the real reasons (``quotaExceeded``,
  ``rateLimitExceeded``, ``authError``, ``videoNotFound`` ...). YouTube sends no rate-limit
  headers, so none are added.
* authentication by OAuth bearer token (the channel's own token, or one issued by the token
  endpoint) or by API key (``key`` query parameter or ``X-Goog-Api-Key`` header; the key is
  ``Account.extra["api_key"]``). ``mine=true`` needs OAuth.

Quota: every request, even an invalid one, costs units from a daily counter per account (the
real quota is per Google Cloud project; one project per channel is how Koho is deployed).
``quota`` holds 10,000 units a day for the list methods (1 unit each); ``search.list`` has its
own bucket of 100 calls a day (the current "Quota costs" page; it used to cost 100 units of the
shared 10,000, which also allowed 100 searches a day). Both are ordinary rate-limit buckets,
so the admin API can shrink them. The sandbox's day starts at an account's first request rather
than at midnight Pacific time; the hook computes the real reset itself because YouTube never
announces it.

Videos are :class:`sandbox.state.Post` objects in ``state.posts["youtube"]``: seed them with
:func:`add_video` (the demo and the tests do).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.common import SandboxError, bearer_token, gate, lost_response, state_of, sub_app
from sandbox.state import Account, Post, SandboxState, utcnow

PREFIX = "/youtube"
PLATFORM = "youtube"
API = "/youtube/v3"

QUOTA_BUCKET = "quota"
SEARCH_BUCKET = "search"
DAILY_UNITS = 10_000
DAILY_SEARCHES = 100
DAY_SECONDS = 86_400
TOKEN_LIFETIME = 3599  # seconds, as Google's token endpoint answers
SCOPE = "https://www.googleapis.com/auth/youtube.readonly"

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
QUOTA_MESSAGE = (
    "The request cannot be completed because you have exceeded your "
    '<a href="/youtube/v3/getting-started#quota">quota</a>.'
)
INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


@dataclass
class YouTubeError(SandboxError):
    """A :class:`SandboxError` that knows the Google error ``reason`` and ``domain`` to render."""

    reason: str = "badRequest"
    domain: str = "global"
    location: str | None = None
    location_type: str | None = None
    detail: str | None = None  # errors[0].message when it differs from the top-level message


def _credentials_error(kind: str) -> YouTubeError:
    """What Google answers for an unknown, expired or revoked access token."""
    return YouTubeError(
        kind,
        401,
        INVALID_CREDENTIALS,
        reason="authError",
        location="Authorization",
        location_type="header",
        detail="Invalid Credentials",
    )


# ----------------------------------------------------------------------------- seeding helpers


def channel_id_for(seed: str) -> str:
    """A stable, real-looking channel id (``UC`` + 22 URL-safe characters) derived from ``seed``."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()
    return "UC" + digest[:22]


def uploads_playlist_id(channel_id: str) -> str:
    """YouTube's uploads playlist of a channel: ``UU`` + the channel id without its ``UC``."""
    return "UU" + (channel_id[2:] if channel_id.startswith("UC") else channel_id)


def _video_id(serial: str) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(f"video:{serial}".encode()).digest()).decode()
    return digest[:11]


def add_video(
    state: SandboxState,
    account_id: str,
    title: str,
    *,
    description: str = "",
    published_at: datetime | None = None,
    views: int = 0,
    likes: int = 0,
    comments: int = 0,
    tags: tuple[str, ...] = (),
    video_id: str | None = None,
) -> Post:
    """Put a public video on a channel; returns the Post (``post_id`` is the 11-character video id).

    ``comments`` is the count of comments not materialised as ``state.comments`` (the API's
    ``commentCount`` adds the materialised ones).
    """
    post = Post(
        platform=PLATFORM,
        post_id=video_id or _video_id(state.next_id()),
        account_id=account_id,
        text=title,
        created_at=published_at or utcnow(),
        metrics={"impressions": views, "views": views, "likes": likes, "replies": comments},
        extra={"title": title, "description": description, "tags": list(tags)},
    )
    return state.add_post(post)


# ----------------------------------------------------------------------------- rendering


def _ts(value: datetime) -> str:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _etag(*parts: Any) -> str:
    digest = hashlib.sha1("|".join(map(str, parts)).encode()).digest()  # noqa: S324 - an etag, not security
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _thumbnails(key: str) -> dict[str, dict[str, Any]]:
    base = f"https://i.ytimg.com/vi/{key}"
    return {
        "default": {"url": f"{base}/default.jpg", "width": 120, "height": 90},
        "medium": {"url": f"{base}/mqdefault.jpg", "width": 320, "height": 180},
        "high": {"url": f"{base}/hqdefault.jpg", "width": 480, "height": 360},
    }


def _three_significant(value: int) -> int:
    """Public subscriber counts are abbreviated to three significant figures (since 2019)."""
    if value < 1000:
        return value
    digits = len(str(value)) - 3
    return (value // 10**digits) * 10**digits


def _title_and_description(post: Post) -> tuple[str, str]:
    title = post.extra.get("title")
    if title is None:
        title, _, rest = post.text.partition("\n")
        return title, post.extra.get("description", rest.strip())
    return title, post.extra.get("description", "")


def _comment_count(state: SandboxState, post: Post) -> int:
    materialised = sum(1 for c in state.comments.get(PLATFORM, []) if c.post_id == post.post_id)
    return int(post.metrics.get("replies", 0)) + materialised


def _channel_resource(state: SandboxState, account: Account, parts: set[str]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": "youtube#channel",
        "etag": _etag(account.account_id, account.followers),
        "id": account.account_id,
    }
    title = account.display_name or account.handle
    if "snippet" in parts:
        item["snippet"] = {
            "title": title,
            "description": account.extra.get("description", ""),
            "customUrl": "@" + account.handle.lstrip("@").lower(),
            "publishedAt": account.extra.get("published_at", "2015-04-01T00:00:00Z"),
            "thumbnails": _thumbnails(account.account_id),
            "localized": {"title": title, "description": account.extra.get("description", "")},
            "country": account.extra.get("country", "JP"),
        }
    if "contentDetails" in parts:
        item["contentDetails"] = {"relatedPlaylists": {"likes": "", "uploads": uploads_playlist_id(account.account_id)}}
    if "statistics" in parts:
        videos = state.account_posts(PLATFORM, account.account_id)
        views = sum(int(p.metrics.get("views", p.metrics.get("impressions", 0))) for p in videos)
        stats: dict[str, Any] = {"viewCount": str(views)}
        hidden = bool(account.extra.get("hidden_subscriber_count"))
        if not hidden:
            stats["subscriberCount"] = str(_three_significant(account.followers))
        stats["hiddenSubscriberCount"] = hidden
        stats["videoCount"] = str(len(videos))
        item["statistics"] = stats
    return item


def _video_resource(state: SandboxState, post: Post, parts: set[str]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": "youtube#video",
        "etag": _etag(post.post_id, sorted(post.metrics.items())),
        "id": post.post_id,
    }
    title, description = _title_and_description(post)
    if "snippet" in parts:
        account = state.account(PLATFORM, post.account_id)
        item["snippet"] = {
            "publishedAt": _ts(post.created_at),
            "channelId": post.account_id,
            "title": title,
            "description": description,
            "thumbnails": _thumbnails(post.post_id),
            "channelTitle": (account.display_name or account.handle) if account else "",
            "tags": list(post.extra.get("tags", [])),
            "categoryId": "25",  # News & Politics, what city halls use
            "liveBroadcastContent": "none",
            "defaultLanguage": "ja",
            "localized": {"title": title, "description": description},
            "defaultAudioLanguage": "ja",
        }
    if "contentDetails" in parts:
        item["contentDetails"] = {
            "duration": post.extra.get("duration", "PT1M30S"),
            "dimension": "2d",
            "definition": "hd",
            "caption": "false",
            "licensedContent": False,
            "contentRating": {},
            "projection": "rectangular",
        }
    if "statistics" in parts:
        item["statistics"] = {
            "viewCount": str(int(post.metrics.get("views", post.metrics.get("impressions", 0)))),
            "likeCount": str(int(post.metrics.get("likes", 0))),
            "favoriteCount": "0",
            "commentCount": str(_comment_count(state, post)),
        }
    if "status" in parts:
        item["status"] = {
            "uploadStatus": "processed",
            "privacyStatus": "public",
            "license": "youtube",
            "embeddable": True,
            "publicStatsViewable": True,
            "madeForKids": False,
        }
    return item


def _playlist_item(state: SandboxState, post: Post, playlist_id: str, position: int, parts: set[str]) -> dict:
    item: dict[str, Any] = {
        "kind": "youtube#playlistItem",
        "etag": _etag(playlist_id, post.post_id),
        "id": _etag(playlist_id, post.post_id, "item"),
    }
    title, description = _title_and_description(post)
    if "snippet" in parts:
        account = state.account(PLATFORM, post.account_id)
        channel_title = (account.display_name or account.handle) if account else ""
        item["snippet"] = {
            "publishedAt": _ts(post.created_at),
            "channelId": post.account_id,
            "title": title,
            "description": description,
            "thumbnails": _thumbnails(post.post_id),
            "channelTitle": channel_title,
            "playlistId": playlist_id,
            "position": position,
            "resourceId": {"kind": "youtube#video", "videoId": post.post_id},
            "videoOwnerChannelTitle": channel_title,
            "videoOwnerChannelId": post.account_id,
        }
    if "contentDetails" in parts:
        item["contentDetails"] = {"videoId": post.post_id, "videoPublishedAt": _ts(post.created_at)}
    if "status" in parts:
        item["status"] = {"privacyStatus": "public"}
    return item


def _author_channel_id(state: SandboxState, author: str) -> str:
    known = state.account_by_handle(PLATFORM, author)
    return known.account_id if known else channel_id_for(f"author:{author.lstrip('@').lower()}")


def _comment_thread(state: SandboxState, comment, text_format: str) -> dict[str, Any]:
    author = comment.author.lstrip("@")
    text = comment.text
    if text_format == "html":
        text = html.escape(text).replace("\n", "<br>")
    top: dict[str, Any] = {"channelId": comment.account_id}
    if comment.post_id:
        top["videoId"] = comment.post_id
    top.update(
        {
            # textOriginal is only guaranteed to the comment's author; the channel owner reads textDisplay.
            "textDisplay": text,
            "authorDisplayName": f"@{author}",
            "authorProfileImageUrl": f"https://yt3.ggpht.com/{_etag(author)}=s48-c-k-c0x00ffffff-no-rj",
            "authorChannelUrl": f"http://www.youtube.com/@{author}",
            "authorChannelId": {"value": _author_channel_id(state, author)},
            "canRate": True,
            "viewerRating": "none",
            "likeCount": int(comment.extra.get("likes", 0)),
            "publishedAt": _ts(comment.created_at),
            "updatedAt": _ts(comment.created_at),
        }
    )
    snippet: dict[str, Any] = {"channelId": comment.account_id}
    if comment.post_id:
        snippet["videoId"] = comment.post_id
    snippet.update(
        {
            "topLevelComment": {
                "kind": "youtube#comment",
                "etag": _etag(comment.comment_id, "c"),
                "id": comment.comment_id,
                "snippet": top,
            },
            "canReply": True,
            "totalReplyCount": 0,
            "isPublic": True,
        }
    )
    return {
        "kind": "youtube#commentThread",
        "etag": _etag(comment.comment_id),
        "id": comment.comment_id,
        "snippet": snippet,
    }


def _search_result(account: Account | None, post: Post | None) -> dict[str, Any]:
    if account is not None:
        title = account.display_name or account.handle
        published = account.extra.get("published_at", "2015-04-01T00:00:00Z")
        return {
            "kind": "youtube#searchResult",
            "etag": _etag("s", account.account_id),
            "id": {"kind": "youtube#channel", "channelId": account.account_id},
            "snippet": {
                "publishedAt": published,
                "channelId": account.account_id,
                "title": title,
                "description": account.extra.get("description", ""),
                "thumbnails": _thumbnails(account.account_id),
                "channelTitle": title,
                "liveBroadcastContent": "none",
                "publishTime": published,
            },
        }
    assert post is not None
    title, description = _title_and_description(post)
    return {
        "kind": "youtube#searchResult",
        "etag": _etag("s", post.post_id),
        "id": {"kind": "youtube#video", "videoId": post.post_id},
        "snippet": {
            "publishedAt": _ts(post.created_at),
            "channelId": post.account_id,
            "title": title,
            "description": description[:160],
            "thumbnails": _thumbnails(post.post_id),
            "channelTitle": "",
            "liveBroadcastContent": "none",
            "publishTime": _ts(post.created_at),
        },
    }


def render_error(exc: SandboxError) -> Response:
    """Google's JSON error body for any sandbox error (injected faults included)."""
    status, message = exc.status, exc.message
    if isinstance(exc, YouTubeError):
        reason, domain, detail = exc.reason, exc.domain, exc.detail or exc.message
        location, location_type = exc.location, exc.location_type
    else:
        status, message, detail, reason, domain, location, location_type = _fault_error(exc)
    error: dict[str, Any] = {"message": detail, "domain": domain, "reason": reason}
    if location:
        error.update({"location": location, "locationType": location_type or "parameter"})
    body = {
        "error": {"code": status, "message": message, "errors": [error], "status": STATUS_NAMES.get(status, "UNKNOWN")}
    }
    return JSONResponse(body, status_code=status, headers=exc.headers)


def _fault_error(exc: SandboxError) -> tuple[int, str, str, str, str, str | None, str | None]:
    """(status, message, error message, reason, domain, location, locationType) for a plain fault."""
    if exc.kind == "rate_limit":
        text = "The request cannot be completed because you have exceeded your rate limit."
        return 403, text, text, "rateLimitExceeded", "usageLimits", None, None
    if exc.kind == "server_error":
        text = "The service is currently unavailable."
        return 503, text, text, "backendError", "global", None, None
    if exc.kind in ("expired_token", "invalid_token"):
        return 401, INVALID_CREDENTIALS, "Invalid Credentials", "authError", "global", "Authorization", "header"
    if exc.kind == "not_found":
        return 404, exc.message, exc.message, "notFound", "global", None, None
    if exc.kind == "forbidden":
        return 403, exc.message, exc.message, "forbidden", "global", None, None
    return exc.status if exc.status < 500 else 400, exc.message, exc.message, "badRequest", "global", None, None


# ----------------------------------------------------------------------------- request helpers


def _token_valid_until(account: Account, token: str) -> datetime | bool | None:
    """False when ``token`` is not one of ``account``'s; else its expiry (None = no expiry)."""
    if account.token == token:
        return account.token_expires_at
    issued = account.extra.get("issued_tokens", {})
    if token in issued:
        return datetime.fromisoformat(issued[token])
    return False


def _account_for_token(state: SandboxState, token: str) -> tuple[Account, datetime | None] | None:
    with state.lock:
        for account in state.platform_accounts(PLATFORM):
            until = _token_valid_until(account, token)
            if until is not False:
                return account, until  # type: ignore[return-value]
    return None


def _account_for_key(state: SandboxState, key: str) -> Account | None:
    for account in state.platform_accounts(PLATFORM):
        if key and account.extra.get("api_key") == key:
            return account
    return None


def _authenticate(request: Request, state: SandboxState) -> tuple[Account, bool]:
    """The account behind the request and whether it came with OAuth (``mine=true`` needs OAuth)."""
    token = bearer_token(request)
    if token:
        found = _account_for_token(state, token)
        if found is None:
            raise _credentials_error("invalid_token")
        account, until = found
        if until is not None and until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        if account.token_revoked or (until is not None and until <= utcnow()):
            raise _credentials_error("expired_token")
        return account, True
    key = request.query_params.get("key") or request.headers.get("x-goog-api-key")
    if key:
        account = _account_for_key(state, key)
        if account is None:
            raise YouTubeError(
                "invalid_token", 400, "API key not valid. Please pass a valid API key.", reason="badRequest"
            )
        return account, False
    raise YouTubeError("forbidden", 403, "The request is missing a valid API key.", reason="forbidden")


def _charge(state: SandboxState, account: Account, bucket: str, cost: int) -> None:
    """Spend quota; every request costs, even one that fails later (as on YouTube)."""
    window = state.limits.hit(PLATFORM, account.account_id, bucket, cost)
    if window is not None and not window.allowed:
        # Stats count rate-limit rejections under 429, whatever status the platform uses (403 here).
        state.stats.record(PLATFORM, account.account_id, 429, time.time())
        raise YouTubeError(
            "rate_limit", 403, QUOTA_MESSAGE, window=window, reason="quotaExceeded", domain="youtube.quota"
        )


async def _enter(request: Request, operation: str, *, bucket: str = QUOTA_BUCKET):
    """Authenticate, charge quota, draw faults: the start of every data endpoint."""
    state = state_of(request)
    account, oauth = _authenticate(request, state)
    _charge(state, account, bucket, 1)
    fault, _ = await gate(request, PLATFORM, operation, account)
    return state, account, oauth, fault


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise YouTubeError(
            "invalid", 400, f"Required parameter: {name}", reason="required", location=name, location_type="parameter"
        )
    return value


def _parts(request: Request, allowed: set[str]) -> set[str]:
    parts = {p.strip() for p in _required(request, "part").split(",") if p.strip()}
    unknown = parts - allowed
    if unknown:
        raise YouTubeError(
            "invalid", 400, f"'{sorted(unknown)[0]}'", reason="unknownPart", domain="youtube.part", location="part"
        )
    return parts


def _max_results(request: Request, default: int, maximum: int, minimum: int = 0) -> int:
    raw = request.query_params.get("maxResults")
    if raw is None:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise YouTubeError(
            "invalid",
            400,
            f"Invalid value '{raw}'. Values must be within the range: [{minimum}, {maximum}]",
            reason="invalidParameter",
            location="maxResults",
        )
    return int(raw)


def _encode_page(offset: int) -> str:
    return base64.urlsafe_b64encode(f"CAU{offset:06d}".encode()).decode().rstrip("=")


def _decode_page(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith("CAU"):
            raise ValueError(token)
        return int(raw[3:])
    except ValueError:
        raise YouTubeError(
            "invalid",
            400,
            "The request specifies an invalid page token.",
            reason="invalidPageToken",
            domain="youtube.parameter",
            location="pageToken",
        ) from None


def _page(request: Request, items: list[Any], per_page: int) -> tuple[list[Any], dict[str, Any]]:
    """Slice one page and the paging fields (``nextPageToken``, ``prevPageToken``, ``pageInfo``)."""
    token = request.query_params.get("pageToken")
    offset = _decode_page(token) if token else 0
    page = items[offset : offset + per_page]
    meta: dict[str, Any] = {}
    if offset + per_page < len(items) and per_page:
        meta["nextPageToken"] = _encode_page(offset + per_page)
    if offset > 0:
        meta["prevPageToken"] = _encode_page(max(0, offset - per_page))
    meta["pageInfo"] = {"totalResults": len(items), "resultsPerPage": per_page}
    return page, meta


def _list_response(kind: str, items: list[Any], meta: dict[str, Any], *, omit_empty: bool = False) -> dict:
    body: dict[str, Any] = {"kind": kind, "etag": _etag(kind, len(items), meta.get("nextPageToken"))}
    body.update({k: v for k, v in meta.items() if k != "pageInfo"})
    body["pageInfo"] = meta["pageInfo"]
    if items or not omit_empty:
        body["items"] = items
    return body


def _ids(request: Request, name: str = "id") -> list[str]:
    return [i.strip() for i in (request.query_params.get(name) or "").split(",") if i.strip()]


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _account_for_playlist(state: SandboxState, playlist_id: str) -> Account | None:
    for account in state.platform_accounts(PLATFORM):
        if uploads_playlist_id(account.account_id) == playlist_id:
            return account
    return None


async def _answer(body: dict[str, Any], fault) -> Response:
    if fault is not None:
        return await lost_response(fault)
    return JSONResponse(body)


# ----------------------------------------------------------------------------- the app


def create_app(state: SandboxState) -> FastAPI:
    app = sub_app("YouTube Data API v3 (sandbox)", render_error)
    state.limits.default(PLATFORM, QUOTA_BUCKET, DAILY_UNITS, DAY_SECONDS)
    state.limits.default(PLATFORM, SEARCH_BUCKET, DAILY_SEARCHES, DAY_SECONDS)

    @app.get(f"{API}/channels")
    async def channels(request: Request) -> Response:
        mine = request.query_params.get("mine", "").lower() == "true"
        wants_stats = "statistics" in request.query_params.get("part", "")
        operation = "verify" if mine else ("metrics" if wants_stats else "read")
        state, account, oauth, fault = await _enter(request, operation)
        parts = _parts(
            request,
            {
                "id",
                "snippet",
                "contentDetails",
                "statistics",
                "status",
                "brandingSettings",
                "topicDetails",
                "localizations",
                "contentOwnerDetails",
            },
        )
        if mine:
            if not oauth:
                raise YouTubeError(
                    "invalid_token",
                    401,
                    "Login Required.",
                    reason="required",
                    location="Authorization",
                    location_type="header",
                )
            found = [account]
        elif request.query_params.get("id"):
            found = [a for i in _ids(request) if (a := state.account(PLATFORM, i)) is not None]
        elif request.query_params.get("forHandle"):
            handle = request.query_params["forHandle"]
            found = [a] if (a := state.account_by_handle(PLATFORM, handle)) else []
        else:
            raise YouTubeError(
                "invalid",
                400,
                "No filter selected. Expected one of: forUsername, managedByMe, "
                "categoryId, mine, mySubscribers, id, idParam, forHandle",
                reason="missingRequiredParameter",
                domain="youtube.parameter",
            )
        page, meta = _page(request, found, _max_results(request, 5, 50))
        items = [_channel_resource(state, a, parts) for a in page]
        return await _answer(_list_response("youtube#channelListResponse", items, meta, omit_empty=True), fault)

    @app.get(f"{API}/playlistItems")
    async def playlist_items(request: Request) -> Response:
        state, _account, _oauth, fault = await _enter(request, "read")
        parts = _parts(request, {"id", "snippet", "contentDetails", "status"})
        playlist_id = _required(request, "playlistId")
        owner = _account_for_playlist(state, playlist_id)
        if owner is None:
            raise YouTubeError(
                "not_found",
                404,
                "The playlist identified with the request's <code>playlistId</code> parameter cannot be found.",
                reason="playlistNotFound",
                domain="youtube.playlistItem",
                location="playlistId",
            )
        videos = state.account_posts(PLATFORM, owner.account_id)  # newest first, like the uploads playlist
        per_page = _max_results(request, 5, 50)
        offset_token = request.query_params.get("pageToken")
        offset = _decode_page(offset_token) if offset_token else 0
        page, meta = _page(request, videos, per_page)
        items = [_playlist_item(state, p, playlist_id, offset + n, parts) for n, p in enumerate(page)]
        return await _answer(_list_response("youtube#playlistItemListResponse", items, meta), fault)

    @app.get(f"{API}/videos")
    async def videos(request: Request) -> Response:
        operation = "metrics" if "statistics" in request.query_params.get("part", "") else "read"
        state, _account, _oauth, fault = await _enter(request, operation)
        parts = _parts(
            request,
            {
                "id",
                "snippet",
                "contentDetails",
                "statistics",
                "status",
                "player",
                "topicDetails",
                "recordingDetails",
                "liveStreamingDetails",
                "localizations",
            },
        )
        ids = _ids(request)
        if not ids:
            raise YouTubeError(
                "invalid",
                400,
                "No filter selected. Expected one of: myRating, chart, id",
                reason="missingRequiredParameter",
                domain="youtube.parameter",
            )
        if len(ids) > 50:
            raise YouTubeError(
                "invalid", 400, "The request specifies too many video ids.", reason="invalidParameter", location="id"
            )
        found = [p for i in ids if (p := state.post(PLATFORM, i)) is not None]
        page, meta = _page(request, found, max(len(found), 1))
        items = [_video_resource(state, p, parts) for p in page]
        return await _answer(_list_response("youtube#videoListResponse", items, meta), fault)

    @app.get(f"{API}/commentThreads")
    async def comment_threads(request: Request) -> Response:
        state, _account, _oauth, fault = await _enter(request, "comments")
        _parts(request, {"id", "snippet", "replies"})
        text_format = request.query_params.get("textFormat", "html")
        per_page = _max_results(request, 20, 100, minimum=1)
        video_id = request.query_params.get("videoId")
        channel_id = request.query_params.get("allThreadsRelatedToChannelId")
        comments = list(state.comments.get(PLATFORM, []))
        if video_id:
            video = state.post(PLATFORM, video_id)
            if video is None:
                raise YouTubeError(
                    "not_found",
                    404,
                    'The video identified by the <code><a href="/youtube/v3/docs/'
                    'commentThreads/list#videoId">videoId</a></code> parameter could not be found.',
                    reason="videoNotFound",
                    domain="youtube.commentThread",
                    location="videoId",
                )
            if video.extra.get("comments_disabled"):
                raise YouTubeError(
                    "forbidden",
                    403,
                    "The video identified by the <code>videoId</code> parameter has disabled comments.",
                    reason="commentsDisabled",
                    domain="youtube.commentThread",
                    location="videoId",
                )
            comments = [c for c in comments if c.post_id == video_id]
        elif channel_id:
            if state.account(PLATFORM, channel_id) is None:
                raise YouTubeError(
                    "not_found",
                    404,
                    "The channel identified by the <code>"
                    "allThreadsRelatedToChannelId</code> parameter could not be found.",
                    reason="channelNotFound",
                    domain="youtube.commentThread",
                    location="allThreadsRelatedToChannelId",
                )
            comments = [c for c in comments if c.account_id == channel_id]
        elif request.query_params.get("id"):
            wanted = set(_ids(request))
            comments = [c for c in comments if c.comment_id in wanted]
        else:
            raise YouTubeError(
                "invalid",
                400,
                "No filter selected. Expected one of: allThreadsRelatedToChannelId, videoId, id",
                reason="missingRequiredParameter",
                domain="youtube.parameter",
            )
        comments.sort(key=lambda c: (c.created_at, int(c.comment_id) if c.comment_id.isdigit() else 0), reverse=True)
        page, meta = _page(request, comments, per_page)
        meta.pop("prevPageToken", None)  # commentThreads pages forward only
        items = [_comment_thread(state, c, text_format) for c in page]
        return await _answer(_list_response("youtube#commentThreadListResponse", items, meta), fault)

    @app.get(f"{API}/search")
    async def search(request: Request) -> Response:
        state, _account, _oauth, fault = await _enter(request, "search", bucket=SEARCH_BUCKET)
        _parts(request, {"snippet", "id"})
        query = _fold(request.query_params.get("q", ""))
        types = {t.strip() for t in request.query_params.get("type", "video,channel,playlist").split(",")}
        results: list[dict[str, Any]] = []
        if "channel" in types:
            accounts = [
                a
                for a in state.platform_accounts(PLATFORM)
                if query in _fold(a.handle) or query in _fold(a.display_name or "")
            ]
            accounts.sort(key=lambda a: (_fold(a.handle) != query, -a.followers, a.account_id))
            results += [_search_result(a, None) for a in accounts]
        if "video" in types:
            posts = [
                p
                for p in state.posts.get(PLATFORM, {}).values()
                if not p.deleted and query in _fold(_title_and_description(p)[0])
            ]
            posts.sort(key=lambda p: p.created_at, reverse=True)
            results += [_search_result(None, p) for p in posts]
        page, meta = _page(request, results, _max_results(request, 5, 50))
        body = _list_response("youtube#searchListResponse", page, meta)
        body["regionCode"] = "JP"
        return await _answer(body, fault)

    @app.post("/token")
    async def token(request: Request) -> Response:
        """Google's OAuth token endpoint, refresh grant only (Koho never runs the consent flow)."""
        state = state_of(request)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        account = next(
            (
                a
                for a in state.platform_accounts(PLATFORM)
                if form.get("refresh_token") and a.extra.get("refresh_token") == form.get("refresh_token")
            ),
            None,
        )
        if account is None or account.token_revoked:
            return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        if account.extra.get("client_id") not in (None, form.get("client_id")) or account.extra.get(
            "client_secret"
        ) not in (None, form.get("client_secret")):
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        fault, _ = await gate(request, PLATFORM, "auth", account)
        access = "ya29." + secrets.token_urlsafe(32)
        expires = utcnow() + timedelta(seconds=TOKEN_LIFETIME)
        with state.lock:
            # Earlier access tokens stay valid until they expire, as on Google.
            account.extra.setdefault("issued_tokens", {})[access] = expires.isoformat()
        if fault is not None:
            return await lost_response(fault)
        return JSONResponse(
            {"access_token": access, "expires_in": TOKEN_LIFETIME, "scope": SCOPE, "token_type": "Bearer"}
        )

    return app


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)
