"""Mastodon's client API as the sandbox serves it, under ``/mastodon`` (one instance).

What is faithful and why it matters to Koho:

* ``POST /api/v1/statuses`` takes form or JSON bodies and honours ``Idempotency-Key``: a key
  seen within the hour returns the status it created instead of a new one (this is how Koho
  retries a post whose answer was lost);
* status ``content`` is HTML as Mastodon renders it (paragraphs, ``<br />``, links with
  invisible/ellipsis spans, hashtag and mention links), so hooks must turn it back into text;
* length is counted the instance's way (``configuration.statuses.max_characters``, 500 unless
  :func:`set_max_characters` set another, served in ``/api/v2/instance`` and enforced; every
  URL counts 23; a mention counts its local part) and overflow is a 422;
* errors are ``{"error": "..."}``: Doorkeeper's 401 texts for invalid, expired and revoked
  tokens, 422 for validation, 404 ``Record not found``;
* one rate-limit window per account (300 requests per 5 minutes) plus a delete window (30 per
  30 minutes), announced in ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` with the reset as an
  ISO 8601 time;
* lists are paged with ``max_id``/``since_id``/``min_id`` and a ``Link`` header;
* media: ``POST /api/v2/media`` (multipart ``file``, optional ``description``) answers a
  MediaAttachment, 200 when processed; an account whose extra sets ``media_processing_reads: n``
  gets 202 with ``url: null`` and ``GET /api/v1/media/{id}`` answers 206 for the next ``n`` reads,
  as a large upload does on a real instance. Uploads count against the account window and their
  own (30 per 30 minutes). A status takes up to 4 ``media_ids`` of the account's own unattached,
  processed media; anything else is the 422 Mastodon's PostStatusService raises ("Media ... not
  found or already attached to another post", "Cannot attach more than 4 files", "Cannot attach
  files that have not finished processing..."). Read back, the status lists them in
  ``media_attachments``.

Residents' comments (``state.comments``) appear as statuses replying to the official post and
mentioning the account, and as ``mention`` notifications.
"""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import grapheme
import twitter_text
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.common import SandboxError, bearer_token, gate, image_size, image_type, lost_response, state_of, sub_app
from sandbox.ratelimit import Window
from sandbox.state import Account, Comment, Post, SandboxState, utcnow

PREFIX = "/mastodon"
PLATFORM = "mastodon"
IDEMPOTENCY_TTL = 3600.0  # Mastodon keeps keys for an hour
MAX_CHARACTERS = 500
URL_CHARACTERS = 23
VISIBILITIES = ("public", "unlisted", "private", "direct")
LIMITS: dict[str, tuple[int, float]] = {"api": (300, 300.0), "statuses:delete": (30, 1800.0), "media": (30, 1800.0)}
MAX_MEDIA_ATTACHMENTS = 4
IMAGE_SIZE_LIMIT = 16 * 1024 * 1024  # Mastodon 4's default, announced in configuration.media_attachments
SUPPORTED_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
VERSION = "4.3.0"


def max_characters(state: SandboxState) -> int:
    """The instance's ``max_characters``: 500 as in stock Mastodon, unless a test set another."""
    return int(state.scratch.get(PLATFORM, {}).get("max_characters", MAX_CHARACTERS))


def set_max_characters(state: SandboxState, limit: int) -> None:
    """Make the instance one with another limit (forks and admins raise or lower it); reset restores 500."""
    if limit < 1:
        raise ValueError("max_characters must be at least 1")
    with state.lock:
        state.scratch.setdefault(PLATFORM, {})["max_characters"] = int(limit)


def _status_configuration(state: SandboxState) -> dict[str, int]:
    return {
        "max_characters": max_characters(state),
        "max_media_attachments": MAX_MEDIA_ATTACHMENTS,
        "characters_reserved_per_url": URL_CHARACTERS,
    }


_FAULT_BODIES = {
    "rate_limit": (429, "Too many requests"),
    "server_error": (503, "There was a temporary problem serving your request, please try again"),
    "expired_token": (401, "The access token expired"),
    "invalid_token": (401, "The access token is invalid"),
    "duplicate": (422, "Duplicate record"),
    "not_found": (404, "Record not found"),
    "forbidden": (403, "This action is not allowed"),
}


