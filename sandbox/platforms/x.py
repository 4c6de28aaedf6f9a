"""X API v2 as the sandbox serves it, under ``/x`` (the real host is ``https://api.x.com``).

What is faithful and why it matters to Koho:

* errors are problem JSON (``title``, ``detail``, ``type``, ``status``); a missing resource on a
  read is a **200** with an ``errors`` array and no ``data``, as X does it;
* rate limits are per endpoint ("bucket") and per user, announced in ``x-rate-limit-limit``,
  ``x-rate-limit-remaining`` and ``x-rate-limit-reset`` (epoch seconds);
* text is weighted with twitter-text (CJK counts 2, URLs 23; 280 by default, per-account override
  ``max_weighted_length`` in the account's extra for long-post tiers);
* identical text from the same account within a day is refused with 403 "duplicate content";
* every URL in a post comes back wrapped as ``https://t.co/<random>`` and ``&``, ``<``, ``>``
  come back as HTML entities, so reconciliation by text has to ignore both, as with the real API;
* an account whose extra says ``access_tier: basic`` (or ``free``) gets X's 403
  ``client-not-enrolled`` from user search, which needs Pro access;
* the token is an OAuth 2.0 bearer token, or OAuth 1.0a user context (``Authorization: OAuth
  ...``). When the account's extra holds ``oauth1_consumer_secret`` and ``oauth1_token_secret``
  the HMAC-SHA1 signature is checked (against the URL as sent and as signed for the real hosts,
  since clients sign the URL they believe they call).

* photos: ``POST /2/media/upload`` (multipart ``media`` + ``media_category``) stores an image
  for 24 hours and answers ``{"data": {"id", "media_key", "size", "expires_after_secs"}}``;
  ``POST /2/tweets`` attaches up to 4 of the account's own unexpired media ids and refuses any
  other id with X's 400 "Your media IDs are invalid."; the post's text then ends with a ``t.co``
  link for the photos, as X shows it, and ``GET /2/tweets/{id}?expansions=attachments.media_keys``
  returns ``attachments.media_keys`` and ``includes.media``. Images over 5 MB or of an unknown
  type are refused. The v1.1 simple upload (``upload.twitter.com/1.1/media/upload.json``) that
  tweepy's ``API.media_upload`` calls is served too, on the same media store.

Not served: chunked (video) upload, polls, quotes.
"""

from __future__ import annotations

import base64
import hmac
import math
import secrets
import string
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import twitter_text
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from oauthlib.oauth1.rfc5849 import signature as oauth1_signature

from sandbox.common import SandboxError, gate, image_size, image_type, lost_response, state_of, sub_app
from sandbox.ratelimit import Window
from sandbox.state import Account, Comment, Post, SandboxState, utcnow

PREFIX = "/x"
PLATFORM = "x"
PROBLEMS = "https://api.twitter.com/2/problems/"
#: Hosts clients sign OAuth 1.0a requests for; the upload host is where v1.1 media upload lives.
REAL_HOSTS = ("https://api.x.com", "https://api.twitter.com", "https://upload.twitter.com", "https://upload.x.com")

#: Per-user limits (requests, seconds) from X's rate-limit tables (Pro tier, 15-minute windows).
LIMITS: dict[str, tuple[int, float]] = {
    "tweets:create": (100, 900),
    "tweets:delete": (50, 900),
    "tweets:lookup": (900, 900),
    "users:me": (75, 900),
    "users:lookup": (900, 900),
    "users:tweets": (900, 900),
    "users:mentions": (300, 900),
    "users:search": (300, 900),
    "media:upload": (500, 900),
}
#: docs.x.com "Media": images up to 5 MB, up to 4 photos per post; uploads expire after a day.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_MEDIA_PER_POST = 4
MEDIA_TTL = timedelta(hours=24)
IMAGE_CATEGORIES = ("tweet_image", "dm_image")
INVALID_MEDIA_IDS = "Your media IDs are invalid."
MAX_WEIGHTED_LENGTH = 280
DUPLICATE_WINDOW = timedelta(hours=24)
TOO_LONG = (
    "Your Tweet text is too long. For more information on how Twitter determines text length "
    "see https://github.com/twitter/twitter-text."
)
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
#: What X answers when an endpoint is above the app's access tier (user search needs Pro).
_NOT_ENROLLED = {
    "client_id": "sandbox",
    "detail": (
        "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a "
        "Twitter developer App that is attached to a Project. You can create a project via the developer portal."
    ),
    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
    "title": "Client Forbidden",
    "required_enrollment": "Appropriate Level of API Access",
    "reason": "client-not-enrolled",
    "type": PROBLEMS + "client-forbidden",
}


