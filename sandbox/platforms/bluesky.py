"""Bluesky (AT Protocol) as the sandbox serves it, under ``/bluesky`` (the real entryway is ``https://bsky.social``).

What is faithful and why it matters to Koho:

* sessions: ``com.atproto.server.createSession`` takes the handle (or DID) and the **app password**
  and issues JWT-shaped ``accessJwt`` (2 hours) and ``refreshJwt`` (90 days) with ``exp`` claims;
  ``refreshSession`` takes the refresh token as bearer and rotates it. createSession is limited
  to 30 per 5 minutes per account, so a client that logs in per post is caught here;
* every error is XRPC's ``{"error", "message"}``; an expired access token is **400**
  ``ExpiredToken`` and a garbled one 400 ``InvalidToken`` (not 401), a missing one 401
  ``AuthenticationRequired``;
* writes cost points (create 3, delete 1) from 5,000 per hour, announced in ``RateLimit-Limit``,
  ``RateLimit-Remaining``, ``RateLimit-Reset`` (epoch seconds) and ``RateLimit-Policy``; 429 is
  ``RateLimitExceeded``;
* records: ``createRecord`` validates the post lexicon (text at most 300 graphemes and 3,000
  UTF-8 bytes, refused in the validator's words, ``createdAt`` required) but, like the
  reference PDS, does **not** check facet byte ranges: wrong offsets are stored as sent.
  Record keys are TIDs, CIDs are real CIDv1 strings, and an explicit ``rkey`` that already
  exists answers 500 as the reference PDS does;
* reads: ``listRecords`` (newest first, ``cursor`` = last rkey, ``reverse``), ``getRecord``,
  ``getPosts`` (like/repost/reply/quote counts), ``getAuthorFeed``, ``listNotifications``
  (residents' replies and mentions, newest first, with ``reasons``), ``searchActors``,
  ``getProfile`` and ``getSession``. ``getProfile`` is served so that the atproto SDK's
  ``login()`` works unchanged; a ``server_error`` fault on it answers 502 ``UpstreamFailure``,
  as a PDS does when the AppView behind it is down.

Residents' comments (``state.comments``) appear as reply or mention notifications; a resident
who is only a name gets a stable synthetic handle and DID.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grapheme
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.common import SandboxError, bearer_token, gate, lost_response, state_of, sub_app
from sandbox.faults import Fault
from sandbox.ratelimit import Window
from sandbox.state import Account, Comment, Post, SandboxState, utcnow

PREFIX = "/bluesky"
PLATFORM = "bluesky"
POST_NSID = "app.bsky.feed.post"
ACCESS_TTL = timedelta(hours=2)
REFRESH_TTL = timedelta(days=90)
MAX_GRAPHEMES = 300
MAX_TEXT_BYTES = 3000
MAX_IMAGE_BYTES = 1_000_000
MAX_BLOB_BYTES = 50_000_000
SERVICE_DID = "did:web:sandbox.bsky.invalid"
ACCESS_SCOPES = frozenset({"com.atproto.access", "com.atproto.appPass", "com.atproto.appPassPrivileged"})
REFRESH_SCOPE = "com.atproto.refresh"
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"

#: (limit, window seconds) per bucket, from docs.bsky.app "Rate Limits". Writes are points.
LIMITS: dict[str, tuple[int, float]] = {
    "write": (5000, 3600),
    "session": (30, 300),
    "read": (3000, 300),
}
WRITE_COST = {"create": 3, "update": 2, "delete": 1}

_HANDLE = re.compile(
    r"^(?=.{3,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)


@dataclass
class XrpcError(SandboxError):
    """A :class:`SandboxError` carrying the XRPC error name (``InvalidRequest``, ``ExpiredToken``...)."""

    error: str = "InvalidRequest"


# --------------------------------------------------------------------------- errors and headers

_FAULTS = {
    "rate_limit": (429, "RateLimitExceeded", "Rate Limit Exceeded"),
    "expired_token": (400, "ExpiredToken", "Token has expired"),
    "invalid_token": (400, "InvalidToken", "Token could not be verified"),
    # Bluesky has no duplicate-content rejection; the nearest thing a PDS says is that a record exists.
    "duplicate": (400, "InvalidRequest", "Record already exists"),
}


def render_error(exc: SandboxError) -> Response:
    if isinstance(exc, XrpcError):
        status, name, message = exc.status, exc.error, exc.message
    elif exc.kind in _FAULTS:
        status, name, message = _FAULTS[exc.kind]
    elif exc.kind == "server_error":
        status, name, message = exc.status, "InternalServerError", "Internal Server Error"
    else:
        status, name, message = exc.status, "InvalidRequest", exc.message
    headers = {**_rate_headers(exc.window), **exc.headers}
    return JSONResponse({"error": name, "message": message}, status_code=status, headers=headers)


def _rate_headers(window: Window | None, policy: str | None = None) -> dict[str, str]:
    if window is None:
        return {}
    headers = {
        "RateLimit-Limit": str(window.limit),
        "RateLimit-Remaining": str(window.remaining),
        "RateLimit-Reset": str(math.ceil(window.reset_epoch)),
    }
    if policy:
        headers["RateLimit-Policy"] = policy
    return headers


def _policy(state: SandboxState, bucket: str | None) -> str | None:
    settings = state.limits.settings(PLATFORM, bucket) if bucket else None
    return f"{settings[0]};w={math.ceil(settings[1])}" if settings else None


async def _gate(
    request: Request, operation: str, account: Account | None, *, bucket: str | None = None, cost: int = 1
) -> tuple[Fault | None, dict[str, str]]:
    """:func:`gate`, plus the ``RateLimit-*`` headers (policy included) for the answer."""
    state = state_of(request)
    try:
        fault, window = await gate(request, PLATFORM, operation, account, bucket=bucket, cost=cost)
    except SandboxError as exc:
        if exc.window is not None and exc.kind == "rate_limit" and bucket:
            exc.headers.setdefault("RateLimit-Policy", _policy(state, bucket) or "")
        raise
    return fault, _rate_headers(window, _policy(state, bucket))


def _invalid(message: str, error: str = "InvalidRequest", status: int = 400) -> XrpcError:
    return XrpcError("invalid", status, message, error=error)


def _ok(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, headers=headers or {})


# --------------------------------------------------------------------------- identifiers


def _iso(moment: datetime) -> str:
    """AT Protocol datetimes as Bluesky writes them: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None  # atproto datetimes must carry a timezone