# --------------------------------------------------------------------------- errors and headers


def render_error(exc: SandboxError) -> Response:
    """``{"error": "..."}`` with Mastodon's status and wording for each fault."""
    status, message = exc.status, exc.message
    if exc.kind in _FAULT_BODIES:
        status, default = _FAULT_BODIES[exc.kind]
        keep = exc.kind in ("expired_token", "invalid_token", "not_found", "forbidden") and (
            exc.message.startswith("The access token") or exc.kind in ("not_found", "forbidden")
        )
        message = exc.message if keep else default
    headers = {**_rate_headers(exc.window), **exc.headers}
    if status == 401:
        headers["WWW-Authenticate"] = f'Bearer realm="Doorkeeper", error="invalid_token", error_description="{message}"'
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _rate_headers(window: Window | None) -> dict[str, str]:
    if window is None:
        return {}
    reset = datetime.fromtimestamp(window.reset_epoch, UTC).isoformat(timespec="microseconds")
    return {
        "X-RateLimit-Limit": str(window.limit),
        "X-RateLimit-Remaining": str(window.remaining),
        "X-RateLimit-Reset": reset.replace("+00:00", "Z"),
    }


def _ok(body: Any, window: Window | None, link: str | None = None) -> JSONResponse:
    headers = _rate_headers(window)
    if link:
        headers["Link"] = link
    return JSONResponse(body, headers=headers)


def _authenticate(request: Request) -> Account:
    account = state_of(request).account_by_token(PLATFORM, bearer_token(request))
    if account is None:
        raise SandboxError("invalid_token", 401, "The access token is invalid")
    if account.token_revoked:
        raise SandboxError("expired_token", 401, "The access token was revoked")
    expires = account.token_expires_at
    if expires is not None and (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) <= utcnow():
        raise SandboxError("expired_token", 401, "The access token expired")
    return account


async def _gate(request: Request, operation: str, account: Account, bucket: str = "api"):
    """The account-wide window counts every request; deletes also count against their own window."""
    if bucket != "api":
        state = state_of(request)
        window = state.limits.hit(PLATFORM, account.account_id, "api")
        if window is not None and not window.allowed:
            state.stats.record(PLATFORM, account.account_id, 429, time.time())
            raise SandboxError("rate_limit", 429, "Too many requests", window=window)
    return await gate(request, PLATFORM, operation, account, bucket=bucket)


# --------------------------------------------------------------------------- text


def countable_length(text: str) -> int:
    """Mastodon's StatusLengthValidator: URLs count 23, ``@user@domain`` counts ``@user``, graphemes."""
    out, last = [], 0
    for entity in twitter_text.extract_urls_with_indices(text):
        if not re.match(r"(?i)https?://", entity["url"]):
            continue  # Mastodon links only URLs that carry their scheme
        start, end = entity["indices"]
        out.append(text[last:start] + "x" * URL_CHARACTERS)
        last = end
    out.append(text[last:])
    counted = re.sub(r"@(\w+)@[\w.-]+\w", r"@\1", "".join(out))
    return grapheme.length(counted)


_TOKEN = re.compile(r"(?P<url>https?://[^\s<>\"]+)|(?<![\w/#])#(?P<tag>\w+)|(?<![\w/@])@(?P<user>\w+(?:@[\w.-]+\w)?)")


def _link_html(url: str) -> str:
    match = re.match(r"(?i)(https?://(?:www\.)?)(.*)", url)
    prefix, rest = (match.group(1), match.group(2)) if match else ("", url)
    shown, hidden = rest[:30], rest[30:]
    return (
        f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener" translate="no">'
        f'<span class="invisible">{html.escape(prefix)}</span>'
        f'<span class="{"ellipsis" if hidden else ""}">{html.escape(shown)}</span>'
        f'<span class="invisible">{html.escape(hidden)}</span></a>'
    )