@dataclass
class XProblem(SandboxError):
    """A :class:`SandboxError` that carries X's exact error body."""

    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tweet:
    """What the renderer needs of a tweet, whether it is an official post or a resident's mention."""

    tweet_id: str
    author_id: str
    text: str  # as stored: t.co links, unescaped
    created_at: datetime
    reply_to: str | None = None
    reply_to_user: str | None = None
    urls: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, int] = field(default_factory=dict)
    lang: str = "ja"
    media_keys: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- errors


def _problem(title: str, detail: str, status: int, type_: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": type_, "status": status}


def _not_found(resource: str, parameter: str, value: str) -> dict[str, Any]:
    """One entry of the ``errors`` array X returns (with HTTP 200) for a missing resource."""
    return {
        "value": value,
        "detail": f"Could not find {resource} with {parameter}: [{value}].",
        "title": "Not Found Error",
        "resource_type": resource,
        "parameter": parameter,
        "resource_id": value,
        "type": PROBLEMS + "resource-not-found",
    }


def _invalid(message: str, parameter: str, value: Any) -> XProblem:
    body = {
        "errors": [{"parameters": {parameter: [value]}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": PROBLEMS + "invalid-request",
    }
    return XProblem("invalid", 400, message, body=body)


def _forbidden(detail: str) -> XProblem:
    return XProblem("forbidden", 403, detail, body=_problem("Forbidden", detail, 403))


def render_error(exc: SandboxError) -> Response:
    body = getattr(exc, "body", None) or _fault_body(exc)
    headers = {**_rate_headers(exc.window), **exc.headers}
    return JSONResponse(body, status_code=exc.status, headers=headers, media_type="application/problem+json")


def _fault_body(exc: SandboxError) -> dict[str, Any]:
    if exc.kind == "rate_limit":
        return _problem("Too Many Requests", "Too Many Requests", 429)
    if exc.kind in ("expired_token", "invalid_token"):
        return _problem("Unauthorized", "Unauthorized", 401)
    if exc.kind == "duplicate":
        return _problem("Forbidden", DUPLICATE, 403)
    if exc.kind == "server_error":
        return _problem("Service Unavailable", "Service Unavailable", exc.status)
    return _problem("Error", exc.message, exc.status)


def _rate_headers(window: Window | None) -> dict[str, str]:
    if window is None:
        return {}
    return {
        "x-rate-limit-limit": str(window.limit),
        "x-rate-limit-remaining": str(window.remaining),
        "x-rate-limit-reset": str(math.ceil(window.reset_epoch)),
    }


def _ok(body: dict[str, Any], window: Window | None, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=_rate_headers(window))


# --------------------------------------------------------------------------- auth


def _oauth1_params(header: str) -> dict[str, str]:
    params = oauth1_signature.collect_parameters(headers={"Authorization": header}, exclude_oauth_signature=False)
    return dict(params)


def _request_token(request: Request) -> tuple[str | None, dict[str, str] | None]:
    """The access token, and the OAuth 1.0a parameters when the request is signed that way."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), None
    if header.startswith("OAuth "):
        params = _oauth1_params(header)
        return params.get("oauth_token"), params
    return None, None


def _signature_ok(request: Request, account: Account, params: dict[str, str]) -> bool:
    consumer_secret = account.extra.get("oauth1_consumer_secret")
    token_secret = account.extra.get("oauth1_token_secret")
    if not (consumer_secret and token_secret):
        return True  # the sandbox knows no secrets for this account: accept the token alone
    header = request.headers["authorization"]
    collected = oauth1_signature.collect_parameters(
        uri_query=request.url.query, headers={"Authorization": header}, exclude_oauth_signature=True
    )
    normalized = oauth1_signature.normalize_parameters(collected)
    root = request.scope.get("root_path", "")
    tail = request.url.path[len(root) :] if request.url.path.startswith(root) else request.url.path
    sent = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
    for uri in (sent, *(host + tail for host in REAL_HOSTS)):
        base = oauth1_signature.signature_base_string(
            request.method.upper(), oauth1_signature.base_string_uri(uri), normalized
        )
        expected = oauth1_signature.sign_hmac_sha1(base, consumer_secret, token_secret)
        if hmac.compare_digest(expected, params.get("oauth_signature", "")):
            return True
    return False


def _authenticate(request: Request) -> Account:
    """The account the request acts for; X answers every token problem with the same 401."""
    state = state_of(request)
    token, oauth1 = _request_token(request)
    account = state.account_by_token(PLATFORM, token)
    if account is None:
        raise SandboxError("invalid_token", 401, "Unauthorized")
    expires = account.token_expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if account.token_revoked or (expires is not None and expires <= utcnow()):
        raise SandboxError("expired_token", 401, "Unauthorized")
    if oauth1 is not None and not _signature_ok(request, account, oauth1):
        raise SandboxError("invalid_token", 401, "Unauthorized")
    return account


# --------------------------------------------------------------------------- text


def _wrap_urls(text: str) -> tuple[str, list[dict[str, str]]]:
    """Replace every URL twitter-text finds with a fresh ``https://t.co/...`` link, as X does."""
    urls = []
    out, last = [], 0
    for entity in twitter_text.extract_urls_with_indices(text):
        start, end = entity["indices"]
        short = "https://t.co/" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(10))
        expanded = entity["url"] if "://" in entity["url"] else "http://" + entity["url"]
        display = expanded.split("://", 1)[1]
        shown = display[:26] + ("…" if len(display) > 26 else "")
        urls.append({"url": short, "expanded_url": expanded, "display_url": shown})
        out.append(text[last:start] + short)
        last = end
    out.append(text[last:])
    return "".join(out), urls


def _escape(text: str) -> str:
    """X returns ``&``, ``<`` and ``>`` as entities in ``text`` (quotes stay as they are)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(value: str, parameter: str) -> datetime:
    """X takes RFC 3339 times (``YYYY-MM-DDTHH:mm:ssZ``, fractions allowed)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        message = f"Invalid '{parameter}': '{value}'. '{parameter}' must be a RFC 3339 time."
        raise _invalid(message, parameter, value) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- residents and rendering


def _user_id_for(state: SandboxState, handle: str) -> str:
    """A stable user id for a resident who is only a name on a comment."""
    known = state.account_by_handle(PLATFORM, handle)
    if known is not None:
        return known.account_id
    with state.lock:
        users = state.scratch.setdefault(PLATFORM, {}).setdefault("residents", {})
        if handle.lower() not in users:
            users[handle.lower()] = (state.next_id(), handle)
        return users[handle.lower()][0]


def _user_by_id(state: SandboxState, user_id: str) -> tuple[str, str, str, int] | None:
    """(id, username, name, followers) for an account or a resident."""
    account = state.account(PLATFORM, user_id)
    if account is not None:
        return account.account_id, account.handle, account.display_name or account.handle, account.followers
    for rid, handle in state.scratch.get(PLATFORM, {}).get("residents", {}).values():
        if rid == user_id:
            return rid, handle, handle, 0
    return None


def _comment_count(state: SandboxState, post_id: str) -> int:
    return sum(1 for c in state.comments.get(PLATFORM, []) if c.post_id == post_id)


def _from_post(post: Post) -> Tweet:
    return Tweet(
        post.post_id,
        post.account_id,
        post.text,
        post.created_at,
        post.reply_to,
        post.extra.get("reply_to_user"),
        post.extra.get("urls", []),
        post.metrics,
        post.extra.get("lang", "ja"),
        [_media_key(m) for m in post.media],
    )


def _from_comment(state: SandboxState, comment: Comment) -> Tweet:
    """A resident's reply or mention, as X shows it: the addressed handle leads the text."""
    account = state.account(PLATFORM, comment.account_id)
    handle = account.handle if account else comment.account_id
    return Tweet(
        comment.comment_id,
        _user_id_for(state, comment.author),
        f"@{handle} {comment.text}",
        comment.created_at,
        comment.post_id,
        comment.account_id if comment.post_id else None,
    )


def _find_tweet(state: SandboxState, tweet_id: str) -> Tweet | None:
    post = state.post(PLATFORM, tweet_id)
    if post is not None:
        return _from_post(post)
    for comment in state.comments.get(PLATFORM, []):
        if comment.comment_id == tweet_id:
            return _from_comment(state, comment)
    return None


def _tweet_json(state: SandboxState, tweet: Tweet, fields: set[str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": tweet.tweet_id,
        "text": _escape(tweet.text),
        "edit_history_tweet_ids": [tweet.tweet_id],
    }
    if "created_at" in fields:
        data["created_at"] = _iso(tweet.created_at)
    if "author_id" in fields:
        data["author_id"] = tweet.author_id
    if "conversation_id" in fields:
        data["conversation_id"] = _conversation_id(state, tweet)
    if "lang" in fields:
        data["lang"] = tweet.lang
    if "attachments" in fields and tweet.media_keys:
        data["attachments"] = {"media_keys": list(tweet.media_keys)}
    if "in_reply_to_user_id" in fields and tweet.reply_to_user:
        data["in_reply_to_user_id"] = tweet.reply_to_user
    if "referenced_tweets" in fields and tweet.reply_to:
        data["referenced_tweets"] = [{"type": "replied_to", "id": tweet.reply_to}]
    if "entities" in fields and tweet.urls:
        data["entities"] = {"urls": [_url_entity(tweet.text, u) for u in tweet.urls]}
    if "public_metrics" in fields:
        m = tweet.metrics
        data["public_metrics"] = {
            "retweet_count": m.get("reposts", 0),
            "reply_count": m.get("replies", 0) + _comment_count(state, tweet.tweet_id),
            "like_count": m.get("likes", 0),
            "quote_count": m.get("quotes", 0),
            "bookmark_count": m.get("bookmarks", 0),
            "impression_count": m.get("impressions", 0),
        }
    return data


def _conversation_id(state: SandboxState, tweet: Tweet) -> str:
    seen, current = set(), tweet
    while current.reply_to and current.reply_to not in seen:
        seen.add(current.reply_to)
        parent = _find_tweet(state, current.reply_to)
        if parent is None:
            return current.reply_to
        current = parent
    return current.tweet_id


def _url_entity(text: str, url: dict[str, str]) -> dict[str, Any]:
    start = text.find(url["url"])
    return {"start": start, "end": start + len(url["url"]), **url}


def _user_json(state: SandboxState, user: tuple[str, str, str, int], fields: set[str]) -> dict[str, Any]:
    user_id, username, name, followers = user
    data: dict[str, Any] = {"id": user_id, "name": name, "username": username}
    if "public_metrics" in fields:
        data["public_metrics"] = {
            "followers_count": followers,
            "following_count": 0,
            "tweet_count": len(state.account_posts(PLATFORM, user_id)),
            "listed_count": 0,
            "like_count": 0,
            "media_count": 0,
        }
    if "created_at" in fields:
        data["created_at"] = "2020-04-01T00:00:00.000Z"
    if "description" in fields:
        data["description"] = ""
    if "protected" in fields:
        data["protected"] = False
    if "verified" in fields:
        data["verified"] = False
    return data


def _fields(request: Request, name: str) -> set[str]:
    return {f.strip() for f in request.query_params.get(name, "").split(",") if f.strip()}


def _tweet_fields(request: Request) -> set[str]:
    """``tweet.fields``, plus the id fields an expansion needs (X returns them with the expansion)."""
    fields = _fields(request, "tweet.fields")
    if "attachments.media_keys" in _fields(request, "expansions"):
        fields.add("attachments")
    return fields


def _includes(state: SandboxState, tweets: list[Tweet], request: Request) -> dict[str, Any]:
    expansions = _fields(request, "expansions")
    includes: dict[str, Any] = {}
    if "author_id" in expansions:
        user_fields = _fields(request, "user.fields")
        users, seen = [], set()
        for tweet in tweets:
            user = _user_by_id(state, tweet.author_id)
            if user and user[0] not in seen:
                seen.add(user[0])
                users.append(_user_json(state, user, user_fields))
        if users:
            includes["users"] = users
    if "attachments.media_keys" in expansions:
        media_fields = _fields(request, "media.fields")
        store = _media_store(state)
        media = [
            _media_json(store[key.split("_", 1)[1]], media_fields)
            for tweet in tweets
            for key in tweet.media_keys
            if key.split("_", 1)[1] in store
        ]
        if media:
            includes["media"] = media
    return {"includes": includes} if includes else {}


# --------------------------------------------------------------------------- media


def _media_key(media_id: str) -> str:
    """Photos are media type 3 in X's media keys (``3_<id>``)."""
    return f"3_{media_id}"


def _media_store(state: SandboxState) -> dict[str, dict[str, Any]]:
    with state.lock:
        return state.scratch.setdefault(PLATFORM, {}).setdefault("media", {})


def _media_json(item: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"media_key": _media_key(item["id"]), "type": "photo"}
    if "url" in fields:
        data["url"] = f"https://pbs.twimg.com/media/{item['id']}.{item['mime'].split('/')[1]}"
    if "width" in fields:
        data["width"] = item["w"]
    if "height" in fields:
        data["height"] = item["h"]
    return data


def _store_media(state: SandboxState, account: Account, data: bytes, category: str) -> dict[str, Any]:
    """Check and keep one uploaded image; raises X's invalid-request problem for what X refuses."""
    if not data:
        raise _invalid("The media parameter is missing or empty.", "media", None)
    if len(data) > MAX_IMAGE_BYTES:
        raise _invalid(f"File size exceeds {MAX_IMAGE_BYTES} bytes: media is too large.", "media", len(data))
    mime = image_type(data)
    if mime is None:
        raise _invalid("The media type is unrecognized.", "media", None)
    width, height = image_size(data)
    item = {
        "id": state.next_id(),
        "owner": account.account_id,
        "mime": mime,
        "size": len(data),
        "w": width,
        "h": height,
        "category": category,
        "expires_at": utcnow() + MEDIA_TTL,
    }
    with state.lock:
        _media_store(state)[item["id"]] = item
    return item


def _check_media_ids(state: SandboxState, account: Account, media_ids: Any) -> list[str]:
    """The ids a post may attach: a list of 1 to 4 of the account's own, unexpired uploads."""
    if not isinstance(media_ids, list) or not 1 <= len(media_ids) <= MAX_MEDIA_PER_POST:
        raise _invalid(f"$.media.media_ids must hold 1 to {MAX_MEDIA_PER_POST} media ids", "media.media_ids", media_ids)
    store, now = _media_store(state), utcnow()
    for media_id in media_ids:
        item = store.get(str(media_id))
        if item is None or item["owner"] != account.account_id or item["expires_at"] <= now:
            raise _invalid(INVALID_MEDIA_IDS, "media.media_ids", media_ids)
    return [str(m) for m in media_ids]


# --------------------------------------------------------------------------- paging


def _max_results(request: Request, default: int, low: int, high: int) -> int:
    raw = request.query_params.get("max_results")
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise _invalid(
            f"The `max_results` query parameter value [{raw}] is not between {low} and {high}", "max_results", raw
        )
    return int(raw)


def _token_for(tweet_id: str) -> str:
    return base64.urlsafe_b64encode(f"before:{tweet_id}".encode()).decode().rstrip("=")


def _before_token(token: str) -> int:
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return int(decoded.removeprefix("before:"))
    except (ValueError, UnicodeDecodeError):
        raise _invalid(
            f"The `pagination_token` query parameter value [{token}] is not valid", "pagination_token", token
        ) from None


def _timeline(state: SandboxState, request: Request, tweets: list[Tweet]) -> dict[str, Any]:
    """Filter and page a timeline the way X does: newest first, ``meta`` with ids and ``next_token``."""
    q = request.query_params
    limit = _max_results(request, 10, 5, 100)
    start = _parse_time(q["start_time"], "start_time") if q.get("start_time") else None
    end = _parse_time(q["end_time"], "end_time") if q.get("end_time") else None
    since_id = int(q["since_id"]) if q.get("since_id", "").isdigit() else None
    until_id = int(q["until_id"]) if q.get("until_id", "").isdigit() else None
    before = _before_token(q["pagination_token"]) if q.get("pagination_token") else None
    chosen = sorted(
        (
            t
            for t in tweets
            if (start is None or t.created_at >= start)
            and (end is None or t.created_at <= end)
            and (since_id is None or int(t.tweet_id) > since_id)
            and (until_id is None or int(t.tweet_id) < until_id)
        ),
        key=lambda t: int(t.tweet_id),
        reverse=True,
    )
    if before is not None:
        chosen = [t for t in chosen if int(t.tweet_id) < before]
    page, more = chosen[:limit], len(chosen) > limit
    fields = _tweet_fields(request)
    body: dict[str, Any] = {}
    if page:
        body["data"] = [_tweet_json(state, t, fields) for t in page]
        body.update(_includes(state, page, request))
    meta: dict[str, Any] = {"result_count": len(page)}
    if page:
        meta["newest_id"], meta["oldest_id"] = page[0].tweet_id, page[-1].tweet_id
    if more:
        meta["next_token"] = _token_for(page[-1].tweet_id)
    body["meta"] = meta
    return body


# --------------------------------------------------------------------------- the app


def create_app(state: SandboxState) -> FastAPI:
    for bucket, (limit, seconds) in LIMITS.items():
        state.limits.default(PLATFORM, bucket, limit, seconds)
    app = sub_app("X API v2 (sandbox)", render_error)

    @app.post("/2/tweets")
    async def create_tweet(request: Request) -> Response:
        account = _authenticate(request)
        fault, window = await gate(request, PLATFORM, "publish", account, bucket="tweets:create")
        body = await _json_body(request)
        text = body.get("text") or ""
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        media = body.get("media") or {}
        media_ids = _check_media_ids(state, account, media.get("media_ids")) if "media_ids" in media else []
        _validate_tweet(state, account, text, media_ids, reply_to)
        with state.lock:
            _refuse_duplicate(state, account, text)
            post = _store_tweet(state, account, text, reply_to, media_ids)
        if fault is not None:
            return await lost_response(fault)
        return _ok({"data": _tweet_json(state, _from_post(post), set())}, window, status=201)

    @app.post("/2/media/upload")
    async def upload_media(request: Request) -> Response:
        account = _authenticate(request)
        fault, window = await gate(request, PLATFORM, "media", account, bucket="media:upload")
        form = await _form(request)
        category = form.get("media_category")
        if category not in IMAGE_CATEGORIES:
            raise _invalid(
                f"$.media_category must be one of {list(IMAGE_CATEGORIES)} for an image upload",
                "media_category",
                category,
            )
        media = form.get("media")
        data = await media.read() if hasattr(media, "read") else b""
        item = _store_media(state, account, data, str(category))
        if fault is not None:
            return await lost_response(fault)
        body = {
            "id": item["id"],
            "media_key": _media_key(item["id"]),
            "size": item["size"],
            "expires_after_secs": int(MEDIA_TTL.total_seconds()),
        }
        return _ok({"data": body}, window)

    @app.post("/1.1/media/upload.json")
    async def upload_media_v1(request: Request) -> Response:
        """The v1.1 simple upload on upload.twitter.com, which tweepy's ``API.media_upload`` calls."""
        account = _authenticate(request)
        fault, window = await gate(request, PLATFORM, "media", account, bucket="media:upload")
        form = await _form(request)
        media = form.get("media")
        if hasattr(media, "read"):
            data = await media.read()
        else:
            try:
                data = base64.b64decode(str(form.get("media_data") or ""), validate=True)
            except ValueError:
                data = b""
        category = str(
            form.get("media_category") or request.query_params.get("media_category") or "tweet_image"
        ).lower()
        try:
            item = _store_media(state, account, data, category)
        except XProblem as exc:
            message = exc.body["errors"][0]["message"]
            raise XProblem("invalid", 400, message, body={"errors": [{"code": 324, "message": message}]}) from None
        if fault is not None:
            return await lost_response(fault)
        return _ok(
            {
                "media_id": int(item["id"]),
                "media_id_string": item["id"],
                "media_key": _media_key(item["id"]),
                "size": item["size"],
                "expires_after_secs": int(MEDIA_TTL.total_seconds()),
                "image": {"image_type": item["mime"], "w": item["w"], "h": item["h"]},
            },
            window,
        )

    @app.delete("/2/tweets/{tweet_id}")
    async def delete_tweet(request: Request, tweet_id: str) -> Response:
        account = _authenticate(request)
        fault, window = await gate(request, PLATFORM, "delete", account, bucket="tweets:delete")
        post = state.post(PLATFORM, tweet_id)
        if post is None:
            return _ok({"errors": [_not_found("tweet", "id", tweet_id)]}, window)
        if post.account_id != account.account_id:
            raise _forbidden("You are not allowed to delete this Tweet.")
        post.deleted = True
        if fault is not None:
            return await lost_response(fault)
        return _ok({"data": {"deleted": True}}, window)

    @app.get("/2/tweets/{tweet_id}")
    async def get_tweet(request: Request, tweet_id: str) -> Response:
        account = _authenticate(request)
        fields = _tweet_fields(request)
        operation = "metrics" if "public_metrics" in fields else "read"
        fault, window = await gate(request, PLATFORM, operation, account, bucket="tweets:lookup")
        tweet = _find_tweet(state, tweet_id)
        if fault is not None:
            return await lost_response(fault)
        if tweet is None:
            return _ok({"errors": [_not_found("tweet", "id", tweet_id)]}, window)
        return _ok({"data": _tweet_json(state, tweet, fields), **_includes(state, [tweet], request)}, window)

    @app.get("/2/users/me")
    async def users_me(request: Request) -> Response:
        account = _authenticate(request)
        fault, window = await gate(request, PLATFORM, "verify", account, bucket="users:me")
        if fault is not None:
            return await lost_response(fault)
        user = _user_by_id(state, account.account_id)
        assert user is not None
        return _ok({"data": _user_json(state, user, _fields(request, "user.fields"))}, window)

    @app.get("/2/users/search")
    async def users_search(request: Request) -> Response:
        account = _authenticate(request)
        fault, window = await gate(request, PLATFORM, "search", account, bucket="users:search")
        if str(account.extra.get("access_tier", "pro")).lower() in ("free", "basic"):
            raise XProblem("forbidden", 403, "client-not-enrolled", body=_NOT_ENROLLED)
        query = request.query_params.get("query", "").strip()
        if not query:
            raise _invalid("The `query` query parameter can not be empty", "query", query)
        limit = _max_results(request, 100, 1, 1000)
        token = request.query_params.get("next_token") or "0"
        offset = int(token) if token.isdigit() else 0
        hits = [a for a in state.platform_accounts(PLATFORM) if _matches(query, a)]
        hits.sort(key=lambda a: -a.followers)
        page = hits[offset : offset + limit]
        if fault is not None:
            return await lost_response(fault)
        fields = _fields(request, "user.fields")
        body: dict[str, Any] = {"meta": {"result_count": len(page)}}
        if page:
            body["data"] = [_user_json(state, _user_by_id(state, a.account_id), fields) for a in page]  # type: ignore[arg-type]
        if offset + limit < len(hits):
            body["meta"]["next_token"] = str(offset + limit)
        return _ok(body, window)

    @app.get("/2/users/by/username/{username}")
    async def user_by_username(request: Request, username: str) -> Response:
        account = _authenticate(request)
        fault, window = await gate(request, PLATFORM, "search", account, bucket="users:lookup")
        if fault is not None:
            return await lost_response(fault)
        found = state.account_by_handle(PLATFORM, username)
        if found is None:
            return _ok({"errors": [_not_found("user", "username", username)]}, window)
        user = _user_by_id(state, found.account_id)
        return _ok({"data": _user_json(state, user, _fields(request, "user.fields"))}, window)  # type: ignore[arg-type]

    @app.get("/2/users/by")
    async def users_by(request: Request) -> Response:
        account = _authenticate(request)
        fault, window = await gate(request, PLATFORM, "search", account, bucket="users:lookup")
        names = [n.strip() for n in request.query_params.get("usernames", "").split(",") if n.strip()]
        if not 1 <= len(names) <= 100:
            raise _invalid("The `usernames` query parameter needs 1 to 100 names", "usernames", len(names))
        if fault is not None:
            return await lost_response(fault)
        fields = _fields(request, "user.fields")
        data, errors = [], []
        for name in names:
            found = state.account_by_handle(PLATFORM, name)
            if found is None:
                errors.append(_not_found("user", "usernames", name))
            else:
                data.append(_user_json(state, _user_by_id(state, found.account_id), fields))  # type: ignore[arg-type]
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
        if errors:
            body["errors"] = errors
        return _ok(body, window)

    @app.get("/2/users/{user_id}")
    async def user_by_id(request: Request, user_id: str) -> Response:
        account = _authenticate(request)
        fields = _fields(request, "user.fields")
        operation = "metrics" if "public_metrics" in fields else "read"
        fault, window = await gate(request, PLATFORM, operation, account, bucket="users:lookup")
        if fault is not None:
            return await lost_response(fault)
        user = _user_by_id(state, user_id)
        if user is None:
            return _ok({"errors": [_not_found("user", "id", user_id)]}, window)
        return _ok({"data": _user_json(state, user, fields)}, window)

    @app.get("/2/users/{user_id}/tweets")
    async def user_tweets(request: Request, user_id: str) -> Response:
        account = _authenticate(request)
        fault, window = await gate(request, PLATFORM, "read", account, bucket="users:tweets")
        if _user_by_id(state, user_id) is None:
            return _ok({"errors": [_not_found("user", "id", user_id)]}, window)
        body = _timeline(state, request, [_from_post(p) for p in state.account_posts(PLATFORM, user_id)])
        if fault is not None:
            return await lost_response(fault)
        return _ok(body, window)

    @app.get("/2/users/{user_id}/mentions")
    async def user_mentions(request: Request, user_id: str) -> Response:
        account = _authenticate(request)
        fault, window = await gate(request, PLATFORM, "comments", account, bucket="users:mentions")
        if _user_by_id(state, user_id) is None:
            return _ok({"errors": [_not_found("user", "id", user_id)]}, window)
        mentions = [_from_comment(state, c) for c in state.account_comments(PLATFORM, user_id)]
        body = _timeline(state, request, mentions)
        if fault is not None:
            return await lost_response(fault)
        return _ok(body, window)

    return app


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _invalid("Request body is not valid JSON", "body", None) from None
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object", "body", None)
    return body


async def _form(request: Request) -> Any:
    """A multipart or form-encoded body; anything else is X's invalid request."""
    try:
        return await request.form()
    except (ValueError, AssertionError):
        raise _invalid("Request body must be multipart/form-data", "body", None) from None


def _validate_tweet(state: SandboxState, account: Account, text: str, media_ids: list[str], reply_to: Any) -> None:
    if not text and not media_ids:
        raise _invalid("$.text or $.media is required", "text", text)
    limit = int(account.extra.get("max_weighted_length", MAX_WEIGHTED_LENGTH))
    if twitter_text.parse_tweet(text).weightedLength > limit:
        raise XProblem("too_long", 400, TOO_LONG, body=_problem("Bad Request", TOO_LONG, 400))
    if reply_to is not None and _find_tweet(state, str(reply_to)) is None:
        raise _forbidden("You attempted to reply to a Tweet that is deleted or not visible to you.")


def _refuse_duplicate(state: SandboxState, account: Account, text: str) -> None:
    cutoff = utcnow() - DUPLICATE_WINDOW
    for post in state.account_posts(PLATFORM, account.account_id):
        if post.created_at >= cutoff and post.extra.get("source_text") == text:
            raise _forbidden(DUPLICATE)


def _store_tweet(state: SandboxState, account: Account, text: str, reply_to: Any, media_ids: list[str]) -> Post:
    wrapped, urls = _wrap_urls(text)
    if media_ids:  # X shows a post's photos as a t.co link at the end of its text
        photos, _ = _wrap_urls(f"https://x.com/{account.handle}/status/photo/1")
        wrapped = f"{wrapped} {photos}".strip()
    parent = _find_tweet(state, str(reply_to)) if reply_to is not None else None
    post = Post(
        platform=PLATFORM,
        post_id=state.next_id(),
        account_id=account.account_id,
        text=wrapped,
        created_at=utcnow(),
        reply_to=str(reply_to) if reply_to is not None else None,
        link=urls[0]["expanded_url"] if urls else None,
        media=list(media_ids),
        extra={
            "source_text": text,
            "urls": urls,
            "reply_to_user": parent.author_id if parent else None,
            "lang": "ja" if any(unicodedata.east_asian_width(ch) in "WF" for ch in text) else "en",
        },
    )
    return state.add_post(post)


def _matches(query: str, account: Account) -> bool:
    """A rough stand-in for X's relevance search: either side contains the other, NFKC, case-folded."""
    q = unicodedata.normalize("NFKC", query).lstrip("@").casefold()
    for value in (account.handle, account.display_name):
        v = unicodedata.normalize("NFKC", value or "").casefold()
        if v and (q in v or v in q):
            return True
    return False
