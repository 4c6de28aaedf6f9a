"""LINE Official Account through the Messaging API: broadcasts to the account's friends.

What differs from the other platforms, and why the hook is shaped this way:

* **Exactly once by retry key.** Broadcast and push take ``X-Line-Retry-Key``, a UUID. Koho's
  idempotency key becomes a deterministic UUID (:func:`retry_key_for`), so a retry after a
  timeout, a 5xx or a killed worker sends the *same* key. LINE answers a repeat of an accepted
  key with **409** and the original request id in ``x-line-accepted-request-id``: that is
  success, and the post's remote id is that request id. Keys are kept for 24 hours.
* **A broadcast is not a post.** It has no URL, cannot be read back or deleted, and has no
  public replies: residents' messages reach the city's webhook, verified with
  :func:`verify_webhook_signature` and read with :func:`parse_webhook`.
* **Two kinds of 429.** The per-endpoint rate limit (no reset header: the hook backs off) and
  the monthly message quota ("You have reached your monthly limit."). The quota is mapped to
  :class:`RateLimited` with ``code="monthly_limit"`` and ``reset_at`` at the start of next month
  in Japan time, not to :class:`PermanentlyRejected`: the same message *will* go out once the
  quota resets or the plan is raised, so the delivery must stay pending, not fail. A reset that
  far away is longer than any retry wait, so neither ``call`` nor ``publish_once`` holds a
  worker for it; the caller reschedules and alerts staff on the code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import requests

from koho import secrets
from koho.platforms.base import PlatformHook, parse_time
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

JST = timezone(timedelta(hours=9), "JST")
#: Namespace of the retry keys Koho derives from its idempotency keys (fixed forever: changing
#: it would change the key of every pending delivery).
RETRY_KEY_NAMESPACE = uuid.UUID("5d0b8f3e-7a43-5c51-9f0e-6b1c0e4f2a17")
MAX_MESSAGES = 5
MONTHLY_LIMIT = "monthly limit"


def retry_key_for(idempotency_key: str) -> str:
    """The ``X-Line-Retry-Key`` for a Koho idempotency key: the key itself when it is a UUID, else a uuid5."""
    try:
        return str(uuid.UUID(idempotency_key))
    except ValueError:
        return str(uuid.uuid5(RETRY_KEY_NAMESPACE, idempotency_key))


def next_month_start_jst(now: datetime | None = None) -> datetime:
    """When LINE's monthly message count starts over: 00:00 on the 1st in Japan time (as UTC)."""
    local = (now or datetime.now(UTC)).astimezone(JST)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=JST).astimezone(UTC)


class RetryKeyAccepted(PermanentlyRejected):
    """409 for a retry key LINE already accepted: the message was sent by an earlier attempt."""

    def __init__(self, message: str, *, accepted_request_id: str, **kw: Any) -> None:
        super().__init__(message, kind="duplicate", **kw)
        self.accepted_request_id = accepted_request_id


# --------------------------------------------------------------------------- webhooks


def verify_webhook_signature(body: bytes, signature: str, channel_secret: str) -> bool:
    """True when ``signature`` (the ``X-Line-Signature`` header) is the body's HMAC-SHA256 under the secret.

    Verify the raw bytes as received: re-serialized JSON would not match.
    """
    if not signature or not channel_secret:
        return False
    digest = hmac.new(channel_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode("ascii"), signature.strip())


def parse_webhook(body: bytes | str | Mapping[str, Any]) -> list[Comment]:
    """The residents' messages in a webhook call, as comments (other events are skipped).

    The author is the sender's LINE user id (or the group/room id when no user is given): the
    webhook carries no names. A non-text message becomes a placeholder such as ``[image]`` so
    that staff still see that someone wrote.
    """
    data = json.loads(body) if isinstance(body, bytes | str) else body
    comments = []
    for event in data.get("events", []):
        if event.get("type") != "message" or not isinstance(event.get("message"), dict):
            continue
        message, source = event["message"], event.get("source") or {}
        text = message.get("text") if message.get("type") == "text" else f"[{message.get('type', 'message')}]"
        author = source.get("userId") or source.get("groupId") or source.get("roomId") or "unknown"
        timestamp = event.get("timestamp")
        comments.append(
            Comment(
                remote_id=str(message.get("id")),
                text=text or "",
                author=author,
                created_at=datetime.fromtimestamp(timestamp / 1000, UTC) if isinstance(timestamp, int) else None,
            )
        )
    return comments


# --------------------------------------------------------------------------- the hook