def _line_html(line: str, base: str) -> str:
    out, last = [], 0
    for m in _TOKEN.finditer(line):
        out.append(html.escape(line[last : m.start()], quote=False))
        if m.group("url"):
            url = m.group("url").rstrip(".,;:!?)」。、")
            out.append(_link_html(url) + html.escape(m.group("url")[len(url) :], quote=False))
        elif m.group("tag"):
            tag = m.group("tag")
            out.append(
                f'<a href="{base}/tags/{html.escape(tag)}" class="mention hashtag" rel="tag">'
                f"#<span>{html.escape(tag)}</span></a>"
            )
        else:
            user = m.group("user").split("@")[0]
            out.append(
                f'<span class="h-card" translate="no"><a href="{base}/@{html.escape(user)}" '
                f'class="u-url mention">@<span>{html.escape(user)}</span></a></span>'
            )
        last = m.end()
    out.append(html.escape(line[last:], quote=False))
    return "".join(out)


def content_html(text: str, base: str) -> str:
    """Plain text as Mastodon formats it: ``<p>`` per paragraph, ``<br />`` per line break."""
    paragraphs = [p for p in re.split(r"\n{2,}", text.strip()) if p]
    return "".join("<p>" + "<br />".join(_line_html(line, base) for line in p.split("\n")) + "</p>" for p in paragraphs)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _base(request: Request) -> str:
    """The instance's root URL (the sandbox instance lives under the mount prefix)."""
    return str(request.base_url).rstrip("/") + request.scope.get("root_path", "")


# --------------------------------------------------------------------------- entities


def _resident(state: SandboxState, handle: str) -> Account:
    """The account of a resident who exists only as a name on a comment."""
    known = state.account_by_handle(PLATFORM, handle)
    if known is not None:
        return known
    with state.lock:
        residents = state.scratch.setdefault(PLATFORM, {}).setdefault("residents", {})
        if handle.lower() not in residents:
            residents[handle.lower()] = Account(PLATFORM, state.next_id(), handle, display_name=handle)
        return residents[handle.lower()]


def _account_by_id(state: SandboxState, account_id: str) -> Account | None:
    found = state.account(PLATFORM, account_id)
    if found is not None:
        return found
    for resident in state.scratch.get(PLATFORM, {}).get("residents", {}).values():
        if resident.account_id == account_id:
            return resident
    return None


def account_json(state: SandboxState, account: Account, base: str) -> dict[str, Any]:
    username = account.handle.split("@")[0]
    posts = state.account_posts(PLATFORM, account.account_id)
    avatar = f"{base}/avatars/original/missing.png"
    return {
        "id": account.account_id,
        "username": username,
        "acct": account.handle,
        "display_name": account.display_name or username,
        "locked": False,
        "bot": False,
        "discoverable": True,
        "group": False,
        "created_at": "2020-04-01T00:00:00.000Z",
        "note": "",
        "url": f"{base}/@{username}",
        "uri": f"{base}/users/{username}",
        "avatar": avatar,
        "avatar_static": avatar,
        "header": f"{base}/headers/original/missing.png",
        "header_static": f"{base}/headers/original/missing.png",
        "followers_count": account.followers,
        "following_count": 0,
        "statuses_count": len(posts),
        "last_status_at": posts[0].created_at.date().isoformat() if posts else None,
        "emojis": [],
        "fields": [],
    }


def _replies_to(state: SandboxState, status_id: str) -> list[Comment]:
    return [c for c in state.comments.get(PLATFORM, []) if c.post_id == status_id]


