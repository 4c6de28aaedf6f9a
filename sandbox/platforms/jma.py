"""The JMA disaster-information XML feeds (気象庁防災情報XML, PULL型), as the sandbox serves them.

Real layout (``https://www.data.jma.go.jp``), mounted here at ``/jma``:

* ``/developer/xml/feed/extra.xml`` — the high-frequency "随時" Atom feed (warnings and
  advisories); ``eqvol.xml`` (earthquakes, volcanoes), ``regular.xml`` and ``other.xml`` and the
  long ``*_l.xml`` variants exist too and are served (empty unless something is published to
  them). Each ``<entry>`` has the document URL as both ``<id>`` and ``<link href>``, the
  bulletin's ``Control/Title`` as ``<title>``, the editorial office as ``<author><name>`` and
  ``【Head/Title】Headline`` as ``<content type="text">``; newest first.
* ``/developer/xml/data/<name>.xml`` — one bulletin, named like the real ones
  (``20250709201205_0_VPWW54_120000.xml``: UTC time, serial, data type code, office area code).

Like the real static server the feeds answer conditional requests: ``ETag`` (a digest of the
body) with ``If-None-Match``, which wins, and ``Last-Modified`` with ``If-Modified-Since``,
both answered by ``304 Not Modified`` without a body. Faults injected for platform ``jma``
(``server_error``, ``slow``, ``lost_response``, ``rate_limit``) apply to feeds and documents.

The sample bulletins in ``jma_samples/`` are fictional: the demo city こほ市 (area code
``1229900``; ``KOHO_SANDBOX_JMA_AREA_CODE``/``_NAME`` or :func:`configure_city` change it) and
two invented neighbours, in the shape of VPWW54 (気象警報・注意報（Ｈ２７）). At start the
``extra`` feed lists: a heavy-rain bulletin (listed twice: the duplicate-entry case), a storm
bulletin and its 取消, and a drill (訓練). ``special`` (大雨特別警報), ``all_clear`` (解除),
``malformed`` and ``entity_bomb`` are published on demand with :func:`publish_sample`, or over
HTTP with ``POST /jma/_sandbox/publish/{name}`` for a sandbox running in another process.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from sandbox.common import SandboxError, gate, lost_response, state_of, sub_app
from sandbox.state import SandboxState

PREFIX = "/jma"
PLATFORM = "jma"
SAMPLES_DIR = Path(__file__).with_name("jma_samples")
FEEDS = ("extra", "eqvol", "regular", "other", "extra_l", "eqvol_l", "regular_l", "other_l")
FEED_TITLES = {
    "extra": "高頻度（随時）",
    "eqvol": "高頻度（地震火山）",
    "regular": "高頻度（定時）",
    "other": "高頻度（その他）",
}

#: The demo city as the samples spell it; swapped for the configured one when served.
SAMPLE_AREA_CODE = "1229900"
SAMPLE_AREA_NAME = "こほ市"


@dataclass(frozen=True)
class Sample:
    file: str
    data_type: str = "VPWW54"
    office_area: str = "120000"  # 千葉県
    initial: int = 0  # times listed in the extra feed at start (2 = the duplicate-entry case)
    # the feed entry of a well-formed sample is read from its Control and Head; the broken and
    # hostile ones (parse=False) are never parsed here and get these instead
    parse: bool = True
    title: str = "気象警報・注意報（Ｈ２７）"
    author: str = "銚子地方気象台"
    when: str | None = None


SAMPLES: dict[str, Sample] = {
    "heavy_rain": Sample("heavy_rain.xml", initial=2),
    "storm": Sample("storm.xml", initial=1),
    "storm_cancel": Sample("storm_cancel.xml", initial=1),
    "drill": Sample("drill.xml", initial=1),
    "special": Sample("special.xml"),
    "all_clear": Sample("all_clear.xml"),
    "malformed": Sample("malformed.xml", parse=False, when="2025-07-09T22:41:00Z"),
    "entity_bomb": Sample("entity_bomb.xml", parse=False, when="2025-07-09T22:42:00Z"),
}


@dataclass(frozen=True)
class Entry:
    name: str  # document file name under /developer/xml/data/
    title: str
    author: str
    updated: datetime
    content: str


@dataclass
class JmaState:
    """What the JMA server holds: documents by file name and the entries of each feed."""

    area_code: str
    area_name: str
    documents: dict[str, bytes] = field(default_factory=dict)
    feeds: dict[str, list[Entry]] = field(default_factory=lambda: {f: [] for f in FEEDS})
    modified: dict[str, datetime] = field(default_factory=dict)
    feed_requests: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)


def jma_state(state: SandboxState) -> JmaState:
    """The JMA part of the sandbox state, created (with the initial feed) on first use after a reset."""
    with state.lock:
        current = state.scratch.get(PLATFORM)
        if isinstance(current, JmaState):
            return current
        current = JmaState(
            area_code=os.environ.get("KOHO_SANDBOX_JMA_AREA_CODE", SAMPLE_AREA_CODE),
            area_name=os.environ.get("KOHO_SANDBOX_JMA_AREA_NAME", SAMPLE_AREA_NAME),
        )
        state.scratch[PLATFORM] = current
        for name, sample in sorted(SAMPLES.items(), key=lambda kv: kv[1].file):
            for _ in range(sample.initial):
                _publish(current, name, "extra", touch=False)
        current.modified["extra"] = _now()
        return current


def configure_city(state: SandboxState, area_code: str, area_name: str) -> None:
    """Serve the samples for another municipality (7-digit JMA area code and its name)."""
    if not re.fullmatch(r"\d{7}", area_code):
        raise ValueError("a JMA municipality area code has 7 digits")
    js = jma_state(state)
    with js.lock:
        js.area_code, js.area_name = area_code, area_name
        for feed in FEEDS:
            if js.feeds[feed]:
                _touch(js, feed)


def publish_sample(state: SandboxState, name: str, feed: str = "extra") -> dict:
    """Add sample ``name`` to ``feed`` as a new entry (again, if already listed) and return
    ``{"name", "path", "url_path"}``; ``path`` is the document's path under the sandbox root."""
    if name not in SAMPLES:
        raise KeyError(f"unknown JMA sample '{name}'; expected one of {sorted(SAMPLES)}")
    return _publish(jma_state(state), name, feed)


