"""What the Meta hooks (Facebook Page, Instagram, Threads) share: the Graph API's conventions.

* **Versioned paths.** Every call goes to ``/{api_version}/{node}/{edge}``; the version comes from
  the connection extra ``api_version`` (default per host) so that moving to a newer Graph version
  is a configuration change, not a release.
* **The token** travels in ``Authorization: Bearer`` (Graph accepts it like ``access_token``), so it
  never sits in a URL, a paging link or a log line. Paging follows ``paging.cursors.after``
  rather than ``paging.next``, because ``next`` links echo ``access_token`` when it was a query
  parameter.
* **Errors** are ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``; the
  code (and subcode) decides the taxonomy, not the HTTP status: Graph answers most errors with
  400, throttling included.
* **Usage headers** ``X-App-Usage`` and ``X-Business-Use-Case-Usage`` give percentages of an
  allowance, not counters; they become a :class:`RateLimitInfo` with ``limit=100`` (percent) and a
  reset from ``estimated_time_to_regain_access`` (minutes).
* **Containers** (Instagram, Threads) publish in two steps; :class:`ContainerHook` remembers the
  container per idempotency key so that a retry reuses it and "did it post?" is answered by the
  container's status, which is how those platforms are meant to be reconciled.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import requests

from koho import secrets
from koho.platforms.base import PlatformHook, RateLimitInfo, normalized_text, parse_time
from koho.platforms.errors import (
    AuthExpired,
    PermanentlyRejected,
    PlatformError,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from koho.platforms.types import Comment, CommentPage, OutgoingPost, PublishedPost, RemotePost

#: Default Graph API version for graph.facebook.com (Facebook Pages, Instagram). Override per
#: connection with the extra ``api_version``; Meta supports each version for about two years.
DEFAULT_GRAPH_VERSION = "v21.0"

TRANSIENT_CODES = frozenset({1, 2, -1, -2})
#: 4 app, 17 user, 32 Page (user token), 613 custom; 80000-80014 Business Use Case throttles
#: (80001 Pages, 80002 Instagram, ...).
#: Container statuses that end the wait: ready, already out, or beyond repair.
_SETTLED = frozenset({"FINISHED", "PUBLISHED", "ERROR", "EXPIRED"})
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
AUTH_CODES = frozenset({102, 190})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
BLOCKED_CODE = 368
DUPLICATE_CODE = 506
QUOTA_CODE = 9
QUOTA_SUBCODES = frozenset({2207042})
SPAM_BLOCK_SUBCODES = frozenset({2207051})  # code 4, but an action block: retrying makes it worse
NOT_READY = frozenset({9007, 2207027, 4279009})
TOO_LONG = frozenset({36004, 2207010})
BAD_MEDIA = frozenset({9004, 36000, 36001, 36002, 36003, 2207004, 2207005, 2207009, 2207023, 2207026, 2207052, 2207053})
NOT_FOUND_SUBCODES = frozenset({33, 2207013})
AUTH_SUBCODES = {
    458: "the app is not authorised",
    460: "the password changed or the session was invalidated",
    463: "the token has expired",
    467: "the token is invalid",
}
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v")


class _RedactSecrets(logging.Filter):
    """urllib3 logs request lines at DEBUG; ``debug_token`` must carry the token in its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = secrets.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def _install_redaction() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
        logger.addFilter(_RedactSecrets())