def status_json(state: SandboxState, post: Post, base: str) -> dict[str, Any]:
    account = _account_by_id(state, post.account_id)
    assert account is not None
    username = account.handle.split("@")[0]
    parent_account = None
    if post.reply_to:
        parent = state.post(PLATFORM, post.reply_to)
        parent_account = parent.account_id if parent else None
    metrics = post.metrics
    return {
        "id": post.post_id,
        "created_at": _iso(post.created_at),
        "in_reply_to_id": post.reply_to,
        "in_reply_to_account_id": parent_account,
        "sensitive": bool(post.extra.get("spoiler_text")),
        "spoiler_text": post.extra.get("spoiler_text", ""),
        "visibility": post.extra.get("visibility", "public"),
        "language": post.extra.get("language", "ja"),
        "uri": f"{base}/users/{username}/statuses/{post.post_id}",
        "url": f"{base}/@{username}/{post.post_id}",
        "replies_count": metrics.get("replies", 0) + len(_replies_to(state, post.post_id)),
        "reblogs_count": metrics.get("reposts", 0),
        "favourites_count": metrics.get("likes", 0),
        "quotes_count": metrics.get("quotes", 0),
        "edited_at": None,
        "favourited": False,
        "reblogged": False,
        "muted": False,
        "bookmarked": False,
        "pinned": False,
        "content": content_html(post.text, base),
        "filtered": [],
        "reblog": None,
        "application": {"name": post.extra.get("application", "Koho"), "website": None},
        "account": account_json(state, account, base),
        "media_attachments": [
            _media_json(_media_store(state)[m], base) for m in post.media if m in _media_store(state)
        ],
        "mentions": [],
        "tags": [{"name": t, "url": f"{base}/tags/{t}"} for t in re.findall(r"(?<![\w/#])#(\w+)", post.text)],
        "emojis": [],
        "card": None,
        "poll": None,
    }


def _comment_status(state: SandboxState, comment: Comment, base: str) -> dict[str, Any]:
    """A resident's reply: a status by the resident that mentions the official account."""
    official = state.account(PLATFORM, comment.account_id)
    resident = _resident(state, comment.author)
    mention = official.handle.split("@")[0] if official else comment.account_id
    post = Post(
        PLATFORM,
        comment.comment_id,
        resident.account_id,
        f"@{mention} {comment.text}",
        comment.created_at,
        reply_to=comment.post_id,
        extra={"application": "Web"},
    )
    data = status_json(state, post, base)
    data["in_reply_to_account_id"] = comment.account_id if comment.post_id else None
    if official:
        data["mentions"] = [
            {"id": official.account_id, "username": mention, "acct": official.handle, "url": f"{base}/@{mention}"}
        ]
    return data


def _find_status(state: SandboxState, status_id: str, base: str) -> dict[str, Any] | None:
    post = state.post(PLATFORM, status_id)
    if post is not None:
        return status_json(state, post, base)
    for comment in state.comments.get(PLATFORM, []):
        if comment.comment_id == status_id:
            return _comment_status(state, comment, base)
    return None


def _notification_ids(state: SandboxState, comments: list[Comment]) -> dict[str, str]:
    """Notification ids are their own sequence; assigned in the order comments arrived."""
    with state.lock:
        ids = state.scratch.setdefault(PLATFORM, {}).setdefault("notifications", {})
        for comment in comments:
            if comment.comment_id not in ids:
                ids[comment.comment_id] = state.next_id()
        return dict(ids)


# --------------------------------------------------------------------------- paging


def _limit(request: Request, default: int, high: int) -> int:
    raw = request.query_params.get("limit", "")
    return max(1, min(high, int(raw))) if raw.isdigit() else default


def _page(request: Request, items: list[tuple[int, Any]], default: int, high: int) -> tuple[list[Any], str | None]:
    """Mastodon's id paging over (id, item) pairs: newest first, ``Link`` with next and prev."""
    q = request.query_params
    limit = _limit(request, default, high)
    items = sorted(items, key=lambda pair: pair[0], reverse=True)
    if q.get("max_id", "").isdigit():
        items = [p for p in items if p[0] < int(q["max_id"])]
    if q.get("min_id", "").isdigit():
        newer = [p for p in items if p[0] > int(q["min_id"])]
        page = newer[-limit:]  # the oldest ``limit`` above min_id, still newest first
    else:
        if q.get("since_id", "").isdigit():
            items = [p for p in items if p[0] > int(q["since_id"])]
        page = items[:limit]
    links = []
    url = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
    kept = [(k, v) for k, v in q.multi_items() if k not in ("max_id", "min_id", "since_id")]
    if page and len(page) == limit:
        links.append(f'<{url}?{urlencode([*kept, ("max_id", page[-1][0])])}>; rel="next"')
    if page:
        links.append(f'<{url}?{urlencode([*kept, ("min_id", page[0][0])])}>; rel="prev"')
    return [item for _, item in page], ", ".join(links) or None


