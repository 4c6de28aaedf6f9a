"""LINE Messaging API as the sandbox serves it, under ``/line`` (the real host is ``https://api.line.me``).

What is faithful and why it matters to Koho:

* broadcast and push take at most 5 message objects, text up to 5,000 characters; errors are
  ``{"message", "details": [{"message", "property"}]}`` (``details`` left out when empty);
* the retry key: ``X-Line-Retry-Key`` (a UUID) on push, multicast, narrowcast and broadcast.
  A request whose key was accepted in the last 24 hours answers **409** with the
  ``x-line-accepted-request-id`` header and ``{"message": "The retry key is already accepted"}``
  (push adds ``sentMessages``) and sends nothing; a retry key on any other endpoint is a 400;
* every response, errors included, carries ``x-line-request-id``; LINE sends no rate-limit
  headers, and 429 means either the per-endpoint rate limit or the monthly message quota
  (``"You have reached your monthly limit."``);
* the monthly quota counts recipients: a broadcast uses one message per friend (the account's
  ``followers``), a push one. The quota is the account's ``extra["message_quota"]`` (none when
  absent); the month is the calendar month in Japan time;
* messages cannot be read back or deleted through the API: each accepted broadcast or push is
  recorded as a :class:`Post` (post id = the request id) so tests can count what was sent, and
  statistics come from ``/v2/bot/insight/message/event?requestId=``.

Residents write to the account in the LINE app and the platform calls the city's webhook.
:func:`signed_webhook` builds that call (body and ``X-Line-Signature``) from the residents'
comments in the state, so webhook handling is testable without the admin API; the admin call
``POST /line/_admin/webhook`` makes it: it records a resident's message (when given), signs
the body with the account's channel secret and POSTs it to Koho's webhook URL as LINE would,
answering with Koho's status and body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import requests
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, HttpUrl

from sandbox.common import SandboxError, bearer_token, gate, lost_response, state_of, sub_app
from sandbox.state import Account, Comment, Post, SandboxState, utcnow

PREFIX = "/line"
PLATFORM = "line"
JST = timezone(timedelta(hours=9), "JST")
RETRY_KEY_TTL = 24 * 3600
MAX_MESSAGES = 5
MAX_TEXT = 5000
RETRY_KEY_PATHS = frozenset(
    {
        "/v2/bot/message/push",
        "/v2/bot/message/multicast",
        "/v2/bot/message/narrowcast",
        "/v2/bot/message/broadcast",
    }
)
#: (requests, seconds) per endpoint and channel, from the Messaging API reference "Rate limits".
LIMITS: dict[str, tuple[int, float]] = {
    "broadcast": (60, 3600),
    "push": (2000, 1),
    "other": (2000, 1),
}
AUTH_FAILED = "Authentication failed. Confirm that the access token in the authorization header is valid."
RATE_LIMITED = "The API rate limit has been exceeded. Try again later."
MONTHLY_LIMIT = "You have reached your monthly limit."
RETRY_KEY_ACCEPTED = "The retry key is already accepted"
_LINK = re.compile(r"https?://[!-~]+")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass
class LineError(SandboxError):
    """A :class:`SandboxError` carrying LINE's exact error body."""

    body: dict[str, Any] = field(default_factory=dict)


def _error(
    status: int,
    message: str,
    details: list[dict[str, str]] | None = None,
    kind: str = "invalid",
    headers: dict[str, str] | None = None,
) -> LineError:
    body: dict[str, Any] = {"message": message}
    if details:
        body["details"] = details
    return LineError(kind, status, message, headers=headers or {}, body=body)


def render_error(exc: SandboxError) -> Response:
    body = getattr(exc, "body", None) or _fault_body(exc)
    status = exc.status
    if exc.kind in ("expired_token", "invalid_token"):
        status = 401
    elif exc.kind == "duplicate" and not isinstance(exc, LineError):
        status = 409  # without x-line-accepted-request-id: nothing was accepted under this key here
    return JSONResponse(body, status_code=status, headers=exc.headers)


def _fault_body(exc: SandboxError) -> dict[str, Any]:
    if exc.kind == "rate_limit":
        return {"message": RATE_LIMITED}
    if exc.kind in ("expired_token", "invalid_token"):
        return {"message": AUTH_FAILED}
    if exc.kind == "duplicate":
        # LINE has no duplicate-content check; its only "already sent" answer is the retry-key 409.
        return {"message": RETRY_KEY_ACCEPTED}
    if exc.kind == "server_error":
        return {"message": "An error occurred in the backend server."}
    return {"message": exc.message}


