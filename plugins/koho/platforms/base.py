"""The shared platform hook: connection, HTTP exchange, error taxonomy, rate limits, exactly-once.

Every platform module subclasses :class:`PlatformHook` and implements the protocol-specific
parts (paths, JSON shapes, error bodies, rate-limit headers). What is the same everywhere lives
here once:

* the connection gives the base URL (``host``; empty means the real API at ``default_host``),
  the token (``password``) and platform settings (``extra``). Pointing ``host`` at the sandbox
  or at the real API is the only difference between a test and production.
* one HTTP exchange is classified into the taxonomy of :mod:`koho.platforms.errors`; a write
  that timed out or got a 5xx is an :class:`UnknownOutcome`, never a plain failure.
* the platform's rate-limit headers are remembered per bucket; when a window is used up the
  hook waits for its reset *before* sending, so normal operation never sees a 429.
* :meth:`PlatformHook.publish_once` is the single place where "did it post?" is answered:
  platforms with an idempotency key retry with the same key, the others reconcile by reading
  the account's recent posts before sending again.
"""

from __future__ import annotations

import mimetypes
import random
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote, urlparse

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook, _process_extra_options_from_connection

from koho import secrets
from koho.collection.budgets import AnnouncedWindows, Window, budget_key
from koho.platforms.catalog import PLATFORMS as CATALOG
from koho.platforms.errors import (
    AuthExpired,
    NotSupported,
    PermanentlyRejected,
    PlatformError,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from koho.platforms.types import (
    AccountInfo,
    AccountMetrics,
    Capabilities,
    CommentPage,
    OutgoingPost,
    PostMetrics,
    PublishedPost,
    RemotePost,
)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a hook tries before giving up and letting Airflow's task retry take over.

    ``max_wait`` bounds any single wait (a rate-limit reset further away than that is raised
    as :class:`RateLimited` so the task can be rescheduled instead of holding a worker).
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_wait: float = 900.0

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff, jittered between half and all of the cap (attempt counts from 1).

        Hand-written because tenacity's ``wait_random_exponential`` jitters from zero: a retry
        could follow a 5xx at once, which is what backing off is for avoiding.
        """
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


@dataclass(frozen=True)
class RateLimitInfo:
    """A platform's view of one rate-limit window, read from its response headers."""

    limit: int | None
    remaining: int | None
    reset_at: datetime | None


class WriteBudget:
    """A client-side sliding window: at most ``calls`` writes per ``seconds`` for one account.

    Configured per account below the platform's own limit, so Koho stays under it even before the
    first response tells it the real numbers, and on platforms that send none (LINE). One rule
    decides which budget a hook uses: the connection extra's ``write_budget`` (``[calls, seconds]``)
    when set, as the operator's per-connection override (e.g. a token on a lower access tier);
    else the one the caller passes, which the sender takes from ``accounts.yaml`` ``caps.write_budget``
    or policy.yaml's per-platform ``write_budgets``; else none.

    The window is kept in the shared budget store (:mod:`koho.collection.budgets`) under the
    hook's platform and connection, so every process posting to the account draws on the same
    one. A write counts from when it is allowed (the request's transit is one reason a budget is
    set below the limit); ``seconds`` is rounded up to whole seconds.
    """

    def __init__(
        self, calls: int, seconds: float, *, storage: Any = None, clock: Callable[[], float] = time.time
    ) -> None:
        if calls < 1 or seconds <= 0:
            raise ValueError("a write budget needs calls >= 1 and seconds > 0")
        self.calls, self.seconds = calls, seconds
        self._storage, self._clock = storage, clock
        self._window: Window | None = None

    def bind(self, key: str) -> None:
        """Count this budget under ``key`` (the hook's account); the first binding stays."""
        if self._window is None:
            self._window = Window(key, self.calls, self.seconds, self._storage, self._clock)

    def delay(self) -> float:
        """Seconds to wait before the next write fits; records the write when it is 0."""
        if self._window is None:
            raise RuntimeError("a write budget counts for an account: bind() it to the account's key first")
        return self._window.acquire()


_URL = re.compile(r"https?://\S+")


def normalized_text(text: str) -> str:
    """Text as compared when reconciling: NFKC, URLs dropped (platforms rewrite them), spaces folded."""
    text = unicodedata.normalize("NFKC", text)
    text = _URL.sub("", text)
    return " ".join(text.split())


class PlatformHook(HttpHook):
    """Base of every platform hook. Subclasses set the class attributes and the protocol methods."""

    conn_name_attr = "koho_conn_id"
    default_conn_name = "koho_default"
    conn_type = "koho_platform"
    hook_name = "Koho platform"

    platform: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: Seconds to let an unanswered write land before reconciling (platforms without idempotency
    #: keys): a request that outlived the hook's timeout can still be applied afterwards, and a
    #: retry decided on an earlier read would then be a second post. 0 where the platform itself
    #: refuses the second copy (Bluesky's record key).
    in_flight_grace: ClassVar[float] = 45.0
    # Identity and connection-form fields come from koho.platforms.catalog (see __init_subclass__):
    #: The real API's base URL, used when the connection has no host.
    default_host: ClassVar[str] = ""
    #: Extra fields shown on the connection form: name -> (label, description).
    extra_fields: ClassVar[dict[str, tuple[str, str]]] = {}
    #: Names of extra fields that hold secrets (never logged, masked in the UI).
    secret_extra_fields: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Take the platform's identity (connection type, names, form fields) from the catalog."""
        super().__init_subclass__(**kwargs)
        info = CATALOG.get(cls.__dict__.get("platform", ""))
        if info is None:
            return
        cls.conn_type = info.conn_type
        cls.hook_name = info.hook_name
        cls.display_name = info.display_name
        cls.default_host = info.default_host
        cls.extra_fields = info.extra_fields
        cls.secret_extra_fields = info.secret_extra_fields

    def __init__(
        self,
        koho_conn_id: str = default_conn_name,
        *,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        write_budget: WriteBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(method="GET", http_conn_id=koho_conn_id)
        self.koho_conn_id = koho_conn_id
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._session: requests.Session | None = None
        self._windows: dict[str, RateLimitInfo] = {}
        self._announced = AnnouncedWindows()
        self._budget = write_budget

    # ----------------------------------------------------------------- connection

    @cached_property
    def connection(self) -> Any:
        conn = self.get_connection(self.koho_conn_id)
        secrets.register(conn.password)
        for name in self.secret_extra_fields:
            secrets.register(str(conn.extra_dejson.get(name) or ""))
        return conn

    @property
    def extras(self) -> dict[str, Any]:
        return self.connection.extra_dejson

    @property
    def token(self) -> str:
        return self.connection.password or ""

    @property
    def account_label(self) -> str:
        """How errors name the account: the connection's login (handle) or its id; never a secret."""
        return self.connection.login or self.koho_conn_id

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request; the default is an OAuth2-style bearer token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None):
        """One ``requests.Session`` per hook, reused across calls (keep-alive matters for bursts)."""
        if self._session is None:
            self._session = super().get_conn(headers, extra_options)
            if self.extras.get("write_budget"):  # the connection's override wins (see WriteBudget)
                calls, seconds = self.extras["write_budget"]
                self._budget = WriteBudget(int(calls), float(seconds))
            if self._budget is not None:
                self._budget.bind(budget_key(self.platform, self.koho_conn_id, "write"))
        return self._session

    def _set_base_url(self, connection) -> None:
        if not connection.host and self.default_host:
            self.base_url = self.default_host
            self._base_url_initialized = True
            return
        super()._set_base_url(connection)

    def _configure_session_from_auth(self, session: requests.Session, connection) -> requests.Session:
        # HttpHook would send login/password as basic auth; platforms want their own scheme.
        session.auth = None
        session.headers.update(self.auth_headers())
        return session

    def _configure_session_from_extra(self, session: requests.Session, connection, extra_options):
        # HttpHook turns unknown extras into headers; Koho's extras are platform settings
        # (page ids, channel secrets) that must never be sent as headers. Keep transport options only.
        _, merged = _process_extra_options_from_connection(connection, extra_options)
        self.merged_extra = merged
        session.proxies = merged.get("proxies", merged.get("proxy", {}))
        session.verify = merged.get("verify", merged.get("verify_ssl", True))
        session.trust_env = merged.get("trust_env", True)
        return session

    def url_for(self, path: str) -> str:
        self.get_conn()
        return self.url_from_endpoint(path)

    # ----------------------------------------------------------------- one exchange

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        headers: dict[str, str] | None = None,
        write: bool | None = None,
    ) -> requests.Response:
        """Send one request and return the response, or raise the taxonomy error it means.

        ``files`` makes a multipart/form-data body (media uploads), as in ``requests``.
        """
        method = method.upper()
        write = method in WRITE_METHODS if write is None else write
        session = self.get_conn()
        url = self.url_from_endpoint(path)
        try:
            response = session.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                files=files,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise TransientError(
                f"could not connect to {self.base_url}", platform=self.platform, account=self.account_label
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            if write and not _never_sent(exc):
                raise UnknownOutcome(
                    f"connection lost after sending {method} {path}; it may have been applied",
                    in_flight=True,
                    platform=self.platform,
                    account=self.account_label,
                ) from exc
            raise TransientError(
                f"could not reach {self.base_url}", platform=self.platform, account=self.account_label
            ) from exc
        except requests.exceptions.Timeout as exc:
            if write:
                raise UnknownOutcome(
                    f"no answer to {method} {path} within {self.timeout:g}s; it may have been applied",
                    in_flight=True,
                    platform=self.platform,
                    account=self.account_label,
                ) from exc
            raise TransientError(
                f"no answer to {method} {path} within {self.timeout:g}s",
                platform=self.platform,
                account=self.account_label,
            ) from exc
        info = self.parse_rate_limit(response)
        if info is not None:
            bucket = self.rate_bucket(method, path)
            self._windows[bucket] = info
            if info.remaining is not None and info.reset_at is not None:
                self._announced.note(self._window_key(bucket), info.remaining, info.reset_at)
        if response.status_code >= 400:
            error = self.classify_error(response)
            if write and isinstance(error, TransientError) and not isinstance(error, UnknownOutcome):
                # A 5xx after a write was sent does not mean it failed.
                error = UnknownOutcome(
                    f"{error.reason}; the write may have been applied",
                    platform=self.platform,
                    account=self.account_label,
                    status=error.status,
                    code=error.code,
                )
            raise error
        return response

    def call(self, method: str, path: str, *, retry_unknown: bool | None = None, **kwargs: Any) -> requests.Response:
        """:meth:`request` with the taxonomy's retry rules applied.

        Rate limits wait for the reset the platform announced; transient errors back off; an
        expired token is refreshed once where the platform allows. Writes with an unknown
        outcome are retried only when ``retry_unknown`` says the write is idempotent (reads
        always are); otherwise the caller must reconcile.
        """
        method = method.upper()
        if retry_unknown is None:
            retry_unknown = method not in WRITE_METHODS
        bucket = self.rate_bucket(method, path)
        refreshed = False

        def attempt() -> requests.Response:
            self._wait_for_window(bucket, self.request_cost(method, path))
            return self.request(method, path, **kwargs)

        def retryable(exc: BaseException) -> bool:
            nonlocal refreshed
            if isinstance(exc, AuthExpired):  # renewed once where the platform allows, at any attempt
                if refreshed or not self.refresh_auth():
                    return False
                refreshed = True
                return True
            if isinstance(exc, UnknownOutcome):
                return retry_unknown
            return isinstance(exc, RateLimited | TransientError)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = _failure(state)
            if isinstance(exc, AuthExpired):
                return 0.0  # the renewed token is tried at once
            announced = exc.seconds_to_wait() if isinstance(exc, RateLimited) else None
            return self.retry.backoff(state.attempt_number) if announced is None else announced + 0.05

        def stop(state: tenacity.RetryCallState) -> bool:
            exc = _failure(state)
            if isinstance(exc, AuthExpired):
                return False
            too_far = isinstance(exc, RateLimited) and (state.upcoming_sleep or 0.0) > self.retry.max_wait
            return too_far or state.attempt_number >= self.retry.max_attempts

        def announce(state: tenacity.RetryCallState) -> None:
            if isinstance(_failure(state), RateLimited):
                self.log.info(
                    "%s rate limited; waiting %.1fs for the window to reset", self.platform, state.upcoming_sleep
                )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable),
            wait=wait,
            stop=stop,
            before_sleep=announce,
            sleep=self._pause,
            reraise=True,
        )
        return retrying(attempt)

    def poll(
        self, check: Callable[[], T], done: Callable[[T], bool], *, checks: int, wait: Callable[[int], float]
    ) -> T:
        """``check()`` until ``done`` holds for its answer or ``checks`` checks were made; the last answer.

        For a platform still processing something (media, containers): ``wait(n)`` is the pause
        after the ``n``-th check, never after the last one. An exception from ``check`` ends it.
        """
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_not_result(done),
            stop=tenacity.stop_after_attempt(max(1, checks)),  # at least one look
            wait=lambda state: wait(state.attempt_number),
            sleep=self._pause,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome is not None else None,
        )
        return retrying(check)

    def _pause(self, seconds: float) -> None:
        """The hook's ``sleep``, for waits that are waits (a renewed token is retried at once)."""
        if seconds > 0:
            self._sleep(seconds)

    def _budgeted_publish(self, post: OutgoingPost, idempotency_key: str) -> PublishedPost:
        """One publish attempt within the account's own posting budget (see :class:`WriteBudget`)."""
        self.get_conn()  # settles which budget applies (the connection extra overrides the given one)
        if self._budget is not None:
            while (delay := self._budget.delay()) > 0:
                self._sleep(delay)
        return self.publish(post, idempotency_key=idempotency_key)

    def _window_key(self, bucket: str) -> str:
        return budget_key(self.platform, self.koho_conn_id, "window", bucket)

    def _wait_for_window(self, bucket: str, cost: int = 1) -> None:
        """Wait, before sending, for a window the platform said cannot take this request's cost.

        The window is shared (:class:`AnnouncedWindows`): a call another process made counts too.
        """
        reset_at = self._announced.take(self._window_key(bucket), cost)
        if reset_at is None:
            return
        wait = (reset_at - datetime.now(UTC)).total_seconds()
        if wait > self.retry.max_wait:
            raise RateLimited(
                f"window '{bucket}' used up until {reset_at.isoformat()}",
                reset_at=reset_at,
                platform=self.platform,
                account=self.account_label,
            )
        if wait > 0:
            self._sleep(wait + 0.05)

    @property
    def write_budget(self) -> WriteBudget | None:
        """The posting budget in force for this hook, after the connection's override (see :class:`WriteBudget`)."""
        self.get_conn()
        return self._budget

    def rate_limit_window(self, bucket: str) -> RateLimitInfo | None:
        """The last window the platform reported for ``bucket`` (for reports and benchmarks)."""
        return self._windows.get(bucket)

    # ----------------------------------------------------------------- protocol, per platform

    def rate_bucket(self, method: str, path: str) -> str:
        """Which rate-limit window a request counts against; platforms with per-endpoint limits refine it."""
        return "write" if method.upper() in WRITE_METHODS else "read"

    def request_cost(self, method: str, path: str) -> int:
        """How much of its window a request uses (Bluesky counts writes in points)."""
        return 1

    def parse_rate_limit(self, response: requests.Response) -> RateLimitInfo | None:
        """Read the platform's rate-limit headers; ``None`` when it sent none."""
        return None

    def classify_error(self, response: requests.Response) -> PlatformError:
        """Map an error response onto the taxonomy. Subclasses read their error bodies, then call this."""
        status = response.status_code
        text = secrets.redact(_short_body(response))
        kw = {"platform": self.platform, "account": self.account_label, "status": status}
        if status == 429:
            info = self.parse_rate_limit(response)
            reset_at = info.reset_at if info else _retry_after(response)
            return RateLimited(text or "rate limited", reset_at=reset_at, **kw)
        if status == 401:
            return AuthExpired(text or "token rejected", **kw)
        if status >= 500:
            return TransientError(text or "server error", **kw)
        if status == 404:
            return PermanentlyRejected(text or "not found", kind="not_found", **kw)
        if status == 403:
            return PermanentlyRejected(text or "forbidden", kind="forbidden", **kw)
        return PermanentlyRejected(text or f"rejected with HTTP {status}", **kw)

    def refresh_auth(self) -> bool:
        """Renew an expired session token if the platform allows it; ``True`` when renewed."""
        return False

    def _unsupported(self, operation: str) -> NotSupported:
        return NotSupported(
            f"{self.display_name or self.platform} has no API to {operation}",
            platform=self.platform,
            account=self.account_label,
        )

    @staticmethod
    def text_with_link(post: OutgoingPost, separator: str = "\n") -> str:
        """The text to send: the fitted text, with the link appended when the text does not carry it."""
        if post.link and post.link not in post.text:
            return f"{post.text}{separator}{post.link}"
        return post.text

    def read_image(self, url: str) -> tuple[bytes, str]:
        """Image bytes from a local path, ``file://`` URL or http(s) URL, with their media type.

        Platforms that take uploads rather than public URLs (Bluesky, X, Mastodon) read the
        image here; a file or URL that cannot be read is the image's fault, not the platform's.
        """
        parsed = urlparse(url)
        try:
            if parsed.scheme in ("http", "https"):
                response = requests.get(url, timeout=self.timeout)
                response.raise_for_status()
                mime = response.headers.get("Content-Type", "").split(";")[0]
                return response.content, mime or mimetypes.guess_type(parsed.path)[0] or "image/jpeg"
            path = Path(unquote(parsed.path) if parsed.scheme == "file" else url)
            return path.read_bytes(), mimetypes.guess_type(path.name)[0] or "image/jpeg"
        except (OSError, requests.RequestException) as exc:
            raise PermanentlyRejected(
                f"could not read image {url}: {secrets.redact(str(exc))}",
                kind="bad_media",
                platform=self.platform,
                account=self.account_label,
            ) from exc

    def read_images(self, urls: Iterable[str], *, max_count: int, max_bytes: int) -> list[tuple[bytes, str]]:
        """Every image of a post, checked against the platform's limits before anything is uploaded.

        The count is checked before reading and the sizes after reading all of them, so a post
        the platform would refuse never leaves orphan uploads behind or spends upload quota.
        """
        urls = list(urls)
        name = self.display_name or self.platform
        if len(urls) > max_count:
            raise PermanentlyRejected(
                f"a {name} post takes at most {max_count} images, got {len(urls)}",
                kind="bad_media",
                platform=self.platform,
                account=self.account_label,
            )
        images = [self.read_image(url) for url in urls]
        for url, (data, _) in zip(urls, images, strict=True):
            if len(data) > max_bytes:
                raise PermanentlyRejected(
                    f"image {url} is {len(data):,} bytes; {name} takes images up to {max_bytes:,} bytes",
                    kind="bad_media",
                    platform=self.platform,
                    account=self.account_label,
                )
        return images

    def verify_credentials(self) -> AccountInfo:
        """Who the token belongs to, and when the token expires if the platform says."""
        raise self._unsupported("verify credentials")

    def publish(self, post: OutgoingPost, *, idempotency_key: str) -> PublishedPost:
        """Send one post once. May raise :class:`UnknownOutcome`; callers use :meth:`publish_once`."""
        raise self._unsupported("publish")

    def delete(self, remote_id: str) -> None:
        raise self._unsupported("delete a post")

    def get_post(self, remote_id: str) -> RemotePost:
        raise self._unsupported("read a post")

    def list_recent_posts(self, since: datetime, *, limit: int = 100) -> list[RemotePost]:
        """The account's own posts created at or after ``since``, newest first."""
        raise self._unsupported("list its own posts")

    def post_metrics(self, remote_id: str) -> PostMetrics:
        raise self._unsupported("read post metrics")

    def account_metrics(self) -> AccountMetrics:
        raise self._unsupported("read account metrics")

    def comments_since(self, cursor: str | None = None, *, post_ids: Iterable[str] = ()) -> CommentPage:
        """Replies, comments and mentions newer than ``cursor`` (all recent ones when ``None``)."""
        raise self._unsupported("read comments")

    def search_accounts(self, query: str, *, limit: int = 20) -> list[AccountInfo]:
        raise self._unsupported("search accounts")

    # ----------------------------------------------------------------- exactly once

    def find_published(self, post: OutgoingPost, *, idempotency_key: str, since: datetime) -> PublishedPost | None:
        """Reconcile an unknown outcome: the post if it is already on the account, else ``None``.

        The default reads the account's recent posts and matches the text; platforms with a
        better route (container status, createdAt) override it.
        """
        want = normalized_text(post.text)
        for remote in self.list_recent_posts(since):
            if normalized_text(remote.text) == want:
                return PublishedPost(remote.remote_id, remote.url, remote.created_at, reconciled=True)
        return None

    def publish_once(
        self,
        post: OutgoingPost,
        *,
        idempotency_key: str,
        maybe_sent_before: bool = False,
        since: datetime | None = None,
    ) -> PublishedPost:
        """Publish ``post`` so that it appears exactly once, whatever fails on the way.

        ``maybe_sent_before`` is set by the caller when its ledger shows an earlier attempt that
        never recorded an outcome (a killed worker, a timed-out task): then the account is read
        before anything is sent again.
        """
        if not self.capabilities.publish:
            raise self._unsupported("publish")  # before reading anything: nothing to reconcile
        since = since or (post.created_at or datetime.now(UTC)) - timedelta(minutes=10)
        keyed = self.capabilities.idempotency_key
        if maybe_sent_before:
            # Even platforms with idempotency keys are read first: they forget keys (Mastodon
            # after an hour, LINE after a day), and an earlier attempt may be older than that.
            found = self._reconcile(post, idempotency_key=idempotency_key, since=since, optional=True)
            if found:
                self.log.info("%s: earlier attempt had landed as %s", self.platform, found.remote_id)
                return found
        last: PlatformError | None = None
        # A loop of its own, not tenacity's: between attempts it reconciles (reads the account).
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                return self._budgeted_publish(post, idempotency_key)
            except UnknownOutcome as exc:
                last = exc
            except PermanentlyRejected as exc:
                # After an unknown outcome a "duplicate" answer is a hint that the first try landed.
                if exc.kind != "duplicate" or last is None:
                    raise
                last = exc
            except (RateLimited, TransientError) as exc:
                last = exc
                wait = exc.seconds_to_wait() if isinstance(exc, RateLimited) else None
                if wait is not None and wait > self.retry.max_wait:
                    raise
                self._sleep(self.retry.backoff(attempt) if wait is None else wait + 0.05)
                continue
            if not keyed:
                if isinstance(last, UnknownOutcome) and last.in_flight and self.in_flight_grace > 0:
                    # The unanswered request may still be applied: reading now could miss it and
                    # the retry would post a second time. Let it land (or die) first.
                    self._sleep(self.in_flight_grace)
                found = self._reconcile(post, idempotency_key=idempotency_key, since=since)
                if found:
                    return found
                if isinstance(last, PermanentlyRejected):
                    raise last
            self._sleep(self.retry.backoff(attempt))
        assert last is not None
        raise last

    def _reconcile(
        self, post: OutgoingPost, *, idempotency_key: str, since: datetime, optional: bool = False
    ) -> PublishedPost | None:
        """:meth:`find_published`, where a failed read keeps the outcome *unknown*.

        Reconciliation runs exactly when an earlier write may have landed. If reading the account
        fails (a 5xx, a rate limit), the answer is "don't know", never "not sent": raising the read's
        own error (retryable) would let the caller plan the post again without reconciling, and
        post it twice. ``optional``: a platform that cannot read its posts (LINE) relies on its
        idempotency key alone.
        """
        try:
            return self.find_published(post, idempotency_key=idempotency_key, since=since)
        except NotSupported:
            if optional:
                return None
            raise
        except (RateLimited, TransientError) as exc:
            raise UnknownOutcome(
                f"an earlier attempt may have been published, and reading the account to check failed: {exc.reason}",
                platform=self.platform,
                account=self.account_label,
            ) from exc


def _failure(state: tenacity.RetryCallState) -> BaseException | None:
    """The exception the attempt that ``state`` describes ended with."""
    return state.outcome.exception() if state.outcome is not None else None


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection failed before the request left (refused, DNS), so it cannot have applied."""
    text = repr(exc)
    return any(s in text for s in ("NewConnectionError", "Connection refused", "NameResolutionError"))


def _short_body(response: requests.Response, limit: int = 300) -> str:
    return (response.text or "").strip()[:limit]


def _retry_after(response: requests.Response) -> datetime | None:
    value = response.headers.get("Retry-After")
    if value and value.strip().isdigit():
        return datetime.now(UTC) + timedelta(seconds=int(value))
    return None


def parse_time(value: str | None) -> datetime | None:
    """Parse the ISO 8601 times platforms return (``Z`` or offset; Graph API's ``+0000`` too)."""
    if not value:
        return None
    value = value.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", value):
        value = value[:-2] + ":" + value[-2:]
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