# --------------------------------------------------------------------------- the app


def create_app(state: SandboxState) -> FastAPI:
    for bucket, (limit, seconds) in LIMITS.items():
        state.limits.default(PLATFORM, bucket, limit, seconds)
    app = sub_app("Mastodon (sandbox)", render_error)

    @app.post("/api/v1/statuses")
    async def post_status(request: Request) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "publish", account)
        params = await _status_params(request)
        base = _base(request)
        key = request.headers.get("idempotency-key")
        with state.lock:
            earlier = state.remembered(PLATFORM, account.account_id, key, IDEMPOTENCY_TTL) if key else None
            post = state.post(PLATFORM, earlier) if earlier else None
            if post is None:
                params["media_ids"] = _check_media(state, account, params.get("media_ids"))
                _validate_status(state, params)
                post = _store_status(state, account, params)
                for media_id in post.media:
                    _media_store(state)[media_id]["status_id"] = post.post_id
                if key:
                    state.remember(PLATFORM, account.account_id, key, post.post_id)
        if fault is not None:
            return await lost_response(fault)
        return _ok(status_json(state, post, base), window)

    @app.post("/api/v2/media")
    async def upload_media(request: Request) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "media", account, bucket="media")
        form = await _media_form(request)
        upload = form.get("file")
        data = await upload.read() if hasattr(upload, "read") else b""
        item = _store_media(state, account, data, str(form.get("description") or "") or None)
        if fault is not None:
            return await lost_response(fault)
        body = _media_json(item, _base(request))
        return JSONResponse(body, status_code=202 if body["url"] is None else 200, headers=_rate_headers(window))

    @app.get("/api/v1/media/{media_id}")
    async def get_media(request: Request, media_id: str) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "read", account)
        item = _media_store(state).get(media_id)
        if item is None or item["account_id"] != account.account_id:
            raise SandboxError("not_found", 404, "Record not found", window=window)
        if fault is not None:
            return await lost_response(fault)
        with state.lock:
            processing = item["pending_reads"] > 0
            item["pending_reads"] = max(0, item["pending_reads"] - 1)
        body = _media_json(item, _base(request), processing=processing)
        return JSONResponse(body, status_code=206 if processing else 200, headers=_rate_headers(window))

    @app.get("/api/v1/statuses/{status_id}")
    async def get_status(request: Request, status_id: str) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "read", account)
        if fault is not None:
            return await lost_response(fault)
        found = _find_status(state, status_id, _base(request))
        if found is None:
            raise SandboxError("not_found", 404, "Record not found", window=window)
        return _ok(found, window)

    @app.delete("/api/v1/statuses/{status_id}")
    async def delete_status(request: Request, status_id: str) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "delete", account, bucket="statuses:delete")
        post = state.post(PLATFORM, status_id)
        if post is None:
            raise SandboxError("not_found", 404, "Record not found", window=window)
        if post.account_id != account.account_id:
            raise SandboxError("forbidden", 403, "This action is not allowed", window=window)
        body = {**status_json(state, post, _base(request)), "text": post.text}
        post.deleted = True
        if fault is not None:
            return await lost_response(fault)
        return _ok(body, window)

    @app.get("/api/v1/statuses/{status_id}/context")
    async def status_context(request: Request, status_id: str) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "comments", account)
        if fault is not None:
            return await lost_response(fault)
        base = _base(request)
        if _find_status(state, status_id, base) is None:
            raise SandboxError("not_found", 404, "Record not found", window=window)
        return _ok(_context(state, status_id, base), window)

    @app.get("/api/v1/accounts/verify_credentials")
    async def verify_credentials(request: Request) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "verify", account)
        if fault is not None:
            return await lost_response(fault)
        body = account_json(state, account, _base(request))
        body["source"] = {
            "privacy": "public",
            "sensitive": False,
            "language": "ja",
            "note": "",
            "fields": [],
            "follow_requests_count": 0,
        }
        return _ok(body, window)

    @app.get("/api/v1/accounts/{account_id}")
    async def get_account(request: Request, account_id: str) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "metrics", account)
        if fault is not None:
            return await lost_response(fault)
        found = _account_by_id(state, account_id)
        if found is None:
            raise SandboxError("not_found", 404, "Record not found", window=window)
        return _ok(account_json(state, found, _base(request)), window)

    @app.get("/api/v1/accounts/{account_id}/statuses")
    async def account_statuses(request: Request, account_id: str) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "read", account)
        if _account_by_id(state, account_id) is None:
            raise SandboxError("not_found", 404, "Record not found", window=window)
        base = _base(request)
        exclude_replies = request.query_params.get("exclude_replies", "").lower() in ("1", "true")
        posts = [p for p in state.account_posts(PLATFORM, account_id) if not (exclude_replies and p.reply_to)]
        items, link = _page(request, [(int(p.post_id), p) for p in posts], 20, 40)
        body = [status_json(state, p, base) for p in items]
        if fault is not None:
            return await lost_response(fault)
        return _ok(body, window, link)

    @app.get("/api/v1/notifications")
    async def notifications(request: Request) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "comments", account)
        types = request.query_params.getlist("types[]")
        excluded = request.query_params.getlist("exclude_types[]")
        comments = state.account_comments(PLATFORM, account.account_id)
        ids = _notification_ids(state, comments)
        wanted = (not types or "mention" in types) and "mention" not in excluded
        items = [(int(ids[c.comment_id]), c) for c in comments] if wanted else []
        page, link = _page(request, items, 40, 80)
        base = _base(request)
        body = [_notification(state, ids[c.comment_id], c, base) for c in page]
        if fault is not None:
            return await lost_response(fault)
        return _ok(body, window, link)

    @app.get("/api/v2/search")
    async def search(request: Request) -> Response:
        account = _authenticate(request)
        fault, window = await _gate(request, "search", account)
        q = request.query_params.get("q", "").strip()
        kind = request.query_params.get("type")
        limit = _limit(request, 20, 40)
        raw_offset = request.query_params.get("offset", "")
        offset = int(raw_offset) if raw_offset.isdigit() else 0
        base = _base(request)
        accounts = []
        if q and kind in (None, "accounts"):
            hits = [a for a in state.platform_accounts(PLATFORM) if _matches(q, a)]
            hits.sort(key=lambda a: -a.followers)
            accounts = [account_json(state, a, base) for a in hits[offset : offset + limit]]
        if fault is not None:
            return await lost_response(fault)
        return _ok({"accounts": accounts, "statuses": [], "hashtags": []}, window)

    @app.get("/api/v2/instance")
    async def instance(request: Request) -> Response:
        base, domain = _base(request), request.url.netloc
        return JSONResponse(
            {
                "domain": domain,
                "title": "Koho sandbox",
                "version": VERSION,
                "api_versions": {"mastodon": 2},
                "source_url": "https://github.com/mastodon/mastodon",
                "description": "A local stand-in for a Mastodon instance.",
                "usage": {"users": {"active_month": len(state.platform_accounts(PLATFORM))}},
                "thumbnail": {"url": f"{base}/packs/media/images/preview.png"},
                "languages": ["ja", "en"],
                "configuration": {
                    "urls": {"streaming": f"ws://{domain}"},
                    "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
                    "statuses": _status_configuration(state),
                    "media_attachments": {
                        "supported_mime_types": list(SUPPORTED_IMAGE_TYPES),
                        "image_size_limit": IMAGE_SIZE_LIMIT,
                        "image_matrix_limit": 33177600,
                    },
                    "polls": {
                        "max_options": 4,
                        "max_characters_per_option": 50,
                        "min_expiration": 300,
                        "max_expiration": 2629746,
                    },
                    "translation": {"enabled": False},
                },
                "registrations": {"enabled": False, "approval_required": False, "message": None},
                "contact": {"email": "", "account": None},
                "rules": [],
            }
        )

    @app.get("/api/v1/instance")
    async def instance_v1(request: Request) -> Response:
        """Deprecated but still served by Mastodon; clients (Mastodon.py) read the version here."""
        domain = request.url.netloc
        return JSONResponse(
            {
                "uri": domain,
                "title": "Koho sandbox",
                "short_description": "A local stand-in for a Mastodon instance.",
                "description": "",
                "email": "",
                "version": VERSION,
                "urls": {"streaming_api": f"ws://{domain}"},
                "stats": {
                    "user_count": len(state.platform_accounts(PLATFORM)),
                    "status_count": len(state.posts.get(PLATFORM, {})),
                    "domain_count": 1,
                },
                "thumbnail": None,
                "languages": ["ja", "en"],
                "registrations": False,
                "approval_required": False,
                "invites_enabled": False,
                "configuration": {"statuses": _status_configuration(state)},
                "contact_account": None,
                "rules": [],
            }
        )

    return app