_install_redaction()


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class GraphErrorInfo:
    """The ``error`` object of a Graph answer."""

    code: int | None
    subcode: int | None
    type: str
    message: str
    user_title: str | None = None
    user_msg: str | None = None
    transient: bool = False
    trace: str | None = None

    @classmethod
    def parse(cls, response: requests.Response) -> GraphErrorInfo | None:
        try:
            body = response.json()
        except ValueError:
            return None
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return None
        return cls(
            code=_int_or_none(err.get("code")),
            subcode=_int_or_none(err.get("error_subcode")),
            type=str(err.get("type") or ""),
            message=str(err.get("message") or ""),
            user_title=err.get("error_user_title"),
            user_msg=err.get("error_user_msg"),
            transient=bool(err.get("is_transient")),
            trace=err.get("fbtrace_id"),
        )

    @property
    def codes(self) -> frozenset[int]:
        return frozenset(c for c in (self.code, self.subcode) if c is not None)

    def describe(self) -> str:
        """A sentence for people: the platform's message, its user message, and the trace id."""
        text = self.message
        if self.user_msg and self.user_msg not in text:
            text = f"{text} — {self.user_msg}"
        if self.trace:
            text = f"{text} [fbtrace_id {self.trace}]"
        return secrets.redact(text)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def usage_from_headers(headers: Any) -> tuple[float | None, float | None]:
    """The worst usage percentage and the longest wait (minutes) in Meta's usage headers."""
    percents: list[float] = []
    waits: list[float] = []
    raw_app = headers.get("X-App-Usage") or headers.get("X-Ad-Account-Usage")
    if raw_app:
        app = _json_header(raw_app)
        if isinstance(app, dict):
            percents.extend(_percents(app))
    raw_buc = headers.get("X-Business-Use-Case-Usage")
    if raw_buc:
        buc = _json_header(raw_buc)
        for entries in buc.values() if isinstance(buc, dict) else []:
            for entry in entries if isinstance(entries, list) else [entries]:
                if isinstance(entry, dict):
                    percents.extend(_percents(entry))
                    wait = _number(entry.get("estimated_time_to_regain_access"))
                    if wait is not None:
                        waits.append(wait)
    return (max(percents) if percents else None), (max(waits) if waits else None)


def _json_header(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _percents(entry: dict[str, Any]) -> list[float]:
    return [v for k in ("call_count", "total_cputime", "total_time") if (v := _number(entry.get(k))) is not None]


def insight_values(body: dict[str, Any]) -> dict[str, int]:
    """``{"data": [{"name", "values": [{"value"}]} | {"name", "total_value": {"value"}}]}`` -> name -> int.

    A value that is itself a breakdown (``{"like": 3, "love": 1}``) counts as its sum.
    """
    out: dict[str, int] = {}
    for row in body.get("data") or []:
        if not isinstance(row, dict) or "name" not in row:
            continue
        value: Any = None
        if isinstance(row.get("total_value"), dict):
            value = row["total_value"].get("value")
        elif row.get("values"):
            value = row["values"][-1].get("value")
        if isinstance(value, dict):
            value = sum(v for v in value.values() if isinstance(v, int | float))
        if isinstance(value, int | float):
            out[str(row["name"])] = int(value)
    return out


@dataclass(frozen=True)
class PublishingQuota:
    """A per-account publishing quota in a moving window (Instagram, Threads)."""

    used: int
    total: int
    window_seconds: int

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.used)


@dataclass(frozen=True)
class CommentCursor:
    """Where ``comments_since`` stopped: the newest comment time seen and the ids seen at that second.

    Graph times have second precision, so two comments in the same second are told apart by id;
    the cursor is the text ``<ISO time>|<id>,<id>`` (opaque to callers).
    """

    time: datetime | None = None
    ids: frozenset[str] = frozenset()

    @classmethod
    def decode(cls, cursor: str | None) -> CommentCursor:
        if not cursor:
            return cls()
        moment, _, ids = cursor.partition("|")
        try:
            when = parse_time(moment)
        except ValueError as exc:
            raise ValueError(f"not a comments cursor from this hook: {cursor[:40]!r}") from exc
        return cls(when, frozenset(i for i in ids.split(",") if i))

    def encode(self) -> str | None:
        if self.time is None:
            return None
        return f"{self.time.astimezone(UTC).isoformat()}|{','.join(sorted(self.ids))}"

    def is_new(self, comment: Comment) -> bool:
        if self.time is None or comment.created_at is None:
            return comment.remote_id not in self.ids
        if comment.created_at != self.time:
            return comment.created_at > self.time
        return comment.remote_id not in self.ids

    def advance(self, comments: Iterable[Comment]) -> CommentCursor:
        time, ids = self.time, set(self.ids)
        for comment in comments:
            if comment.created_at is None:
                continue
            if time is None or comment.created_at > time:
                time, ids = comment.created_at, {comment.remote_id}
            elif comment.created_at == time:
                ids.add(comment.remote_id)
        return CommentCursor(time, frozenset(ids))