class LineHook(PlatformHook):
    """A LINE Official Account; ``password`` is its channel access token."""

    platform = "line"
    capabilities = Capabilities(
        publish=True,
        delete=False,
        replies=False,
        images=True,
        links=True,
        comments=False,
        search_accounts=False,
        idempotency_key=True,
    )

    # ------------------------------------------------------------- protocol

    def rate_bucket(self, method: str, path: str) -> str:
        if path.endswith("/message/broadcast"):
            return "broadcast"
        return super().rate_bucket(method, path)

    def classify_error(self, response: requests.Response) -> PlatformError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return super().classify_error(response)
        status = response.status_code
        message = secrets.redact(_describe(body))
        kw: dict[str, Any] = {"platform": self.platform, "account": self.account_label, "status": status}
        if status == 409:
            accepted = response.headers.get("x-line-accepted-request-id")
            if accepted:
                return RetryKeyAccepted(message, accepted_request_id=accepted, code="retry_key_accepted", **kw)
            return PermanentlyRejected(message, kind="duplicate", code="conflict", **kw)
        if status == 429:
            if MONTHLY_LIMIT in message.lower():
                return RateLimited(message, reset_at=next_month_start_jst(), code="monthly_limit", **kw)
            return RateLimited(message, reset_at=_retry_after(response), code="rate_limit", **kw)
        if status == 401 or (body.get("error") == "invalid_request" and "token" in message.lower()):
            return AuthExpired(message, **kw)
        if status == 400:
            return PermanentlyRejected(message, kind="too_long" if _too_long(body) else "invalid", **kw)
        if status >= 500:
            return TransientError(message, **kw)
        return super().classify_error(response)

    # ------------------------------------------------------------- account

    def verify_credentials(self) -> AccountInfo:
        info = self.call("GET", "/v2/bot/info").json()
        basic_id = info.get("basicId") or self.connection.login
        return AccountInfo(
            remote_id=info["userId"],
            handle=basic_id,
            display_name=info.get("displayName"),
            url=f"https://line.me/R/ti/p/{quote(basic_id)}",
            token_expires_at=self._token_expires_at(),
        )

    def _token_expires_at(self) -> datetime | None:
        """From the token verify endpoint; long-lived tokens report no end (0), then the extra decides.

        ``POST /v2/oauth/verify`` takes the token in the form body. The ``GET /oauth2/v2.1/verify``
        variant puts it in the query string, where HTTP client debug logs and proxies record it.
        """
        verified = self.call("POST", "/v2/oauth/verify", data={"access_token": self.token}, write=False).json()
        expires_in = int(verified.get("expires_in") or 0)
        if expires_in > 0:
            return datetime.now(UTC) + timedelta(seconds=expires_in)
        return parse_time(self.extras.get("token_expires_at"))

    def account_metrics(self) -> AccountMetrics:
        """Friends (added minus blocked) from the newest finished day, plus the month's message quota."""
        stats: dict[str, Any] = {}
        today = datetime.now(JST)
        for days_back in (1, 2):
            day = (today - timedelta(days=days_back)).strftime("%Y%m%d")
            stats = self.call("GET", "/v2/bot/insight/followers", params={"date": day}).json()
            if stats.get("status") == "ready":
                break
        added, blocks = stats.get("followers"), stats.get("blocks") or 0
        quota = self.message_quota()
        extra = {"blocks": int(blocks), "messages_sent_this_month": quota["used"]}
        if added is not None:
            extra["friends_added"] = int(added)
        if stats.get("targetedReaches") is not None:
            extra["targeted_reaches"] = int(stats["targetedReaches"])
        if quota["limit"] is not None:
            extra["monthly_message_quota"] = quota["limit"]
        return AccountMetrics(followers=int(added) - int(blocks) if added is not None else None, extra=extra)

    def message_quota(self) -> dict[str, int | None]:
        """This month's message quota (``None`` when unlimited) and what has been used of it."""
        limit = self.call("GET", "/v2/bot/message/quota").json()
        used = self.call("GET", "/v2/bot/message/quota/consumption").json()
        value = limit.get("value") if limit.get("type") == "limited" else None
        return {"limit": int(value) if value is not None else None, "used": int(used.get("totalUsage") or 0)}

    # ------------------------------------------------------------- publishing

    def messages_for(self, post: OutgoingPost) -> list[dict[str, Any]]:
        """Message objects for ``post``: one text bubble (with the link), then one per image."""
        messages: list[dict[str, Any]] = [{"type": "text", "text": self.text_with_link(post)}]
        messages += [{"type": "image", "originalContentUrl": url, "previewImageUrl": url} for url in post.image_urls]
        if len(messages) > MAX_MESSAGES:
            raise PermanentlyRejected(
                f"LINE sends at most {MAX_MESSAGES} messages at once (text and {MAX_MESSAGES - 1} images), "
                f"got {len(messages)}",
                kind="bad_media",
                platform=self.platform,
                account=self.account_label,
            )
        return messages

    def publish(self, post: OutgoingPost, *, idempotency_key: str) -> PublishedPost:
        """Broadcast (or push to ``push_to``) with the retry key; a 409 for that key is success."""
        messages = self.messages_for(post)
        target = self.extras.get("push_to")
        path, body = (
            ("/v2/bot/message/push", {"to": target, "messages": messages})
            if target
            else ("/v2/bot/message/broadcast", {"messages": messages})
        )
        key = retry_key_for(idempotency_key)
        try:
            response = self.call("POST", path, json=body, headers={"X-Line-Retry-Key": key}, retry_unknown=True)
        except RetryKeyAccepted as exc:
            self.log.info("%s: retry key already accepted as request %s", self.platform, exc.accepted_request_id)
            return PublishedPost(exc.accepted_request_id, None, None, reconciled=True)
        request_id = response.headers.get("x-line-request-id") or key
        self.log.info("%s: sent as request %s", self.platform, request_id)
        return PublishedPost(request_id, None, datetime.now(UTC))

    # ------------------------------------------------------------- statistics

    def post_metrics(self, remote_id: str) -> PostMetrics:
        """Statistics of one broadcast by its request id (LINE withholds figures under 20 as null)."""
        data = self.call("GET", "/v2/bot/insight/message/event", params={"requestId": remote_id}).json()
        overview = data.get("overview") or {}
        extra = {
            name: int(overview[key])
            for name, key in (("delivered", "delivered"), ("media_played", "uniqueMediaPlayed"))
            if overview.get(key) is not None
        }
        return PostMetrics(
            remote_id=remote_id,
            impressions=_maybe_int(overview.get("uniqueImpression")),
            clicks=_maybe_int(overview.get("uniqueClick")),
            extra=extra,
        )

    # ------------------------------------------------------------- what LINE does not offer

    def delete(self, remote_id: str) -> None:
        raise self._unsupported("delete a sent message")

    def get_post(self, remote_id: str) -> RemotePost:
        raise self._unsupported("read back a sent message")

    def list_recent_posts(self, since: datetime, *, limit: int = 100) -> list[RemotePost]:
        raise self._unsupported("list sent messages")

    def comments_since(self, cursor: str | None = None, *, post_ids: Iterable[str] = ()) -> CommentPage:
        raise self._unsupported("read comments (residents' messages arrive by webhook: see parse_webhook)")

    def search_accounts(self, query: str, *, limit: int = 20) -> list[AccountInfo]:
        raise self._unsupported("search accounts")

    # ------------------------------------------------------------- webhooks

    def handle_webhook(self, body: bytes, signature: str) -> list[Comment]:
        """Verify a webhook call with the connection's channel secret, then read its messages."""
        if not verify_webhook_signature(body, signature, str(self.extras.get("channel_secret") or "")):
            raise PermanentlyRejected(
                "webhook signature does not match the channel secret",
                kind="forbidden",
                platform=self.platform,
                account=self.account_label,
            )
        return parse_webhook(body)


def _describe(body: dict[str, Any]) -> str:
    """LINE's message with each detail (``property: message``), or OAuth's error description."""
    message = str(body.get("message") or body.get("error_description") or body.get("error") or "")
    details = [
        f"{d.get('property')}: {d.get('message')}" if d.get("property") else str(d.get("message"))
        for d in body.get("details") or []
        if isinstance(d, dict)
    ]
    return f"{message} ({'; '.join(details)})" if details else message


def _too_long(body: dict[str, Any]) -> bool:
    return any(
        str(d.get("property", "")).endswith(".text") and "length" in str(d.get("message", "")).lower()
        for d in body.get("details") or []
        if isinstance(d, dict)
    )


def _retry_after(response: requests.Response) -> datetime | None:
    """LINE sends no reset for its rate limits today; honour a ``Retry-After`` should one appear."""
    value = response.headers.get("Retry-After", "").strip()
    return datetime.now(UTC) + timedelta(seconds=int(value)) if value.isdigit() else None


def _maybe_int(value: Any) -> int | None:
    return int(value) if value is not None else None