async def _status_params(request: Request) -> dict[str, Any]:
    """The status form: JSON or form-encoded (``media_ids[]`` repeated), as Mastodon accepts both."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise SandboxError("invalid", 400, "Error while parsing request body") from None
        if not isinstance(body, dict):
            raise SandboxError("invalid", 400, "Error while parsing request body")
        return body
    form = await request.form()
    params: dict[str, Any] = {k: v for k, v in form.items() if not k.endswith("[]")}
    params["media_ids"] = form.getlist("media_ids[]")
    return params


def _media_store(state: SandboxState) -> dict[str, dict[str, Any]]:
    with state.lock:
        return state.scratch.setdefault(PLATFORM, {}).setdefault("media", {})


async def _media_form(request: Request) -> Any:
    try:
        return await request.form()
    except (ValueError, AssertionError):
        raise SandboxError("invalid", 422, "Validation failed: File can't be blank") from None


def _store_media(state: SandboxState, account: Account, data: bytes, description: str | None) -> dict[str, Any]:
    """Keep one upload, refused the way Mastodon's MediaAttachment validations refuse it (422)."""
    if not data:
        raise SandboxError("invalid", 422, "Validation failed: File can't be blank")
    mime = image_type(data)
    if mime not in SUPPORTED_IMAGE_TYPES:
        raise SandboxError("invalid", 422, "Validation failed: File content type is invalid, File is invalid")
    if len(data) > IMAGE_SIZE_LIMIT:
        raise SandboxError("invalid", 422, "Validation failed: File file size must be less than 16 MB")
    width, height = image_size(data)
    item = {
        "id": state.next_id(),
        "account_id": account.account_id,
        "mime": mime,
        "size": len(data),
        "w": width,
        "h": height,
        "description": description,
        "status_id": None,
        "pending_reads": int(account.extra.get("media_processing_reads", 0)),
    }
    with state.lock:
        _media_store(state)[item["id"]] = item
    return item