# --------------------------------------------------------------------------- accounts and time


def _authenticate(request: Request) -> Account:
    """The channel behind the bearer token; LINE answers every token problem with the same 401."""
    state = state_of(request)
    account = state.account_by_token(PLATFORM, bearer_token(request))
    if account is None:
        raise _error(401, AUTH_FAILED, kind="invalid_token")
    if account.token_revoked or _expired(account):
        raise _error(401, AUTH_FAILED, kind="expired_token")
    return account


def _expires(account: Account) -> datetime | None:
    expires = account.token_expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires


def _expired(account: Account) -> bool:
    expires = _expires(account)
    return expires is not None and expires <= utcnow()


def _month(moment: datetime) -> str:
    return moment.astimezone(JST).strftime("%Y-%m")


def _scratch(state: SandboxState) -> dict[str, Any]:
    with state.lock:
        return state.scratch.setdefault(PLATFORM, {"usage": {}})


def _usage(state: SandboxState, account: Account) -> int:
    return _scratch(state)["usage"].get((account.account_id, _month(utcnow())), 0)


def _quota(account: Account) -> int | None:
    value = account.extra.get("message_quota")
    return int(value) if value is not None else None


def _basic_id(account: Account) -> str:
    return account.extra.get("basic_id") or (account.handle if account.handle.startswith("@") else f"@{account.handle}")


def _find_account(state: SandboxState, account: str) -> Account | None:
    """By id or by handle; LINE handles (basic ids) keep their leading ``@``, so compare without it."""
    found = state.account(PLATFORM, account)
    if found is not None:
        return found
    wanted = account.lstrip("@").lower()
    return next((a for a in state.platform_accounts(PLATFORM) if a.handle.lstrip("@").lower() == wanted), None)


def line_user_id(name: str) -> str:
    """The stable LINE user id (``U`` + 32 hex) the sandbox gives a resident known only by name."""
    return "U" + hashlib.md5(name.encode("utf-8"), usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------- messages


def _validate_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        raise _error(
            400,
            "The request body has 1 error(s)",
            [{"message": f"Size must be between 1 and {MAX_MESSAGES}", "property": "messages"}],
        )
    details = []
    for i, message in enumerate(messages):
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "text":
            text = message.get("text")
            if not isinstance(text, str) or not text:
                details.append({"message": "Must not be empty", "property": f"messages[{i}].text"})
            elif len(text) > MAX_TEXT:
                details.append(
                    {"message": f"Length must be between 0 and {MAX_TEXT}", "property": f"messages[{i}].text"}
                )
        elif kind == "image":
            for key in ("originalContentUrl", "previewImageUrl"):
                url = message.get(key)
                if not isinstance(url, str) or not url.startswith("https://"):
                    details.append({"message": "Must be a valid HTTPS URL", "property": f"messages[{i}].{key}"})
        elif kind in ("sticker", "video", "audio", "location", "imagemap", "template", "flex"):
            continue
        else:
            details.append({"message": "Invalid message type", "property": f"messages[{i}].type"})
    if details:
        raise _error(400, f"The request body has {len(details)} error(s)", details)
    return messages


def _text_of(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] for m in messages if m.get("type") == "text")


def _link_of(messages: list[dict[str, Any]]) -> str | None:
    match = _LINK.search(_text_of(messages))
    return match.group() if match else None


def _media_of(messages: list[dict[str, Any]]) -> list[str]:
    return [m["originalContentUrl"] for m in messages if m.get("type") == "image"]


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise _error(400, "The request body could not be parsed as JSON") from None
    if not isinstance(body, dict):
        raise _error(400, "The request body could not be parsed as JSON")
    return body


def _retry_key(request: Request) -> str | None:
    key = request.headers.get("x-line-retry-key")
    if key is not None and not _UUID.match(key.strip()):
        raise _error(400, "The value of X-Line-Retry-Key must be a UUID in hexadecimal format")
    return key.strip().lower() if key else None


# --------------------------------------------------------------------------- sending