def _tid(micros: int, clock_id: int) -> str:
    """A TID record key: 53 bits of microseconds and 10 bits of clock id, base32-sortable."""
    value = (micros << 10) | (clock_id & 0x3FF)
    chars = []
    for _ in range(13):
        chars.append(TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _cid(data: bytes, codec: int = 0x71) -> str:
    """A CIDv1 (sha2-256) in base32: dag-cbor (0x71) for records, raw (0x55) for blobs."""
    raw = bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


def _scratch(state: SandboxState) -> dict[str, Any]:
    """Router state that lives until the sandbox is reset (a reset invalidates every session)."""
    with state.lock:
        data = state.scratch.setdefault(PLATFORM, {})
        if "secret" not in data:
            data.update(
                secret=secrets.token_bytes(32),
                clock_id=secrets.randbelow(1024),
                last_micros=0,
                refresh_jtis={},
                logins={},
                login_attempts={},
                refreshes={},
                blobs={},
            )
        return data


def _next_rkey(state: SandboxState) -> str:
    data = _scratch(state)
    with state.lock:
        micros = max(time.time_ns() // 1000, data["last_micros"] + 1)
        data["last_micros"] = micros
        return _tid(micros, data["clock_id"])


def session_counts(state: SandboxState, did: str) -> dict[str, int]:
    """How many times an account logged in and refreshed (tests use it to prove sessions are kept)."""
    data = _scratch(state)
    return {
        "logins": data["logins"].get(did, 0),
        "login_attempts": data["login_attempts"].get(did, 0),
        "refreshes": data["refreshes"].get(did, 0),
    }


# --------------------------------------------------------------------------- sessions


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(state: SandboxState, payload: dict[str, Any], typ: str) -> str:
    header = _b64url(json.dumps({"typ": typ, "alg": "HS256"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(_scratch(state)["secret"], f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64url(signature)}"


def _verify(state: SandboxState, token: str) -> dict[str, Any] | None:
    """The token's claims when the sandbox signed it (since its last reset), else ``None``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    expected = hmac.new(_scratch(state)["secret"], f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_b64url_decode(parts[2]), expected):
            return None
        claims = json.loads(_b64url_decode(parts[1]))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None


def _expiry(account: Account, ttl: timedelta, now: datetime) -> datetime:
    """Session lifetime, capped by the account's ``token_expires_at`` (tests shorten sessions that way)."""
    expires = now + ttl
    cap = account.token_expires_at
    if cap is not None:
        cap = cap if cap.tzinfo else cap.replace(tzinfo=UTC)
        expires = min(expires, cap)
    return expires


def _issue(state: SandboxState, account: Account, request: Request) -> dict[str, Any]:
    now = utcnow()
    access_exp = _expiry(account, ACCESS_TTL, now)
    refresh_exp = _expiry(account, REFRESH_TTL, now)
    jti = secrets.token_urlsafe(24)
    common = {"sub": account.account_id, "aud": SERVICE_DID, "iat": int(now.timestamp())}
    access = _sign(state, {"scope": "com.atproto.appPass", **common, "exp": int(access_exp.timestamp())}, "at+jwt")
    refresh = _sign(
        state, {"scope": REFRESH_SCOPE, **common, "jti": jti, "exp": int(refresh_exp.timestamp())}, "refresh+jwt"
    )
    with state.lock:
        _scratch(state)["refresh_jtis"][jti] = account.account_id
    return {
        "did": account.account_id,
        "handle": account.handle,
        "accessJwt": access,
        "refreshJwt": refresh,
        "active": True,
        "didDoc": _did_doc(account, request),
    }


def _did_doc(account: Account, request: Request) -> dict[str, Any]:
    """The DID document a PDS returns with a session; its service endpoint is this sandbox."""
    endpoint = f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": account.account_id,
        "alsoKnownAs": [f"at://{account.handle}"],
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": endpoint}],
    }


def _authenticate(request: Request, *, refresh: bool = False) -> tuple[Account, dict[str, Any]]:
    """The account behind the bearer token, with the token's claims; XRPC's own auth errors otherwise."""
    state = state_of(request)
    token = bearer_token(request)
    if not token:
        raise XrpcError("invalid_token", 401, "Authentication Required", error="AuthenticationRequired")
    claims = _verify(state, token)
    if claims is None:
        raise XrpcError("invalid_token", 400, "Token could not be verified", error="InvalidToken")
    scope = claims.get("scope")
    if (refresh and scope != REFRESH_SCOPE) or (not refresh and scope not in ACCESS_SCOPES):
        raise XrpcError("invalid_token", 400, "Bad token scope", error="InvalidToken")
    account = state.account(PLATFORM, str(claims.get("sub")))
    if account is None:
        raise XrpcError("invalid_token", 400, "Token could not be verified", error="InvalidToken")
    if float(claims.get("exp", 0)) <= time.time():
        raise XrpcError("expired_token", 400, "Token has expired", error="ExpiredToken")
    if account.token_revoked or (refresh and claims.get("jti") not in _scratch(state)["refresh_jtis"]):
        raise XrpcError("expired_token", 400, "Token has been revoked", error="ExpiredToken")
    return account, claims


def _optional_auth(request: Request) -> Account | None:
    """Public reads: anonymous is fine, but a token that is sent must be valid."""
    if bearer_token(request) is None:
        return None
    return _authenticate(request)[0]


def _find_account(state: SandboxState, identifier: str) -> Account | None:
    identifier = identifier.strip().lstrip("@")
    if identifier.startswith("did:"):
        return state.account(PLATFORM, identifier)
    return state.account_by_handle(PLATFORM, identifier)


def _own_repo(state: SandboxState, account: Account, repo: Any) -> None:
    if not isinstance(repo, str) or not repo:
        raise _invalid('Input must have the property "repo"')
    target = _find_account(state, repo)
    if target is None:
        raise _invalid(f"Could not find repo: {repo}")
    if target.account_id != account.account_id:
        raise XrpcError("forbidden", 401, "Authentication Required", error="AuthenticationRequired")


# --------------------------------------------------------------------------- request parsing


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise _invalid("Unable to parse request body as JSON") from None
    if not isinstance(body, dict):
        raise _invalid("Input must be an object")
    return body


def _limit(request: Request, default: int, high: int = 100) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid("limit must be an integer") from None
    if not 1 <= value <= high:
        raise _invalid(f"limit can not be {'less than 1' if value < 1 else f'greater than {high}'}")
    return value


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise _invalid(f'Params must have the property "{name}"')
    return value


def _split_uri(uri: str) -> tuple[str, str, str] | None:
    """``at://repo/collection/rkey`` -> (repo, collection, rkey)."""
    if not uri.startswith("at://"):
        return None
    parts = uri[5:].split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


# --------------------------------------------------------------------------- posts as records


def _record_of(post: Post) -> dict[str, Any]:
    """The stored record; posts seeded directly into the state (demo) get one made up from their fields."""
    record = post.extra.get("record")
    if record is None:
        record = {"$type": POST_NSID, "text": post.text, "createdAt": _iso(post.created_at), "langs": ["ja"]}
        post.extra["record"] = record
    return record


def _rkey_of(post: Post) -> str:
    rkey = post.extra.get("rkey")
    if rkey is None:
        split = _split_uri(post.post_id)
        micros = int(post.created_at.timestamp() * 1_000_000)
        rkey = split[2] if split else _tid(micros, int(hashlib.sha256(post.post_id.encode()).hexdigest(), 16) % 1024)
        post.extra["rkey"] = rkey
    return rkey


def _uri_of(post: Post) -> str:
    return post.post_id if post.post_id.startswith("at://") else f"at://{post.account_id}/{POST_NSID}/{_rkey_of(post)}"


def _cid_of(post: Post) -> str:
    cid = post.extra.get("cid")
    if cid is None:
        cid = _cid(json.dumps(_record_of(post), sort_keys=True, ensure_ascii=False).encode())
        post.extra["cid"] = cid
    return cid


def _indexed_at(post: Post) -> str:
    return post.extra.get("indexed_at") or _iso(post.created_at)


def _find_post(state: SandboxState, uri: str) -> Post | None:
    post = state.post(PLATFORM, uri)
    if post is not None:
        return post
    with state.lock:
        candidates = list(state.posts.get(PLATFORM, {}).values())
    return next((p for p in candidates if not p.deleted and _uri_of(p) == uri), None)


def _own_posts(state: SandboxState, did: str) -> list[Post]:
    """Newest first by record key, as a repo lists them."""
    return sorted(state.account_posts(PLATFORM, did), key=_rkey_of, reverse=True)


def _reply_count(state: SandboxState, post: Post) -> int:
    uri = _uri_of(post)
    comments = sum(1 for c in state.comments.get(PLATFORM, []) if c.post_id in (uri, post.post_id))
    with state.lock:
        own = sum(1 for p in state.posts.get(PLATFORM, {}).values() if not p.deleted and p.reply_to == uri)
    return post.metrics.get("replies", 0) + comments + own


# --------------------------------------------------------------------------- record validation


def _validate_post(state: SandboxState, did: str, record: Any) -> dict[str, Any]:
    """The app.bsky.feed.post lexicon checks the reference PDS applies (facet ranges are not checked)."""
    prefix = "Invalid app.bsky.feed.post record: "
    if not isinstance(record, dict):
        raise _invalid(prefix + "Record must be an object")
    if record.get("$type") != POST_NSID:
        raise _invalid(f"Invalid $type: expected {POST_NSID}, got {record.get('$type')}")
    text = record.get("text")
    if not isinstance(text, str):
        raise _invalid(prefix + 'Record must have the property "text"')
    # The lexicon's two limits, in the order and the words of the PDS's validator: maxLength
    # counts UTF-8 bytes ("string too big"), maxGraphemes user-perceived characters.
    size = len(text.encode("utf-8"))
    if size > MAX_TEXT_BYTES:
        raise _invalid(prefix + f"string too big (maximum {MAX_TEXT_BYTES}, got {size}) at $.record.text")
    count = grapheme.length(text)
    if count > MAX_GRAPHEMES:
        raise _invalid(prefix + f"grapheme too big (maximum {MAX_GRAPHEMES}, got {count}) at $.record.text")
    if "createdAt" not in record:
        raise _invalid(prefix + 'Record must have the property "createdAt"')
    if _parse_datetime(record["createdAt"]) is None:
        raise _invalid(prefix + "Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)")
    langs = record.get("langs", [])
    if not isinstance(langs, list) or len(langs) > 3:
        raise _invalid(prefix + "Record/langs must not have more than 3 elements")
    _validate_facets(prefix, record.get("facets", []))
    _validate_reply(prefix, record.get("reply"))
    _validate_embed(state, did, prefix, record.get("embed"))
    return record


def _validate_facets(prefix: str, facets: Any) -> None:
    if not isinstance(facets, list):
        raise _invalid(prefix + "Record/facets must be an array")
    for i, facet in enumerate(facets):
        index = facet.get("index") if isinstance(facet, dict) else None
        if not isinstance(index, dict):
            raise _invalid(prefix + f'Record/facets/{i} must have the property "index"')
        for key in ("byteStart", "byteEnd"):
            value = index.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _invalid(prefix + f'Record/facets/{i}/index must have the property "{key}"')
        if not isinstance(facet.get("features"), list):
            raise _invalid(prefix + f'Record/facets/{i} must have the property "features"')


def _validate_reply(prefix: str, reply: Any) -> None:
    if reply is None:
        return
    for key in ("root", "parent"):
        ref = reply.get(key) if isinstance(reply, dict) else None
        if not isinstance(ref, dict) or not isinstance(ref.get("uri"), str) or not isinstance(ref.get("cid"), str):
            raise _invalid(prefix + f'Record/reply must have the property "{key}"')


def _validate_embed(state: SandboxState, did: str, prefix: str, embed: Any) -> None:
    if embed is None:
        return
    if not isinstance(embed, dict):
        raise _invalid(prefix + "Record/embed must be an object")
    kind = embed.get("$type")
    if kind == "app.bsky.embed.images":
        images = embed.get("images")
        if not isinstance(images, list) or not images:
            raise _invalid(prefix + 'Record/embed must have the property "images"')
        if len(images) > 4:
            raise _invalid(prefix + "Record/embed/images must not have more than 4 elements")
        blobs = _scratch(state)["blobs"]
        for i, image in enumerate(images):
            blob = image.get("image") if isinstance(image, dict) else None
            link = (blob or {}).get("ref", {}).get("$link") if isinstance(blob, dict) else None
            if not isinstance(image, dict) or not isinstance(image.get("alt"), str) or link is None:
                raise _invalid(prefix + f'Record/embed/images/{i} must have the properties "image" and "alt"')
            stored = blobs.get(link)
            if stored is None or stored["did"] != did:
                raise _invalid(f"Could not find blob: {link}", error="BlobNotFound")
            if stored["size"] > MAX_IMAGE_BYTES:
                raise _invalid(
                    f"This file is too large. It is {stored['size']:,} bytes but the maximum size is "
                    f"{MAX_IMAGE_BYTES:,} bytes.",
                    error="BlobTooLarge",
                )
    elif kind == "app.bsky.embed.external":
        external = embed.get("external")
        if not isinstance(external, dict) or not all(isinstance(external.get(k), str) for k in ("uri", "title")):
            raise _invalid(prefix + 'Record/embed/external must have the properties "uri", "title" and "description"')
    elif kind not in ("app.bsky.embed.record", "app.bsky.embed.recordWithMedia", "app.bsky.embed.video"):
        raise _invalid(prefix + 'Record/embed must be an object which includes the "$type" property')


def _first_link(record: dict[str, Any]) -> str | None:
    for facet in record.get("facets", []):
        for feature in facet.get("features", []):
            if feature.get("$type") == "app.bsky.richtext.facet#link":
                return feature.get("uri")
    embed = record.get("embed") or {}
    if embed.get("$type") == "app.bsky.embed.external":
        return embed["external"].get("uri")
    return None


def _media(record: dict[str, Any]) -> list[str]:
    embed = record.get("embed") or {}
    if embed.get("$type") != "app.bsky.embed.images":
        return []
    return [image["image"]["ref"]["$link"] for image in embed["images"]]


# --------------------------------------------------------------------------- views


def _resident(state: SandboxState, author: str) -> tuple[str, str, str]:
    """(did, handle, display name) for a comment's author: an account if one matches, else a stable stand-in."""
    known = state.account_by_handle(PLATFORM, author)
    if known is not None:
        return known.account_id, known.handle, known.display_name or known.handle
    handle = author.lstrip("@").lower() if _HANDLE.match(author.lstrip("@")) else None
    digest = hashlib.sha256(author.encode("utf-8")).digest()
    handle = handle or f"resident-{digest[:4].hex()}.bsky.social"
    did = "did:plc:" + base64.b32encode(digest).decode("ascii").lower()[:24]
    return did, handle, author


def _profile_basic(account: Account) -> dict[str, Any]:
    return {
        "did": account.account_id,
        "handle": account.handle,
        "displayName": account.display_name or account.handle,
        "labels": [],
        "createdAt": account.extra.get("created_at", "2023-04-01T00:00:00.000Z"),
    }


def _profile_view(account: Account) -> dict[str, Any]:
    return {
        **_profile_basic(account),
        "description": account.extra.get("description", ""),
        "indexedAt": account.extra.get("created_at", "2023-04-01T00:00:00.000Z"),
    }


def _profile_detailed(state: SandboxState, account: Account) -> dict[str, Any]:
    return {
        **_profile_view(account),
        "followersCount": account.followers,
        "followsCount": int(account.extra.get("follows", 0)),
        "postsCount": len(state.account_posts(PLATFORM, account.account_id)),
    }


def _embed_view(post: Post, record: dict[str, Any]) -> dict[str, Any] | None:
    embed = record.get("embed") or {}
    if embed.get("$type") == "app.bsky.embed.images":
        base = "https://cdn.bsky.app/img"
        return {
            "$type": "app.bsky.embed.images#view",
            "images": [
                {
                    "thumb": f"{base}/feed_thumbnail/plain/{post.account_id}/{link}@jpeg",
                    "fullsize": f"{base}/feed_fullsize/plain/{post.account_id}/{link}@jpeg",
                    "alt": image.get("alt", ""),
                }
                for image, link in zip(embed["images"], _media(record), strict=True)
            ],
        }
    if embed.get("$type") == "app.bsky.embed.external":
        external = embed["external"]
        return {
            "$type": "app.bsky.embed.external#view",
            "external": {
                "uri": external["uri"],
                "title": external.get("title", ""),
                "description": external.get("description", ""),
            },
        }
    return None


def _post_view(state: SandboxState, post: Post) -> dict[str, Any]:
    account = state.account(PLATFORM, post.account_id)
    record = _record_of(post)
    author = _profile_basic(account) if account else {"did": post.account_id, "handle": "handle.invalid"}
    view: dict[str, Any] = {
        "uri": _uri_of(post),
        "cid": _cid_of(post),
        "author": author,
        "record": record,
        "replyCount": _reply_count(state, post),
        "repostCount": post.metrics.get("reposts", 0),
        "likeCount": post.metrics.get("likes", 0),
        "quoteCount": post.metrics.get("quotes", 0),
        "bookmarkCount": post.metrics.get("bookmarks", 0),
        "indexedAt": _indexed_at(post),
        "labels": [],
    }
    embed = _embed_view(post, record)
    if embed is not None:
        view["embed"] = embed
    return view


def _notification(state: SandboxState, official: Account, comment: Comment) -> dict[str, Any]:
    """A resident's comment as a notification: a reply when it answers a post, else a mention."""
    did, handle, name = _resident(state, comment.author)
    record: dict[str, Any] = {
        "$type": POST_NSID,
        "text": comment.text,
        "createdAt": _iso(comment.created_at),
        "langs": ["ja"],
    }
    reason = comment.extra.get("reason") or ("reply" if comment.post_id else "mention")
    parent = _find_post(state, comment.post_id) if comment.post_id else None
    if parent is not None and reason == "reply":
        parent_ref = {"uri": _uri_of(parent), "cid": _cid_of(parent)}
        root_ref = _record_of(parent).get("reply", {}).get("root", parent_ref)
        record["reply"] = {"root": root_ref, "parent": parent_ref}
    elif reason == "mention":
        mention = f"@{official.handle} "
        record["text"] = mention + comment.text
        end = len(mention.rstrip().encode("utf-8"))
        record["facets"] = [
            {
                "index": {"byteStart": 0, "byteEnd": end},
                "features": [{"$type": "app.bsky.richtext.facet#mention", "did": official.account_id}],
            }
        ]
    micros = int(comment.created_at.timestamp() * 1_000_000)
    clock = int(comment.comment_id) % 1024 if comment.comment_id.isdigit() else 0
    uri = f"at://{did}/{POST_NSID}/{_tid(micros, clock)}"
    view: dict[str, Any] = {
        "uri": uri,
        "cid": _cid(json.dumps(record, sort_keys=True, ensure_ascii=False).encode()),
        "author": {"did": did, "handle": handle, "displayName": name, "labels": []},
        "reason": reason,
        "record": record,
        "isRead": False,
        "indexedAt": _iso(comment.created_at),
        "labels": [],
    }
    if parent is not None:
        view["reasonSubject"] = _uri_of(parent)
    return view


# --------------------------------------------------------------------------- the app


def create_app(state: SandboxState) -> FastAPI:
    app = sub_app("Bluesky (sandbox)", render_error)
    for bucket, (limit, seconds) in LIMITS.items():
        state.limits.default(PLATFORM, bucket, limit, seconds)

    # ---------------------------------------------------------------- sessions

    @app.post("/xrpc/com.atproto.server.createSession")
    async def create_session(request: Request) -> Response:
        body = await _json_body(request)
        identifier, password = body.get("identifier"), body.get("password")
        if not isinstance(identifier, str) or not identifier:
            raise _invalid('Input must have the property "identifier"')
        if not isinstance(password, str) or not password:
            raise _invalid('Input must have the property "password"')
        account = _find_account(state, identifier)
        fault, headers = await _gate(request, "auth", account, bucket="session")
        if account is not None:
            with state.lock:
                attempts = _scratch(state)["login_attempts"]
                attempts[account.account_id] = attempts.get(account.account_id, 0) + 1
        if (
            account is None
            or account.password is None
            or account.token_revoked
            or not hmac.compare_digest(account.password.encode(), password.encode())
        ):
            raise XrpcError(
                "invalid_token", 401, "Invalid identifier or password", error="AuthenticationRequired", headers=headers
            )
        session = _issue(state, account, request)
        with state.lock:
            logins = _scratch(state)["logins"]
            logins[account.account_id] = logins.get(account.account_id, 0) + 1
        if fault is not None:
            return await lost_response(fault)
        return _ok(session, headers)

    @app.post("/xrpc/com.atproto.server.refreshSession")
    async def refresh_session(request: Request) -> Response:
        account, claims = _authenticate(request, refresh=True)
        fault, headers = await _gate(request, "auth", account)
        data = _scratch(state)
        with state.lock:
            data["refresh_jtis"].pop(claims.get("jti"), None)  # rotation: a refresh token works once
            data["refreshes"][account.account_id] = data["refreshes"].get(account.account_id, 0) + 1
        session = _issue(state, account, request)
        if fault is not None:
            return await lost_response(fault)
        return _ok(session, headers)

    @app.get("/xrpc/com.atproto.server.getSession")
    async def get_session(request: Request) -> Response:
        account, _ = _authenticate(request)
        _, headers = await _gate(request, "verify", account, bucket="read")
        return _ok(
            {"did": account.account_id, "handle": account.handle, "active": True, "didDoc": _did_doc(account, request)},
            headers,
        )

    # ---------------------------------------------------------------- writes

    @app.post("/xrpc/com.atproto.repo.uploadBlob")
    async def upload_blob(request: Request) -> Response:
        account, _ = _authenticate(request)
        fault, headers = await _gate(request, "publish", account, bucket="read")
        data = await request.body()
        if not data:
            raise _invalid("Request body is empty")
        if len(data) > MAX_BLOB_BYTES:
            raise _invalid("request entity too large", error="PayloadTooLarge", status=413)
        mime = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
        cid = _cid(data, codec=0x55)
        with state.lock:
            _scratch(state)["blobs"][cid] = {"did": account.account_id, "mimeType": mime, "size": len(data)}
        if fault is not None:
            return await lost_response(fault)
        blob = {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(data)}
        return _ok({"blob": blob}, headers)

    @app.post("/xrpc/com.atproto.repo.createRecord")
    async def create_record(request: Request) -> Response:
        account, _ = _authenticate(request)
        body = await _json_body(request)
        fault, headers = await _gate(request, "publish", account, bucket="write", cost=WRITE_COST["create"])
        _own_repo(state, account, body.get("repo"))
        collection = body.get("collection")
        if collection != POST_NSID:
            raise _invalid(f"The sandbox stores only {POST_NSID} records, not {collection}")
        record = _validate_post(state, account.account_id, body.get("record"))
        rkey = body.get("rkey") or _next_rkey(state)
        uri = f"at://{account.account_id}/{POST_NSID}/{rkey}"
        if _find_post(state, uri) is not None:
            # What the reference PDS answers for an explicit rkey that exists (atproto issue #3718).
            raise XrpcError("server_error", 500, "Internal Server Error", error="InternalServerError")
        cid = _cid(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
        parent = (record.get("reply") or {}).get("parent", {}).get("uri")
        state.add_post(
            Post(
                platform=PLATFORM,
                post_id=uri,
                account_id=account.account_id,
                text=record["text"],
                created_at=_parse_datetime(record["createdAt"]) or utcnow(),
                reply_to=parent,
                link=_first_link(record),
                media=_media(record),
                extra={
                    "record": record,
                    "cid": cid,
                    "rkey": rkey,
                    "indexed_at": _iso(utcnow()),
                    "langs": record.get("langs", []),
                },
            )
        )
        if fault is not None:
            return await lost_response(fault)
        commit = {"cid": _cid(f"{uri}:{cid}".encode()), "rev": _next_rkey(state)}
        return _ok({"uri": uri, "cid": cid, "commit": commit, "validationStatus": "valid"}, headers)

    @app.post("/xrpc/com.atproto.repo.deleteRecord")
    async def delete_record(request: Request) -> Response:
        account, _ = _authenticate(request)
        body = await _json_body(request)
        fault, headers = await _gate(request, "delete", account, bucket="write", cost=WRITE_COST["delete"])
        _own_repo(state, account, body.get("repo"))
        collection, rkey = body.get("collection"), body.get("rkey")
        if not isinstance(collection, str) or not isinstance(rkey, str) or not rkey:
            raise _invalid('Input must have the properties "collection" and "rkey"')
        post = _find_post(state, f"at://{account.account_id}/{collection}/{rkey}")
        if post is not None:
            with state.lock:
                post.deleted = True
        if fault is not None:
            return await lost_response(fault)
        # Deleting a record that does not exist is a no-op on a PDS, not an error.
        return _ok({"commit": {"cid": _cid(f"delete:{rkey}".encode()), "rev": _next_rkey(state)}}, headers)

    # ---------------------------------------------------------------- repo reads

    @app.get("/xrpc/com.atproto.repo.getRecord")
    async def get_record(request: Request) -> Response:
        viewer = _optional_auth(request)
        repo, collection, rkey = (_required(request, k) for k in ("repo", "collection", "rkey"))
        _, headers = await _gate(request, "read", viewer, bucket="read")
        owner = _find_account(state, repo)
        uri = f"at://{owner.account_id if owner else repo}/{collection}/{rkey}"
        post = _find_post(state, uri) if collection == POST_NSID else None
        if post is None:
            raise XrpcError(
                "not_found", 400, f"Could not locate record: {uri}", error="RecordNotFound", headers=headers
            )
        return _ok({"uri": _uri_of(post), "cid": _cid_of(post), "value": _record_of(post)}, headers)

    @app.get("/xrpc/com.atproto.repo.listRecords")
    async def list_records(request: Request) -> Response:
        viewer = _optional_auth(request)
        repo, collection = _required(request, "repo"), _required(request, "collection")
        limit = _limit(request, 50)
        reverse = request.query_params.get("reverse", "false").lower() == "true"
        cursor = request.query_params.get("cursor")
        _, headers = await _gate(request, "read", viewer, bucket="read")
        owner = _find_account(state, repo)
        if owner is None:
            raise _invalid(f"Could not find repo: {repo}")
        posts = _own_posts(state, owner.account_id) if collection == POST_NSID else []
        if reverse:
            posts.reverse()
        if cursor:
            posts = [p for p in posts if (_rkey_of(p) > cursor if reverse else _rkey_of(p) < cursor)]
        page = posts[:limit]
        body: dict[str, Any] = {
            "records": [{"uri": _uri_of(p), "cid": _cid_of(p), "value": _record_of(p)} for p in page]
        }
        if len(page) == limit and len(posts) > limit:
            body["cursor"] = _rkey_of(page[-1])
        return _ok(body, headers)

    # ---------------------------------------------------------------- app.bsky reads (AppView, proxied by the PDS)

    @app.get("/xrpc/app.bsky.actor.getProfile")
    async def get_profile(request: Request) -> Response:
        viewer = _optional_auth(request)
        actor = _required(request, "actor")
        try:
            _, headers = await _gate(request, "metrics", viewer, bucket="read")
        except SandboxError as exc:
            if exc.kind != "server_error":
                raise
            # getProfile is the AppView's, proxied by the PDS: with the AppView down the PDS
            # answers 502 UpstreamFailure although the session itself is fine.
            raise _invalid("Upstream Failure", error="UpstreamFailure", status=502) from None
        account = _find_account(state, actor)
        if account is None:
            raise _invalid("Profile not found")
        return _ok(_profile_detailed(state, account), headers)

    @app.get("/xrpc/app.bsky.actor.searchActors")
    async def search_actors(request: Request) -> Response:
        viewer = _optional_auth(request)
        query = request.query_params.get("q") or request.query_params.get("term") or ""
        limit = _limit(request, 25)
        offset = int(request.query_params.get("cursor") or 0)
        _, headers = await _gate(request, "search", viewer, bucket="read")
        terms = [t.casefold() for t in query.split() if t]
        hits = [
            a
            for a in state.platform_accounts(PLATFORM)
            if terms and all(t in f"{a.handle} {a.display_name}".casefold() for t in terms)
        ]
        hits.sort(key=lambda a: (-a.followers, a.handle))
        page = hits[offset : offset + limit]
        body: dict[str, Any] = {"actors": [_profile_view(a) for a in page]}
        if offset + limit < len(hits):
            body["cursor"] = str(offset + limit)
        return _ok(body, headers)

    @app.get("/xrpc/app.bsky.feed.getPosts")
    async def get_posts(request: Request) -> Response:
        viewer = _optional_auth(request)
        uris = request.query_params.getlist("uris")
        if not uris:
            raise _invalid('Params must have the property "uris"')
        if len(uris) > 25:
            raise _invalid("uris must not have more than 25 elements")
        _, headers = await _gate(request, "metrics", viewer, bucket="read")
        posts = [p for p in (_find_post(state, u) for u in uris) if p is not None]
        return _ok({"posts": [_post_view(state, p) for p in posts]}, headers)

    @app.get("/xrpc/app.bsky.feed.getAuthorFeed")
    async def get_author_feed(request: Request) -> Response:
        viewer = _optional_auth(request)
        actor = _required(request, "actor")
        limit = _limit(request, 50)
        cursor = request.query_params.get("cursor")
        feed_filter = request.query_params.get("filter", "posts_with_replies")
        _, headers = await _gate(request, "read", viewer, bucket="read")
        account = _find_account(state, actor)
        if account is None:
            raise _invalid("Profile not found")
        posts = _own_posts(state, account.account_id)
        if feed_filter == "posts_no_replies":
            posts = [p for p in posts if not p.reply_to]
        elif feed_filter == "posts_with_media":
            posts = [p for p in posts if _media(_record_of(p))]
        if cursor:
            posts = [p for p in posts if _rkey_of(p) < cursor]
        page = posts[:limit]
        body: dict[str, Any] = {"feed": [{"post": _post_view(state, p)} for p in page]}
        if len(posts) > limit:
            body["cursor"] = _rkey_of(page[-1])
        return _ok(body, headers)

    @app.get("/xrpc/app.bsky.notification.listNotifications")
    async def list_notifications(request: Request) -> Response:
        account, _ = _authenticate(request)
        limit = _limit(request, 50)
        cursor = request.query_params.get("cursor")
        reasons = set(request.query_params.getlist("reasons"))
        _, headers = await _gate(request, "comments", account, bucket="read")
        items = [_notification(state, account, c) for c in state.account_comments(PLATFORM, account.account_id)]
        if reasons:
            items = [n for n in items if n["reason"] in reasons]
        items.sort(key=_notification_key, reverse=True)
        if cursor:
            items = [n for n in items if _notification_key(n) < cursor]
        page = items[:limit]
        body: dict[str, Any] = {"notifications": page}
        if len(items) > limit:
            body["cursor"] = _notification_key(page[-1])
        return _ok(body, headers)

    @app.api_route("/xrpc/{nsid}", methods=["GET", "POST"])
    async def not_implemented(nsid: str) -> Response:
        """What a PDS answers for a method it does not serve (clients such as the SDK check for it)."""
        return JSONResponse({"error": "MethodNotImplemented", "message": "Method Not Implemented"}, status_code=501)

    return app


def _notification_key(notification: dict[str, Any]) -> str:
    """Newest-first order and the paging cursor: indexedAt, then the URI to break ties."""
    return f"{notification['indexedAt']}::{notification['uri']}"