def _media_json(item: dict[str, Any], base: str, *, processing: bool | None = None) -> dict[str, Any]:
    """A MediaAttachment; ``url`` is null while the instance is still processing the file."""
    processing = item["pending_reads"] > 0 if processing is None else processing
    ext = item["mime"].split("/")[1]
    path = f"{base}/system/media_attachments/files/{item['id']}"
    meta = {
        "width": item["w"],
        "height": item["h"],
        "size": f"{item['w']}x{item['h']}",
        "aspect": round(item["w"] / item["h"], 4) if item["h"] else None,
    }
    return {
        "id": item["id"],
        "type": "image",
        "url": None if processing else f"{path}/original/{item['id']}.{ext}",
        "preview_url": f"{path}/small/{item['id']}.{ext}",
        "remote_url": None,
        "text_url": None,
        "meta": {"original": meta, "small": meta},
        "description": item["description"],
        "blurhash": "UBL_:rOpGG-oBUNG,qRj2so|=eE1w^n4S5NH",
    }


def _check_media(state: SandboxState, account: Account, media_ids: Any) -> list[str]:
    """Mastodon's PostStatusService#validate_media!: at most 4, own, unattached, processed."""
    if not media_ids:
        return []
    ids = [str(m) for m in (media_ids if isinstance(media_ids, list) else [media_ids])]
    if len(ids) > MAX_MEDIA_ATTACHMENTS:
        raise SandboxError("invalid", 422, f"Cannot attach more than {MAX_MEDIA_ATTACHMENTS} files")
    store = _media_store(state)
    missing = [
        m
        for m in ids
        if m not in store or store[m]["account_id"] != account.account_id or store[m]["status_id"] is not None
    ]
    if missing:
        raise SandboxError("invalid", 422, f"Media {', '.join(missing)} not found or already attached to another post")
    if any(store[m]["pending_reads"] > 0 for m in ids):
        raise SandboxError(
            "invalid", 422, "Cannot attach files that have not finished processing. Try again in a moment!"
        )
    return ids