def candidate_usernames(query: str, suffixes: Iterable[str], *, max_length: int = 30) -> list[str]:
    """Usernames worth looking up for a search query, for APIs that only resolve exact usernames.

    ``"Koho City"`` -> koho_city, koho.city, kohocity, then each with the configured suffixes
    (``_official``...). Queries that cannot be a username (Japanese names) give nothing: search
    those platforms by the romanised handle.
    """
    base = unicodedata.normalize("NFKC", query).strip().lstrip("@").lower()
    parts = [p for p in re.split(r"[\s\-]+", base) if p]
    if not parts or not all(re.fullmatch(r"[a-z0-9._]+", p) for p in parts):
        return []
    stems = list(dict.fromkeys(["_".join(parts), ".".join(parts), "".join(parts)]))
    out: list[str] = []
    for suffix in ["", *suffixes]:
        for stem in stems:
            name = f"{stem}{suffix}"
            if len(name) <= max_length and re.fullmatch(r"[a-z0-9._]+", name) and name not in out:
                out.append(name)
    return out


# ----------------------------------------------------------------------------- the hook


class GraphHook(PlatformHook):
    """Base of the Meta hooks: versioned paths, Graph errors, usage headers, cursor paging."""

    default_api_version: ClassVar[str] = DEFAULT_GRAPH_VERSION
    #: Insight metric names asked for by ``post_metrics``; Meta retires names, so the connection
    #: extra ``post_metrics`` (a JSON list or comma-separated names) overrides them.
    default_post_metrics: ClassVar[tuple[str, ...]] = ()
    #: Whether ``verify_credentials`` may ask ``GET /debug_token`` (graph.facebook.com only).
    inspects_token: ClassVar[bool] = True
    #: The usage bucket: Meta's allowances are per app / business object across endpoints.
    usage_bucket: ClassVar[str] = "usage"

    # ------------------------------------------------------------------ configuration

    @property
    def api_version(self) -> str:
        version = str(self.extras.get("api_version") or self.default_api_version).strip().strip("/")
        return version if version.startswith("v") else f"v{version}"

    def _extra_int(self, name: str, default: int) -> int:
        value = self.extras.get(name)
        try:
            return int(value) if value not in (None, "") else default
        except (TypeError, ValueError):
            self.log.warning(
                "%s: connection extra %s=%r is not a number; using %s", self.platform, name, value, default
            )
            return default

    def _extra_list(self, name: str, default: Iterable[str]) -> list[str]:
        value = self.extras.get(name)
        if value in (None, "", []):
            return list(default)
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.startswith("["):
                try:
                    value = json.loads(stripped)
                except ValueError:
                    value = stripped.strip("[]")
            if isinstance(value, str):
                value = value.split(",")
        return [str(v).strip() for v in value if str(v).strip()]

    def post_metric_names(self) -> list[str]:
        return self._extra_list("post_metrics", self.default_post_metrics)

    def comment_window_start(self) -> datetime:
        return datetime.now(UTC) - timedelta(days=self._extra_int("comment_window_days", 7))

    # ------------------------------------------------------------------ requests

    def path(self, *parts: str) -> str:
        return "/" + "/".join([self.api_version, *(str(p).strip("/") for p in parts)])

    def get_json(self, *parts: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._json(self.call("GET", self.path(*parts), params=params))

    def post_form(self, *parts: str, data: dict[str, Any], retry_unknown: bool = False) -> dict[str, Any]:
        """POST form fields, as Graph takes them. ``retry_unknown`` only for writes safe to repeat."""
        return self._json(self.call("POST", self.path(*parts), data=data, retry_unknown=retry_unknown))

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientError(
                "answer was not JSON", platform=self.platform, account=self.account_label, status=response.status_code
            ) from exc
        if not isinstance(body, dict):
            raise TransientError(
                "answer was not a JSON object",
                platform=self.platform,
                account=self.account_label,
                status=response.status_code,
            )
        return body

    def paged(self, *parts: str, params: dict[str, Any], max_pages: int = 50) -> Iterator[dict[str, Any]]:
        """Items of a paged edge, fetched lazily page by page (stop iterating to stop fetching).

        Cursor paging continues with ``after``; time-based paging (feeds read with ``since``
        answer ``next`` links with ``until``/``__paging_token`` and no cursors) continues with the
        ``next`` link's parameters, minus any ``access_token``: the link itself is never requested.
        """
        params = dict(params)
        for _ in range(max_pages):
            body = self.get_json(*parts, params=params)
            data = body.get("data") or []
            yield from data
            paging = body.get("paging") or {}
            if not data or not paging.get("next"):
                return
            after = (paging.get("cursors") or {}).get("after")
            if after:
                params["after"] = after
                continue
            following = {k: v for k, v in parse_qsl(urlsplit(paging["next"]).query) if k != "access_token"}
            if not following or following == params:
                return
            params = following
        self.log.warning("%s: stopped paging %s after %s pages", self.platform, "/".join(parts), max_pages)

    # ------------------------------------------------------------------ rate limits and errors

    def rate_bucket(self, method: str, path: str) -> str:
        return self.usage_bucket

    def parse_rate_limit(self, response: requests.Response) -> RateLimitInfo | None:
        """Usage percentages -> ``RateLimitInfo(limit=100, remaining=percent left, reset_at)``."""
        percent, wait_minutes = usage_from_headers(response.headers)
        if percent is None and wait_minutes is None:
            return None
        now = datetime.now(UTC)
        remaining = max(0, 100 - ceil(percent or 0))
        reset_at = now + timedelta(minutes=wait_minutes) if wait_minutes else None
        if reset_at is not None:
            remaining = 0  # blocked until then, whatever the percentages say
        elif remaining == 0:
            reset_at = now + timedelta(seconds=self._extra_int("throttle_wait_seconds", 60))
        return RateLimitInfo(limit=100, remaining=remaining, reset_at=reset_at)

    def classify_error(self, response: requests.Response) -> PlatformError:
        info = GraphErrorInfo.parse(response)
        if info is None or info.code is None:
            return super().classify_error(response)
        kw: dict[str, Any] = {
            "platform": self.platform,
            "account": self.account_label,
            "status": response.status_code,
            "code": f"{info.code}/{info.subcode}" if info.subcode else str(info.code),
        }
        text = info.describe()
        codes = info.codes
        if info.code in AUTH_CODES:
            why = AUTH_SUBCODES.get(info.subcode or 0, "the token was rejected")
            return AuthExpired(f"{why}; renew the connection's token ({text})", **kw)
        if info.code == QUOTA_CODE or codes & QUOTA_SUBCODES:
            reset = datetime.now(UTC) + timedelta(days=1)
            return RateLimited(
                f"publishing quota reached; it frees up over a moving 24 h ({text})", reset_at=reset, **kw
            )
        if info.code == BLOCKED_CODE or codes & SPAM_BLOCK_SUBCODES:
            return PermanentlyRejected(
                f"the account is temporarily blocked from this action; a person should "
                f"check it in the app before posting again ({text})",
                kind="forbidden",
                **kw,
            )
        if info.code in THROTTLE_CODES:
            return RateLimited(f"throttled ({text})", reset_at=self._throttle_reset(response), **kw)
        if info.code in TRANSIENT_CODES or codes & NOT_READY:
            return TransientError(text, **kw)
        return self._classify_rejection(info, text, kw) or super().classify_error(response)

    def _classify_rejection(self, info: GraphErrorInfo, text: str, kw: dict[str, Any]) -> PlatformError | None:
        codes = info.codes
        if info.code in PERMISSION_CODES:
            return PermanentlyRejected(f"missing permission ({text})", kind="forbidden", **kw)
        if info.code == DUPLICATE_CODE:
            return PermanentlyRejected(f"duplicate post ({text})", kind="duplicate", **kw)
        if codes & TOO_LONG:
            return PermanentlyRejected(text, kind="too_long", **kw)
        if codes & BAD_MEDIA:
            return PermanentlyRejected(text, kind="bad_media", **kw)
        if info.subcode in NOT_FOUND_SUBCODES or info.code == 110:
            return PermanentlyRejected(text, kind="not_found", **kw)
        if info.code == 100:
            kind = "too_long" if re.search(r"at most \d+ characters|too long", info.message) else "invalid"
            return PermanentlyRejected(text, kind=kind, **kw)
        if info.transient:
            return TransientError(text, **kw)
        return None

    def _throttle_reset(self, response: requests.Response) -> datetime:
        info = self.parse_rate_limit(response)
        if info is not None and info.reset_at is not None:
            return info.reset_at
        return datetime.now(UTC) + timedelta(seconds=self._extra_int("throttle_wait_seconds", 60))

    # ------------------------------------------------------------------ tokens

    def token_expires_at(self) -> datetime | None:
        """When the token expires: ``debug_token`` where the host has it, else the extra ``token_expires_at``.

        ``None`` means it does not expire (Page tokens from long-lived user tokens) or nobody knows.
        """
        fallback = parse_time(self.extras.get("token_expires_at"))
        if not self.inspects_token:
            return fallback
        try:
            data = self.get_json("debug_token", params={"input_token": self.token}).get("data") or {}
        except PlatformError as exc:
            self.log.warning(
                "%s: could not inspect the token (%s); using the extra token_expires_at", self.platform, exc.reason
            )
            return fallback
        if data.get("is_valid") is False:
            raise AuthExpired(
                "the token is no longer valid; renew the connection's token",
                platform=self.platform,
                account=self.account_label,
            )
        expires = _int_or_none(data.get("expires_at"))
        return datetime.fromtimestamp(expires, UTC) if expires else fallback

    def refresh_auth(self) -> bool:
        """Never refreshed here: a refreshed long-lived token must be stored, which a hook cannot do safely.

        Instagram (``ig_refresh_token``) and Threads (``th_refresh_token``) return a *new* token; the old
        one stays valid until it expires. Persisting it would mean writing the Airflow connection
        from inside a task (read-only secrets backends, concurrent workers racing). Koho instead
        reports ``token_expires_at`` from ``verify_credentials`` so people renew in time.
        """
        return False

    # ------------------------------------------------------------------ comments

    def comments_since(self, cursor: str | None = None, *, post_ids: Iterable[str] = ()) -> CommentPage:
        """New comments on own recent posts (or on ``post_ids``), oldest first, and the next cursor."""
        mark = CommentCursor.decode(cursor)
        ids = list(post_ids) or [p.remote_id for p in self.list_recent_posts(self.comment_window_start())]
        fresh: dict[str, Comment] = {}
        for post_id in ids:
            for comment in self._post_comments(post_id, mark.time):
                if mark.is_new(comment):
                    fresh.setdefault(comment.remote_id, comment)
        found = sorted(fresh.values(), key=lambda c: (c.created_at or datetime.min.replace(tzinfo=UTC), c.remote_id))
        return CommentPage(found, mark.advance(found).encode() or cursor)

    def _post_comments(self, post_id: str, after: datetime | None) -> Iterator[Comment]:
        """Comments on one post (any order), excluding the account's own; ``after`` allows early stops."""
        raise self._unsupported("read comments")

    def _insights(self, node: str, names: list[str], *, edge: str = "insights") -> dict[str, int]:
        """Insight values; a refused metric list is logged (with the setting to fix), not fatal."""
        if not names:
            return {}
        try:
            return insight_values(self.get_json(node, edge, params={"metric": ",".join(names)}))
        except PermanentlyRejected as exc:
            if exc.kind != "invalid":
                raise
            self.log.warning(
                "%s: insight metrics %s were refused (%s); update the connection extra 'post_metrics'",
                self.platform,
                ",".join(names),
                exc.reason,
            )
            return {}

    def delete(self, remote_id: str) -> None:
        """``DELETE /{id}``; after an unknown first outcome, one more try where "not found" means done."""
        try:
            self.call("DELETE", self.path(remote_id), retry_unknown=False)
            return
        except UnknownOutcome:
            self.log.info("%s: delete of %s had an unknown outcome; trying once more", self.platform, remote_id)
        try:
            self.call("DELETE", self.path(remote_id), retry_unknown=False)
        except PermanentlyRejected as exc:
            if exc.kind != "not_found":
                raise
            self.log.info("%s: %s was already deleted by the earlier attempt", self.platform, remote_id)


# ----------------------------------------------------------------------------- containers


class ContainerHook(GraphHook):
    """Two-step publishing (Instagram, Threads): a container, then a publish call on it.

    ``containers`` maps an idempotency key to the container made for it. A retry reuses the
    container (a container publishes at most once, so reuse cannot double-post), and
    :meth:`find_published` asks the container's status: PUBLISHED means the publish landed.
    Operators may persist this mapping in the ledger and put it back into a fresh hook; without
    it (a killed worker), reconciliation falls back to matching the caption in recent posts.
    """

    status_field: ClassVar[str] = "status_code"
    error_field: ClassVar[str] = "status"
    container_edge: ClassVar[str] = "media"
    publish_edge: ClassVar[str] = "media_publish"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.containers: dict[str, str] = {}
        self._user: str | None = None

    # ------------------------------------------------------------------ identity

    @property
    def user_node(self) -> str:
        """The account's node id: the extra ``account_id``, else asked from ``/me`` once."""
        if self._user is None:
            configured = self.extras.get("account_id")
            self._user = str(configured) if configured else str(self.get_json("me", params={"fields": "id"})["id"])
        return self._user

    # ------------------------------------------------------------------ per platform

    def caption_for(self, post: OutgoingPost) -> str:
        """The text the container carries (what reconciliation matches)."""
        return post.text

    def check_publishable(self, post: OutgoingPost) -> None:
        """Refuse, before any call, what the platform can never accept."""

    def container_params(self, post: OutgoingPost) -> dict[str, Any]:
        raise NotImplementedError

    def child_params(self, url: str) -> dict[str, Any]:
        raise NotImplementedError

    def published_post(self, media_id: str) -> PublishedPost:
        raise NotImplementedError

    def recent_for(self, post: OutgoingPost, since: datetime) -> Iterable[RemotePost]:
        """Own posts where ``post`` would appear (replies may live on another edge)."""
        return self.list_recent_posts(since)

    # ------------------------------------------------------------------ steps

    def _poll(self) -> tuple[int, float]:
        return self._extra_int("container_poll_attempts", 30), float(self._extra_int("container_poll_seconds", 5))

    def container_status(self, container_id: str) -> tuple[str, str | None]:
        body = self.get_json(container_id, params={"fields": f"{self.status_field},{self.error_field}"})
        return str(body.get(self.status_field) or "IN_PROGRESS"), body.get(self.error_field)

    def _create(self, params: dict[str, Any]) -> str:
        # Safe to repeat: an unpublished container is invisible and expires after 24 h.
        body = self.post_form(self.user_node, self.container_edge, data=params, retry_unknown=True)
        return str(body["id"])

    def _make_container(self, post: OutgoingPost) -> str:
        if len(post.image_urls) > 1:
            children = []
            for url in post.image_urls:
                child = self._create({**self.child_params(url), "is_carousel_item": "true"})
                self._wait_until_finished(child)
                children.append(child)
            return self._create(
                {**self.container_params(post), "media_type": "CAROUSEL", "children": ",".join(children)}
            )
        return self._create(self.container_params(post))

    def _wait_until_finished(self, container_id: str, key: str | None = None, status: str | None = None) -> None:
        attempts, interval = self._poll()
        known = iter([(status, None)] if status is not None else [])

        def check() -> tuple[str, str | None]:  # a status the caller already read counts as the first check
            return next(known, None) or self.container_status(container_id)

        status, detail = self.poll(
            check, lambda answer: answer[0] in _SETTLED, checks=attempts, wait=lambda _check: interval
        )
        if status == "FINISHED":
            return
        if status == "PUBLISHED":
            raise UnknownOutcome(
                f"container {container_id} is already published; reconciling",
                platform=self.platform,
                account=self.account_label,
            )
        if status in ("ERROR", "EXPIRED"):
            if key is not None:
                self.containers.pop(key, None)
            if status == "ERROR":
                raise PermanentlyRejected(
                    f"the media could not be processed ({secrets.redact(str(detail))})",
                    kind="bad_media",
                    platform=self.platform,
                    account=self.account_label,
                )
            raise TransientError(
                f"container {container_id} expired before publishing; a new one will be made",
                platform=self.platform,
                account=self.account_label,
            )
        raise TransientError(
            f"container {container_id} still processing after {attempts} checks; a later try reuses it",
            platform=self.platform,
            account=self.account_label,
        )

    def prepare(self, post: OutgoingPost, *, idempotency_key: str) -> str:
        """Make (or reuse) the container for ``post`` and wait until it is ready to publish.

        Useful ahead of a scheduled time: videos process for minutes, publishing is then instant.
        """
        self.check_publishable(post)
        container = self.containers.get(idempotency_key)
        status = None
        if container is not None:
            status, _ = self.container_status(container)
            if status in ("ERROR", "EXPIRED"):
                self.containers.pop(idempotency_key, None)
                container, status = None, None
        if container is None:
            container = self._make_container(post)
            self.containers[idempotency_key] = container
        self._wait_until_finished(container, idempotency_key, status)
        return container

    def publish(self, post: OutgoingPost, *, idempotency_key: str) -> PublishedPost:
        container = self.prepare(post, idempotency_key=idempotency_key)
        try:
            body = self.post_form(self.user_node, self.publish_edge, data={"creation_id": container})
        except (UnknownOutcome, RateLimited, AuthExpired):
            raise
        except PlatformError as exc:
            status, _ = self.container_status(container)
            if status == "PUBLISHED":
                raise UnknownOutcome(
                    f"container {container} was published by an earlier attempt",
                    platform=self.platform,
                    account=self.account_label,
                ) from exc
            raise
        media_id = str(body["id"])
        self.log.info("%s: published container %s as %s", self.platform, container, media_id)
        return self.published_post(media_id)

    def find_published(self, post: OutgoingPost, *, idempotency_key: str, since: datetime) -> PublishedPost | None:
        container = self.containers.get(idempotency_key)
        if container is not None:
            status, _ = self.container_status(container)
            if status != "PUBLISHED":
                if status in ("ERROR", "EXPIRED"):
                    self.containers.pop(idempotency_key, None)
                return None  # not published: the next attempt publishes this same container
            found = self._match(post, since)
            if found is None:
                raise UnknownOutcome(
                    f"container {container} is PUBLISHED but its post is not listed yet; reconcile again later",
                    platform=self.platform,
                    account=self.account_label,
                )
            return found
        return self._match(post, since)

    def _match(self, post: OutgoingPost, since: datetime) -> PublishedPost | None:
        want = normalized_text(self.caption_for(post))
        for remote in self.recent_for(post, since):
            if normalized_text(remote.text) == want:
                return PublishedPost(remote.remote_id, remote.url, remote.created_at, reconciled=True)
        return None

    def publishing_quota(self) -> PublishingQuota:
        raise NotImplementedError

    def _quota(self, edge: str) -> PublishingQuota:
        body = self.get_json(self.user_node, edge, params={"fields": "quota_usage,config"})
        row = (body.get("data") or [{}])[0]
        config = row.get("config") or {}
        return PublishingQuota(
            used=int(row.get("quota_usage") or 0),
            total=int(config.get("quota_total") or 0),
            window_seconds=int(config.get("quota_duration") or 86400),
        )


def is_video(url: str) -> bool:
    return url.lower().split("?", 1)[0].endswith(VIDEO_SUFFIXES)


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def stop_before(
    items: Iterable[RemotePost],
    since: datetime,
    limit: int,
    key: Callable[[RemotePost], datetime | None] = lambda p: p.created_at,
) -> list[RemotePost]:
    """Newest-first items down to ``since`` (and at most ``limit``)."""
    out: list[RemotePost] = []
    floor = since.replace(microsecond=0)
    for item in items:
        moment = key(item)
        if moment is not None and moment < floor:
            break
        out.append(item)
        if len(out) >= limit:
            break
    return out