async def _send(request: Request, account: Account, body: dict[str, Any], *, kind: str, recipients: int) -> Response:
    """Everything broadcast and push share: gate, retry key, validation, quota, record, answer."""
    state = state_of(request)
    fault, _ = await gate(request, PLATFORM, "publish", account, bucket="broadcast" if kind == "broadcast" else "push")
    key = _retry_key(request)
    request_id = request.state.request_id
    if key is not None:
        accepted = state.remembered(PLATFORM, account.account_id, key, RETRY_KEY_TTL)
        if accepted is not None:
            conflict: dict[str, Any] = {"message": RETRY_KEY_ACCEPTED}
            if kind == "push":
                conflict["sentMessages"] = accepted["sentMessages"]
            return JSONResponse(
                conflict, status_code=409, headers={"x-line-accepted-request-id": accepted["requestId"]}
            )
    messages = _validate_messages(body.get("messages"))
    quota = _quota(account)
    if quota is not None and _usage(state, account) + recipients > quota:
        raise _error(429, MONTHLY_LIMIT)
    sent = [{"id": state.next_id(), "quoteToken": uuid.uuid4().hex} for _ in messages]
    now = utcnow()
    with state.lock:
        usage = _scratch(state)["usage"]
        usage[(account.account_id, _month(now))] = usage.get((account.account_id, _month(now)), 0) + recipients
    state.add_post(
        Post(
            platform=PLATFORM,
            post_id=request_id,
            account_id=account.account_id,
            text=_text_of(messages),
            created_at=now,
            link=_link_of(messages),
            media=_media_of(messages),
            extra={
                "kind": kind,
                "to": body.get("to"),
                "messages": messages,
                "retry_key": key,
                "recipients": recipients,
                "sentMessages": sent,
                "notificationDisabled": bool(body.get("notificationDisabled", False)),
            },
        )
    )
    if key is not None:
        state.remember(PLATFORM, account.account_id, key, {"requestId": request_id, "sentMessages": sent})
    if fault is not None:
        return await lost_response(fault)
    return JSONResponse({"sentMessages": sent} if kind == "push" else {})


# --------------------------------------------------------------------------- statistics


def _date_param(request: Request) -> datetime:
    raw = request.query_params.get("date", "")
    try:
        return datetime.strptime(raw, "%Y%m%d").replace(tzinfo=JST)
    except ValueError:
        raise _error(
            400,
            "The request body has 1 error(s)",
            [{"message": "Invalid date format. Use yyyyMMdd", "property": "date"}],
        ) from None


def _ready(day: datetime) -> bool:
    """LINE computes a day's statistics after it ends (Japan time)."""
    return day.date() < datetime.now(JST).date()


def _sent_on(state: SandboxState, account: Account, day: datetime) -> list[Post]:
    return [
        p
        for p in state.account_posts(PLATFORM, account.account_id, include_deleted=True)
        if p.created_at.astimezone(JST).date() == day.date()
    ]


# --------------------------------------------------------------------------- the app