def publish_document(
    state: SandboxState,
    data: bytes,
    *,
    name: str,
    title: str = "気象警報・注意報（Ｈ２７）",
    author: str = "銚子地方気象台",
    content: str = "",
    feed: str = "extra",
) -> dict:
    """Publish any bytes as a document (tests build their own bulletins with this)."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,100}", name):
        raise ValueError("document names are letters, digits, '_' and '-'")
    js = jma_state(state)
    with js.lock:
        js.documents[f"{name}.xml"] = bytes(data)
        js.feeds[feed].insert(0, Entry(f"{name}.xml", title, author, _now(), content))
        _touch(js, feed)
    return {"name": f"{name}.xml", "path": f"{PREFIX}/developer/xml/data/{name}.xml"}


def feed_request_count(state: SandboxState) -> int:
    """How many feed requests were answered (any status): tests wait on it instead of sleeping."""
    return jma_state(state).feed_requests


def sample_bytes(name: str) -> bytes:
    return (SAMPLES_DIR / SAMPLES[name].file).read_bytes()


# ---------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _touch(js: JmaState, feed: str) -> None:
    """A feed changed: Last-Modified moves on by at least a second (HTTP dates have no finer
    resolution, and a client's If-Modified-Since must not hide a change within one second)."""
    previous, now = js.modified.get(feed), _now()
    js.modified[feed] = now if previous is None or now > previous else previous + timedelta(seconds=1)


def _publish(js: JmaState, name: str, feed: str, *, touch: bool = True) -> dict:
    if feed not in FEEDS:
        raise KeyError(f"unknown feed '{feed}'; expected one of {FEEDS}")
    sample = SAMPLES[name]
    data = sample_bytes(name)
    title, author, updated, content = sample.title, sample.author, None, ""
    if sample.parse:
        root = ET.fromstring(data)  # noqa: S314 -- a well-formed sample shipped with the sandbox, no DTD
        ns = {"r": "http://xml.kishou.go.jp/jmaxml1/", "h": "http://xml.kishou.go.jp/jmaxml1/informationBasis1/"}
        title = root.findtext("r:Control/r:Title", "", ns).strip() or title
        author = root.findtext("r:Control/r:EditorialOffice", "", ns).strip() or author
        stamp = root.findtext("r:Control/r:DateTime", "", ns).strip()
        updated = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
        head_title = root.findtext("h:Head/h:Title", "", ns).strip()
        headline = root.findtext("h:Head/h:Headline/h:Text", "", ns).strip()
        content = f"【{head_title}】{headline}" if head_title else headline
    if updated is None:
        updated = datetime.fromisoformat(sample.when.replace("Z", "+00:00")) if sample.when else _now()
    file_name = f"{updated.astimezone(UTC):%Y%m%d%H%M%S}_0_{sample.data_type}_{sample.office_area}.xml"
    with js.lock:
        js.documents[file_name] = data
        js.feeds[feed].insert(0, Entry(file_name, title, author, updated.astimezone(UTC), content))
        js.feeds[feed].sort(key=lambda e: e.updated, reverse=True)
        if touch:
            _touch(js, feed)
    return {"name": file_name, "path": f"{PREFIX}/developer/xml/data/{file_name}"}


def _localise(js: JmaState, data: bytes) -> bytes:
    if (js.area_code, js.area_name) == (SAMPLE_AREA_CODE, SAMPLE_AREA_NAME):
        return data
    return data.replace(f"<Code>{SAMPLE_AREA_CODE}</Code>".encode(), f"<Code>{js.area_code}</Code>".encode()).replace(
        SAMPLE_AREA_NAME.encode(), js.area_name.encode()
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _render_feed(js: JmaState, feed: str, base: str) -> bytes:
    entries = list(js.feeds[feed])
    updated = max((e.updated for e in entries), default=js.modified.get(feed) or datetime(2025, 1, 1, tzinfo=UTC))
    self_url = f"{base}/developer/xml/feed/{feed}.xml"
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom" lang="ja">',
        f"<title>{escape(FEED_TITLES.get(feed.removesuffix('_l'), feed))}</title>",
        "<subtitle>JMAXML publishing feed</subtitle>",
        f"<updated>{_iso(updated)}</updated>",
        f"<id>{escape(self_url)}#short_{int(updated.timestamp())}</id>",
        f'<link rel="related" href={quoteattr("https://www.jma.go.jp/")}/>',
        f'<link rel="self" href={quoteattr(self_url)}/>',
        '<rights type="html"><![CDATA[<a href="https://www.jma.go.jp/jma/kishou/info/coment.html">利用規約</a>]]></rights>',
    ]
    for entry in entries:
        url = f"{base}/developer/xml/data/{entry.name}"
        lines += [
            "<entry>",
            f"<title>{escape(entry.title)}</title>",
            f"<id>{escape(url)}</id>",
            f"<updated>{_iso(entry.updated)}</updated>",
            f"<author><name>{escape(entry.author)}</name></author>",
            f'<link type="application/xml" href={quoteattr(url)}/>',
            f'<content type="text">{escape(entry.content)}</content>',
            "</entry>",
        ]
    lines.append("</feed>")
    return _localise(js, "\n".join(lines).encode("utf-8"))


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def _not_modified(request: Request, etag: str, modified: datetime) -> bool:
    """RFC 9110 §13.1: If-None-Match, when present, decides; else If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return modified <= when
    return False


def _static(request: Request, body: bytes, modified: datetime, content_type: str) -> Response:
    etag = _etag(body)
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(modified, usegmt=True),
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=0",
    }
    if _not_modified(request, etag, modified):
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        return Response(status_code=200, headers={**headers, "Content-Length": str(len(body))}, media_type=content_type)
    return Response(body, status_code=200, headers=headers, media_type=content_type)


def _render_error(exc: SandboxError) -> Response:
    """A static web server's error: a small HTML page, not JSON."""
    reason = {404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}.get(exc.status, exc.message)
    headers = dict(exc.headers)
    if exc.status == 429 or exc.status == 503:
        headers.setdefault("Retry-After", "1")
    body = f"<html><head><title>{exc.status} {reason}</title></head><body><h1>{reason}</h1></body></html>"
    return HTMLResponse(body, status_code=exc.status, headers=headers)


def create_app(state: SandboxState) -> FastAPI:
    app = sub_app("JMA disaster information XML (sandbox)", _render_error)

    def base_of(request: Request) -> str:
        """Absolute URL of this sub-app's root (the mount prefix included), as links are absolute."""
        return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}".rstrip("/")

    @app.api_route("/developer/xml/feed/{feed}.xml", methods=["GET", "HEAD"])
    async def feed(request: Request, feed: str) -> Response:
        js = jma_state(state_of(request))
        with js.lock:
            js.feed_requests += 1
        fault, _ = await gate(request, PLATFORM, "read", None)
        if fault is not None:
            return await lost_response(fault)
        if feed not in FEEDS:
            raise SandboxError("not_found", 404, "Not Found")
        with js.lock:
            body = _render_feed(js, feed, base_of(request))
            modified = js.modified.get(feed) or datetime(2025, 1, 1, tzinfo=UTC)
        return _static(request, body, modified, "application/atom+xml")

    @app.api_route("/developer/xml/data/{name}", methods=["GET", "HEAD"])
    async def document(request: Request, name: str) -> Response:
        js = jma_state(state_of(request))
        fault, _ = await gate(request, PLATFORM, "read", None)
        if fault is not None:
            return await lost_response(fault)
        with js.lock:
            data = js.documents.get(name)
            modified = next((e.updated for f in FEEDS for e in js.feeds[f] if e.name == name), None)
        if data is None:
            raise SandboxError("not_found", 404, "Not Found")
        return _static(request, _localise(js, data), modified or _now(), "application/xml")

    @app.post("/_sandbox/publish/{name}")
    def publish(request: Request, name: str, feed: str = "extra") -> dict:
        """Not a JMA endpoint: lets a demo make a new bulletin appear in a sandbox it did not start."""
        try:
            return publish_sample(state_of(request), name, feed)
        except KeyError as exc:
            raise SandboxError("not_found", 404, str(exc)) from exc

    return app
