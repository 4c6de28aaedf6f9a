"""A deferrable trigger that watches the JMA feed and fires once with the city's new warnings.

Why a trigger: watching is waiting. A deferred task holds no worker slot while the triggerer
polls the feed every minute, and resumes (``execute_complete``) only when there is something
for a person to approve.

Shape of the deferrable pair (docs/airflow-notes.md): the operator calls
``self.defer(trigger=JmaFeedTrigger.from_settings(settings, ...), method_name=...)``; the
triggerer rebuilds the trigger from :meth:`JmaFeedTrigger.serialize` — possibly on another
machine, possibly twice at once, possibly again after a restart — so everything it needs is in
JSON-safe kwargs and it keeps no state anywhere else. It yields exactly one
:class:`~airflow.triggers.base.TriggerEvent` and returns:

* ``{"kind": "jma_warnings", "warnings": [...], "cancellations": [...], "problems": [...],
  "state": {...}}`` when there are new relevant warnings. Each warning is
  :meth:`AreaWarning.to_dict` plus its ``key`` (:func:`draft_key`) and ``severity``. ``state``
  holds ``seen_keys``, ``seen_documents``, ``etag`` and ``last_modified``: the operator passes
  them back when it defers again, so the next watch starts where this one stopped.
* ``{"kind": "error", "message": ...}`` only when the feed URL itself is refused again and again
  (a 4xx other than 408/429: a configuration mistake a person must fix).

Idempotency: a run computes its answer from its kwargs and the feed alone. Two runs from the
same kwargs yield the same keys, and keys in ``seen_keys`` never fire again; the ledger
uses the same keys, so a duplicate event can at worst find its drafts already recorded.
Transient trouble (5xx, 429, time-outs, refused connections, an unreadable feed) is logged and
retried at the next poll: the trigger never dies of it. A bad bulletin is reported in
``problems`` with its URL and skipped; it never hides the good ones beside it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import tenacity
from airflow.triggers.base import BaseTrigger, TriggerEvent

from koho.config.emergency import DEFAULT_FEED_TITLES, EmergencySettings
from koho.emergency.jma import (
    MAX_DOCUMENT_BYTES,
    JmaDocumentError,
    JmaWarning,
    Watch,
    draft_key,
    nfkc,
    parse_document,
    parse_feed,
    select_new,
)

CLASS_PATH = "koho.emergency.triggers.JmaFeedTrigger"
USER_AGENT = "Koho/0.1 (city disaster-information watcher)"
#: HTTP statuses worth retrying: the server's trouble, not ours.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Attempts at one document before it is reported as a problem and given up on.
DOCUMENT_ATTEMPTS = 3


class _Transient(Exception):
    """Try again at the next poll."""


class _Refused(Exception):
    """The server answered with a client error: retrying the same request will not help."""


@dataclass
class PollResult:
    """What one poll found. ``warnings`` are JSON-safe dicts, ``problems`` are messages."""

    warnings: list[dict[str, Any]] = field(default_factory=list)
    cancellations: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_modified: bool = False
    fatal: str | None = None


class _OrderedSet:
    """Insertion-ordered, bounded: the newest ``limit`` items survive (they are the ones the
    feed can still list; the JMA's high-frequency feeds hold minutes to hours of bulletins)."""

    def __init__(self, items: Iterable[str], limit: int):
        self.limit = limit
        self._items: dict[str, None] = {}
        self.update(items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def add(self, item: str) -> None:
        self._items.pop(item, None)
        self._items[item] = None
        while len(self._items) > self.limit:
            self._items.pop(next(iter(self._items)))

    def update(self, items: Iterable[str]) -> None:
        for item in items:
            self.add(item)

    def as_list(self) -> list[str]:
        return list(self._items)


class JmaFeedPoller:
    """One poll at a time, with the state that carries from poll to poll within a run.

    Kept apart from the trigger so that tests (and a one-shot "check now" task) can poll once
    and look at the answer, and so that the trigger's own kwargs are never mutated.
    """

    def __init__(
        self,
        *,
        feed_url: str,
        watch: Watch,
        feed_titles: Sequence[str] = DEFAULT_FEED_TITLES,
        seen_keys: Iterable[str] = (),
        seen_documents: Iterable[str] = (),
        etag: str | None = None,
        last_modified: str | None = None,
        max_seen: int = 1000,
        max_client_errors: int = 5,
        log: logging.Logger | None = None,
    ):
        self.feed_url = feed_url
        self.watch = watch
        self.feed_titles = {nfkc(t) for t in feed_titles}
        self.seen_keys = _OrderedSet(seen_keys, max_seen)
        self.seen_documents = _OrderedSet(seen_documents, max_seen)
        self.etag = etag
        self.last_modified = last_modified
        self.max_client_errors = max_client_errors
        self.log = log or logging.getLogger(__name__)
        self._failures: dict[str, int] = {}
        self._client_errors = 0

    def state(self) -> dict[str, Any]:
        return {
            "seen_keys": self.seen_keys.as_list(),
            "seen_documents": self.seen_documents.as_list(),
            "etag": self.etag,
            "last_modified": self.last_modified,
        }

    async def poll(self, session: aiohttp.ClientSession) -> PollResult:
        """Fetch the feed (conditionally) and every new bulletin in it; never raises for
        network or server trouble."""
        result = PollResult()
        headers = {"User-Agent": USER_AGENT}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        try:
            status, body, response_headers = await _get(session, self.feed_url, headers)
        except _Transient as exc:
            self.log.warning("JMA feed %s: %s; will try again at the next poll", self.feed_url, exc)
            return result
        except _Refused as exc:
            self._client_errors += 1
            self.log.error("JMA feed %s: %s (%s in a row)", self.feed_url, exc, self._client_errors)
            if self._client_errors >= self.max_client_errors:
                result.fatal = (
                    f"JMA feed {self.feed_url} was refused {self._client_errors} times in a row ({exc}); "
                    "check feed_url in include/config/emergency.yaml"
                )
            return result
        self._client_errors = 0
        if status == 304:
            result.not_modified = True
            return result
        try:
            feed = parse_feed(body, self.feed_url)
        except JmaDocumentError as exc:
            self.log.warning("%s; will try again at the next poll", exc)
            return result
        for problem in feed.problems:
            self.log.warning("%s", problem)

        complete = True
        bulletins: list[JmaWarning] = []
        wanted: list[str] = []  # the feed may list one document twice: fetch it once
        for entry in feed.entries:
            if nfkc(entry.title) not in self.feed_titles or entry.link in self.seen_documents:
                continue
            if entry.link not in wanted:
                wanted.append(entry.link)
        for url in wanted:
            try:
                _, data, _ = await _get(session, url, {"User-Agent": USER_AGENT})
            except (_Transient, _Refused) as exc:
                attempts = self._failures[url] = self._failures.get(url, 0) + 1
                if attempts < DOCUMENT_ATTEMPTS:
                    self.log.warning("JMA document %s: %s (attempt %s); will try again", url, exc, attempts)
                    complete = False
                    continue
                message = f"JMA document {url}: {exc}; gave up after {attempts} attempts"
                self.log.error("%s", message)
                result.problems.append(message)
                self.seen_documents.add(url)
                continue
            try:
                bulletin = parse_document(data, url)
            except JmaDocumentError as exc:
                self.log.error("%s; skipped", exc)
                result.problems.append(str(exc))
                self.seen_documents.add(url)
                continue
            except Exception as exc:  # a parser bug must not stop the watcher either
                self.log.exception("JMA document %s could not be read; skipped", url)
                result.problems.append(f"JMA document {url}: unexpected {type(exc).__name__}: {exc}")
                self.seen_documents.add(url)
                continue
            for problem in bulletin.problems:
                self.log.warning("%s", problem)
                result.problems.append(problem)
            bulletins.append(bulletin)
            self.seen_documents.add(url)
            self._failures.pop(url, None)

        selection = select_new(bulletins, self.watch, self.seen_keys.as_list())
        for area_warning in selection.warnings:
            key = draft_key(area_warning)
            self.seen_keys.add(key)
            result.warnings.append({"key": key, "severity": area_warning.severity, **area_warning.to_dict()})
        result.cancellations = [c.to_dict() for c in selection.cancellations]
        if complete:
            # Only now: a feed version with a bulletin still to fetch must be listed again.
            self.etag = response_headers.get("etag") or None
            self.last_modified = response_headers.get("last-modified") or None
        return result


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    try:
        async with session.get(url, headers=headers, allow_redirects=True) as response:
            if response.status == 304:
                return 304, b"", _headers(response)
            if response.status in TRANSIENT_STATUSES or response.status >= 500:
                raise _Transient(f"HTTP {response.status} {response.reason or ''}".strip())
            if response.status >= 400:
                raise _Refused(f"HTTP {response.status} {response.reason or ''}".strip())
            body = await _read_limited(response)
            return response.status, body, _headers(response)
    except (_Transient, _Refused):
        raise
    except TimeoutError:
        raise _Transient("timed out") from None
    except aiohttp.ClientError as exc:
        raise _Transient(f"{type(exc).__name__}: {exc}") from None


def _headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    """Response headers with lower-case names (a plain dict is case-sensitive)."""
    return {name.lower(): value for name, value in response.headers.items()}


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise _Refused(f"response larger than {MAX_DOCUMENT_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class JmaFeedTrigger(BaseTrigger):
    """Poll a JMA Atom feed until it lists new warnings for the city, then fire once.

    :param feed_url: the ``extra.xml`` feed (real: https://www.data.jma.go.jp/developer/xml/feed/extra.xml).
    :param area_codes: 7-digit JMA municipality codes of the city.
    :param kinds: warning kinds the city posts about (大雨特別警報, 大雨警報, ...).
    :param statuses: kind statuses that make a post (default 発表 only).
    :param feed_titles: feed entry titles whose documents are fetched (default VPWW54).
    :param poll_interval: seconds between polls (the JMA updates the feed about once a minute).
    :param request_timeout: seconds allowed per HTTP request.
    :param seen_keys: draft keys already handled; they never fire again.
    :param seen_documents: document URLs already read; they are not fetched again.
    :param etag: / :param last_modified: validators of the last fully read feed version.
    :param max_seen: bound on the two seen lists (kwargs stay small in the trigger table).
    """

    def __init__(
        self,
        *,
        feed_url: str,
        area_codes: Sequence[str],
        kinds: Sequence[str],
        statuses: Sequence[str] = ("発表",),
        feed_titles: Sequence[str] = DEFAULT_FEED_TITLES,
        poll_interval: float = 60.0,
        request_timeout: float = 20.0,
        seen_keys: Sequence[str] = (),
        seen_documents: Sequence[str] = (),
        etag: str | None = None,
        last_modified: str | None = None,
        max_seen: int = 1000,
    ):
        super().__init__()
        if not feed_url.startswith(("http://", "https://")):
            raise ValueError(f"feed_url must be an http(s) URL, got {feed_url!r}")
        if not area_codes:
            raise ValueError("area_codes must name at least one 7-digit JMA area code")
        if not kinds:
            raise ValueError("kinds must name at least one warning kind")
        if poll_interval <= 0 or request_timeout <= 0:
            raise ValueError("poll_interval and request_timeout must be positive")
        self.feed_url = feed_url
        self.area_codes = [str(c) for c in area_codes]
        self.kinds = [str(k) for k in kinds]
        self.statuses = [str(s) for s in statuses]
        self.feed_titles = [str(t) for t in feed_titles]
        self.poll_interval = float(poll_interval)
        self.request_timeout = float(request_timeout)
        self.max_seen = int(max_seen)
        self.seen_keys = list(seen_keys)[-self.max_seen :]
        self.seen_documents = list(seen_documents)[-self.max_seen :]
        self.etag = etag
        self.last_modified = last_modified

    @classmethod
    def from_settings(cls, settings: EmergencySettings, **state: Any) -> JmaFeedTrigger:
        """The trigger for ``settings``; ``state`` is the ``state`` of the previous event, if any."""
        return cls(
            feed_url=settings.feed_url,
            area_codes=settings.area_codes,
            kinds=settings.kinds,
            statuses=settings.statuses,
            feed_titles=settings.feed_titles,
            poll_interval=settings.poll_interval_seconds,
            **state,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASS_PATH, {
            "feed_url": self.feed_url,
            "area_codes": list(self.area_codes),
            "kinds": list(self.kinds),
            "statuses": list(self.statuses),
            "feed_titles": list(self.feed_titles),
            "poll_interval": self.poll_interval,
            "request_timeout": self.request_timeout,
            "seen_keys": list(self.seen_keys),
            "seen_documents": list(self.seen_documents),
            "etag": self.etag,
            "last_modified": self.last_modified,
            "max_seen": self.max_seen,
        }

    def poller(self) -> JmaFeedPoller:
        """A fresh poller starting from this trigger's kwargs (never from an earlier run)."""
        return JmaFeedPoller(
            feed_url=self.feed_url,
            watch=Watch(tuple(self.area_codes), tuple(self.kinds), tuple(self.statuses)),
            feed_titles=self.feed_titles,
            seen_keys=self.seen_keys,
            seen_documents=self.seen_documents,
            etag=self.etag,
            last_modified=self.last_modified,
            max_seen=self.max_seen,
            log=self.log,
        )

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.request_timeout))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        poller = self.poller()
        problems: list[str] = []  # bad bulletins met on the way, reported with the event
        pause: float | None = None  # until the next poll; None once there is something to say

        async with self.session() as session:

            async def look() -> PollResult:
                nonlocal problems, pause
                result = await poller.poll(session)
                problems = [*problems, *result.problems][-50:]
                pause = None if result.fatal or result.warnings else self.next_pause()
                return result

            # Poll again while nothing was found and the watch goes on; a poll never raises for
            # network or server trouble (it is retried at the next poll), so this is the only loop.
            result = await tenacity.AsyncRetrying(
                retry=tenacity.retry_if_result(lambda _: pause is not None),
                wait=lambda _: pause or 0.0,
                sleep=asyncio.sleep,
            )(look)
            if result.fatal:
                yield TriggerEvent({"kind": "error", "feed_url": self.feed_url, "message": result.fatal})
                return
            if result.warnings:
                self.log.info(
                    "JMA feed %s: %s new warning(s) for %s",
                    self.feed_url,
                    len(result.warnings),
                    ", ".join(self.area_codes),
                )
                await self.before_firing()
                yield TriggerEvent(
                    {
                        "kind": "jma_warnings",
                        "feed_url": self.feed_url,
                        "warnings": result.warnings,
                        "cancellations": result.cancellations,
                        "problems": problems,
                        "state": poller.state(),
                    }
                )
                return
            yield TriggerEvent(
                {"kind": "window_end", "feed_url": self.feed_url, "problems": problems, "state": poller.state()}
            )

    async def before_firing(self) -> None:
        """Called with new warnings in hand, just before the event: nothing to wait for here."""

    def next_pause(self) -> float | None:
        """Seconds until the next poll, or ``None`` when the watch is over (it then fires
        ``{"kind": "window_end"}`` with its state). This trigger watches until it finds something."""
        return self.poll_interval