def create_app(state: SandboxState) -> FastAPI:
    app = sub_app("LINE Messaging API (sandbox)", render_error)
    for bucket, (limit, seconds) in LIMITS.items():
        state.limits.default(PLATFORM, bucket, limit, seconds)

    @app.middleware("http")
    async def request_ids(request: Request, call_next) -> Response:
        """Every answer carries ``x-line-request-id``; a retry key where LINE takes none is a 400."""
        request.state.request_id = str(uuid.uuid4())
        path = request.scope["path"][len(request.scope.get("root_path", "")) :]
        if "x-line-retry-key" in request.headers and path not in RETRY_KEY_PATHS:
            response: Response = render_error(_error(400, "X-Line-Retry-Key header is not supported for this API"))
        else:
            response = await call_next(request)
        response.headers.setdefault("x-line-request-id", request.state.request_id)
        return response

    @app.post("/v2/bot/message/broadcast")
    async def broadcast(request: Request) -> Response:
        account = _authenticate(request)
        body = await _json_body(request)
        return await _send(request, account, body, kind="broadcast", recipients=account.followers)

    @app.post("/v2/bot/message/push")
    async def push(request: Request) -> Response:
        account = _authenticate(request)
        body = await _json_body(request)
        if not isinstance(body.get("to"), str) or not body["to"]:
            raise _error(400, "The request body has 1 error(s)", [{"message": "Must not be null", "property": "to"}])
        return await _send(request, account, body, kind="push", recipients=1)

    @app.get("/v2/bot/message/quota")
    async def quota(request: Request) -> Response:
        account = _authenticate(request)
        await gate(request, PLATFORM, "metrics", account, bucket="other")
        value = _quota(account)
        return JSONResponse({"type": "limited", "value": value} if value is not None else {"type": "none"})

    @app.get("/v2/bot/message/quota/consumption")
    async def consumption(request: Request) -> Response:
        account = _authenticate(request)
        await gate(request, PLATFORM, "metrics", account, bucket="other")
        return JSONResponse({"totalUsage": _usage(state, account)})

    @app.get("/v2/bot/info")
    async def bot_info(request: Request) -> Response:
        account = _authenticate(request)
        await gate(request, PLATFORM, "verify", account, bucket="other")
        body = {
            "userId": account.account_id,
            "basicId": _basic_id(account),
            "displayName": account.display_name or account.handle,
            "chatMode": "chat",
            "markAsReadMode": "manual",
        }
        if account.extra.get("picture_url"):
            body["pictureUrl"] = account.extra["picture_url"]
        return JSONResponse(body)

    @app.get("/v2/bot/insight/followers")
    async def followers(request: Request) -> Response:
        account = _authenticate(request)
        day = _date_param(request)
        await gate(request, PLATFORM, "metrics", account, bucket="other")
        if not _ready(day):
            return JSONResponse({"status": "unready"})
        blocks = int(account.extra.get("blocks", 0))
        return JSONResponse(
            {
                "status": "ready",
                "followers": account.followers + blocks,  # adds as friend, never decreases
                "targetedReaches": int(account.extra.get("targeted_reaches", account.followers * 8 // 10)),
                "blocks": blocks,
            }
        )

    @app.get("/v2/bot/insight/message/delivery")
    async def delivery(request: Request) -> Response:
        account = _authenticate(request)
        day = _date_param(request)
        await gate(request, PLATFORM, "metrics", account, bucket="other")
        if not _ready(day):
            return JSONResponse({"status": "unready"})
        sent = _sent_on(state, account, day)
        api_broadcast = sum(p.extra.get("recipients", 0) for p in sent if p.extra.get("kind") == "broadcast")
        api_push = sum(p.extra.get("recipients", 0) for p in sent if p.extra.get("kind") == "push")
        return JSONResponse(
            {"status": "ready", "broadcast": api_broadcast, "apiBroadcast": api_broadcast, "apiPush": api_push}
        )

    @app.get("/v2/bot/insight/message/event")
    async def message_event(request: Request) -> Response:
        account = _authenticate(request)
        request_id = request.query_params.get("requestId", "")
        await gate(request, PLATFORM, "metrics", account, bucket="other")
        post = state.post(PLATFORM, request_id)
        if post is None or post.account_id != account.account_id:
            raise _error(404, "Not found")
        metrics = post.metrics
        overview = {
            "requestId": request_id,
            "timestamp": int(post.created_at.timestamp()),
            "delivered": metrics.get("delivered", post.extra.get("recipients", 0)),
            "uniqueImpression": metrics.get("impressions"),
            "uniqueClick": metrics.get("clicks"),
            "uniqueMediaPlayed": None,
            "uniqueMediaPlayed100Percent": None,
        }
        bubbles = [{"seq": i + 1, "impression": metrics.get("impressions")} for i in range(len(post.extra["messages"]))]
        return JSONResponse({"overview": overview, "messages": bubbles, "clicks": []})

    @app.get("/oauth2/v2.1/verify")
    async def verify_v21(request: Request) -> Response:
        return await _verify(request, request.query_params.get("access_token"))

    @app.post("/v2/oauth/verify")
    async def verify_v2(request: Request) -> Response:
        form = await request.form()
        token = form.get("access_token")
        return await _verify(request, token if isinstance(token, str) else None)

    async def _verify(request: Request, token: str | None) -> Response:
        """Token verification answers in OAuth's own error shape, not the Messaging API's."""
        account = state.account_by_token(PLATFORM, token)
        await gate(request, PLATFORM, "verify", account)
        if account is None:
            return JSONResponse({"error": "invalid_request", "error_description": "invalid access token"}, 400)
        if account.token_revoked or _expired(account):
            return JSONResponse({"error": "invalid_request", "error_description": "access token expired"}, 400)
        expires = _expires(account)
        # Long-lived tokens have no end: the sandbox reports 0 seconds for them (see the hook).
        expires_in = int((expires - utcnow()).total_seconds()) if expires else 0
        return JSONResponse(
            {"client_id": account.extra.get("channel_id", account.account_id), "expires_in": expires_in, "scope": ""}
        )

    @app.post("/_admin/webhook")
    def send_webhook(request: Request, item: WebhookIn) -> dict[str, Any]:
        """Deliver residents' messages to ``item.url`` as LINE's signed webhook call (see the module doc)."""
        state = state_of(request)
        account = _find_account(state, item.account)
        if account is None:
            raise HTTPException(404, f"no LINE account '{item.account}'")
        comments = None
        if item.text is not None:
            comment = Comment(
                platform=PLATFORM,
                comment_id=state.next_id(),
                post_id=None,
                account_id=account.account_id,
                author=item.author,
                text=item.text,
                created_at=utcnow(),
            )
            comments = [state.add_comment(comment)]
        try:
            body, signature = signed_webhook(
                state, account.account_id, channel_secret=item.channel_secret, comments=comments
            )
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from exc
        if item.bad_signature:
            signature = sign(body, "not-the-channel-secret")
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Line-Signature": signature}
        try:
            answer = requests.post(str(item.url), data=body, headers=headers, timeout=10)
        except requests.RequestException as exc:
            raise HTTPException(502, f"webhook URL not reachable: {type(exc).__name__}") from exc
        return {"status": answer.status_code, "body": answer.text[:2000], "event_ids": _event_ids(body)}

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def not_found(path: str) -> Response:
        return JSONResponse({"message": "Not found"}, status_code=404)

    return app


# --------------------------------------------------------------------------- webhooks


def sign(body: bytes, channel_secret: str) -> str:
    """``X-Line-Signature``: base64 of the HMAC-SHA256 of the raw body, keyed by the channel secret."""
    return base64.b64encode(hmac.new(channel_secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def message_event(comment: Comment) -> dict[str, Any]:
    """A resident's message as the webhook ``message`` event LINE delivers."""
    return {
        "type": "message",
        "mode": "active",
        "timestamp": int(comment.created_at.timestamp() * 1000),
        "source": {"type": "user", "userId": line_user_id(comment.author)},
        "webhookEventId": uuid.uuid5(uuid.NAMESPACE_OID, f"line:{comment.comment_id}").hex.upper()[:26],
        "deliveryContext": {"isRedelivery": False},
        "replyToken": hashlib.sha256(f"reply:{comment.comment_id}".encode()).hexdigest()[:32],
        "message": {
            "id": comment.comment_id,
            "type": "text",
            "quoteToken": hashlib.sha256(f"quote:{comment.comment_id}".encode()).hexdigest(),
            "text": comment.text,
        },
    }


class WebhookIn(BaseModel):
    """The admin call's body: where Koho listens, and optionally one new message to deliver."""

    account: str  # id or handle
    url: HttpUrl
    author: str = "住民"
    text: str | None = None  # None: deliver every message the account has received
    channel_secret: str | None = None  # None: the account's own
    bad_signature: bool = False  # sign with a wrong secret, as an impostor would


def _event_ids(body: bytes) -> list[str]:
    return [e["webhookEventId"] for e in json.loads(body)["events"]]


def signed_webhook(
    state: SandboxState,
    account: str,
    *,
    channel_secret: str | None = None,
    comments: list[Comment] | None = None,
) -> tuple[bytes, str]:
    """The webhook call LINE would make for the residents' messages to ``account`` (id or handle).

    Returns the raw body and its ``X-Line-Signature``; the secret defaults to the account's
    ``extra["channel_secret"]``, the messages to all the account has received.
    """
    acc = _find_account(state, account)
    if acc is None:
        raise KeyError(f"no LINE account '{account}' in the sandbox")
    secret = channel_secret or acc.extra.get("channel_secret")
    if not secret:
        raise ValueError(f"LINE account '{account}' has no channel_secret to sign with")
    if comments is None:
        comments = state.account_comments(PLATFORM, acc.account_id)
    events = [message_event(c) for c in comments]
    body = json.dumps(
        {"destination": acc.account_id, "events": events}, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")
    return body, sign(body, secret)