def _validate_status(state: SandboxState, params: dict[str, Any]) -> None:
    text = str(params.get("status") or "")
    if not text.strip() and not params.get("media_ids"):
        raise SandboxError("invalid", 422, "Validation failed: Text can't be blank")
    total = countable_length(text) + countable_length(str(params.get("spoiler_text") or ""))
    limit = max_characters(state)
    if total > limit:
        # StatusLengthValidator's words (locale statuses.over_character_limit), as Rails joins them.
        raise SandboxError("too_long", 422, f"Validation failed: Text character limit of {limit} exceeded")
    visibility = params.get("visibility") or "public"
    if visibility not in VISIBILITIES:
        raise SandboxError("invalid", 422, "Validation failed: Visibility is not included in the list")
    reply_to = params.get("in_reply_to_id")
    if reply_to and _find_status(state, str(reply_to), "") is None:
        raise SandboxError("not_found", 404, "Record not found")


def _store_status(state: SandboxState, account: Account, params: dict[str, Any]) -> Post:
    text = str(params["status"])
    urls = [u["url"] for u in twitter_text.extract_urls_with_indices(text) if u["url"].lower().startswith("http")]
    return state.add_post(
        Post(
            platform=PLATFORM,
            post_id=state.next_id(),
            account_id=account.account_id,
            text=text,
            created_at=utcnow(),
            reply_to=str(params["in_reply_to_id"]) if params.get("in_reply_to_id") else None,
            link=urls[0] if urls else None,
            media=list(params.get("media_ids") or []),
            extra={
                "visibility": params.get("visibility") or "public",
                "language": params.get("language") or "ja",
                "spoiler_text": params.get("spoiler_text") or "",
            },
        )
    )


def _context(state: SandboxState, status_id: str, base: str) -> dict[str, Any]:
    ancestors, current, seen = [], state.post(PLATFORM, status_id), {status_id}
    while current is not None and current.reply_to and current.reply_to not in seen:
        seen.add(current.reply_to)
        parent = state.post(PLATFORM, current.reply_to)
        if parent is None:
            break
        ancestors.insert(0, status_json(state, parent, base))
        current = parent
    own = [p for p in list(state.posts.get(PLATFORM, {}).values()) if p.reply_to == status_id and not p.deleted]
    descendants = [status_json(state, p, base) for p in own]
    descendants += [_comment_status(state, c, base) for c in _replies_to(state, status_id)]
    descendants.sort(key=lambda s: int(s["id"]))
    return {"ancestors": ancestors, "descendants": descendants}


def _notification(state: SandboxState, notification_id: str, comment: Comment, base: str) -> dict[str, Any]:
    status = _comment_status(state, comment, base)
    return {
        "id": notification_id,
        "type": "mention",
        "created_at": status["created_at"],
        "group_key": f"ungrouped-{notification_id}",
        "account": status["account"],
        "status": status,
    }


def _matches(query: str, account: Account) -> bool:
    """Roughly Mastodon's account search: the query in the username, acct or display name."""
    q = query.lstrip("@").casefold()
    q_user = q.split("@")[0]
    names = (account.handle.casefold(), (account.display_name or "").casefold())
    return any(q in n or (q_user and q_user in n) for n in names if n)
