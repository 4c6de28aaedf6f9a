"""The city website as a channel (policy P11): one HTML page per news item, an index and an Atom feed.

Koho writes static files into a folder the city's web server publishes (``channels.website``
in policy.yaml): ``news/<slug>.html`` per item, ``index.html``, ``feed.xml`` (RFC 4287) and,
while an emergency is on, ``emergency.html``: a banner fragment the top page can include.

Why it is built the way it is:

* **Exactly once by idempotency key.** The news item id is the key: publishing the same id
  again rewrites that item's page and feed entry, never adds a second one. A retried task is
  therefore harmless, which is all exactly-once needs for a channel Koho fully controls.
* **Deterministic regeneration.** The feed is rebuilt from a small JSON state file kept in
  the output folder (the last :data:`FEED_MAX_ENTRIES` items). Entry ids (``tag:`` URIs) and
  timestamps are fixed when an item first appears and ``updated`` moves only when the content
  changes, so republishing unchanged content produces byte-identical files and feed readers
  never show an item twice or as "updated" for nothing.
* **All or nothing.** Every file is rendered in memory first; if a template or an input fails,
  nothing is written. Each file is then replaced atomically and the state file is written
  last, so a worker killed half-way leaves the old feed (or the new one), never a broken one,
  and the retry regenerates everything from the state.
* **Untrusted text.** Titles and bodies go through autoescaping templates; links and image
  URLs must be http(s) (escaping cannot make ``javascript:`` safe); SVG is refused because an
  SVG served from the city's domain can run script.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

from koho.channels._common import (
    ChannelError,
    FolderBusy,
    atomic_write_bytes,
    atomic_write_text,
    folder_lock,
    is_web_url,
    resolve_output_dir,
    xml_safe,
)
from koho.channels.base import ChannelAdapter
from koho.config.loader import KohoConfig, include_dir, media_dir
from koho.config.schema import WebsiteChannel
from koho.platforms.errors import NotSupported, PermanentlyRejected, TransientError
from koho.platforms.types import Capabilities, PublishedPost
from koho.templating import render_html
from koho.timeutil import to_local, utcnow

if TYPE_CHECKING:
    from koho.delivery.publishers import Publication

FEED_MAX_ENTRIES = 50
STATE_FILE = ".koho-news.json"
STATE_VERSION = 1
FEED_FILE = "feed.xml"
INDEX_FILE = "index.html"
BANNER_FILE = "emergency.html"
NEWS_DIR = "news"
MEDIA_DIR = "media"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif"})
SUMMARY_CHARS = 140

EMERGENCY_CATEGORY = ("emergency", "緊急情報")
ALL_CLEAR_CATEGORY = ("all-clear", "緊急情報の解除")


@dataclass(frozen=True)
class NewsImage:
    """An image of a news item: a file under include/ (or include/media/) or an http(s) URL.

    ``alt`` is what a screen reader says; give it whenever the image carries information.
    """

    src: str
    alt: str = ""


@dataclass(frozen=True, kw_only=True)
class NewsItem:
    """One news item for the website. ``id`` is the idempotency key: same id, same page."""

    id: str
    title: str
    body: str
    published_at: datetime
    link: str | None = None
    images: Sequence[str | NewsImage] = ()
    category: str | None = None
    emergency: bool = False
    all_clear: bool = False  # publishing it takes the emergency banner down

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NewsItem:
        """Build an item from a plain mapping (XCom, a calendar entry's payload)."""
        published = data.get("published_at")
        if isinstance(published, str):
            published = datetime.fromisoformat(published)
        images = [
            NewsImage(str(img.get("src", "")), str(img.get("alt") or "")) if isinstance(img, Mapping) else str(img)
            for img in data.get("images") or ()
        ]
        return cls(
            id=str(data.get("id") or ""),
            title=str(data.get("title") or ""),
            body=str(data.get("body") or data.get("text") or ""),
            published_at=published,  # type: ignore[arg-type] - validated when published
            link=data.get("link") or None,
            images=images,
            category=data.get("category") or None,
            emergency=bool(data.get("emergency")),
            all_clear=bool(data.get("all_clear")),
        )


@dataclass(frozen=True)
class PublishedNews:
    """Where the item now lives; ``changed`` is False when the same content was already published."""

    url: str
    path: Path
    changed: bool = True
    feed_path: Path | None = None


@dataclass
class _Site:
    root: Path
    base_url: str
    title: str
    author: str

    @classmethod
    def from_settings(cls, settings: WebsiteChannel, author: str | None) -> _Site:
        base = str(settings.base_url)
        if not base.endswith("/"):
            base += "/"
        return cls(resolve_output_dir(settings.output_dir), base, settings.feed_title, author or settings.feed_title)

    def url(self, relative: str) -> str:
        return urljoin(self.base_url, relative)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or "localhost"

    @property
    def base_path(self) -> str:
        return urlsplit(self.base_url).path or "/"

    def tag(self, day: str, specific: str) -> str:
        """A ``tag:`` URI (RFC 4151): stable whatever happens to the pages' URLs later."""
        return f"tag:{self.host},{day}:{self.base_path}{specific}"


@dataclass
class _Write:
    files: dict[Path, bytes] = field(default_factory=dict)
    copies: dict[Path, Path] = field(default_factory=dict)  # target -> source
    delete: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# public API


def publish_news_item(
    item: NewsItem,
    settings: WebsiteChannel,
    *,
    now: datetime | None = None,
    author: str | None = None,
    max_entries: int = FEED_MAX_ENTRIES,
) -> PublishedNews:
    """Write (or rewrite) the item's page and regenerate the feed, the index and the banner.

    ``now`` is when this publication happens (the entry's ``updated`` if the content changed);
    ``author`` is the feed's author name (default: the feed title).
    """
    now = _aware(now or utcnow(), "now")
    site = _Site.from_settings(settings, author)
    with folder_lock(site.root):
        state = _load_state(site, now)
        write = _Write()
        images = [_prepare_image(img, item, site, write) for img in item.images]
        previous = state["entries"].get(item.id)
        record = _record(item, site, images, previous, now)
        changed = previous != record
        state["entries"][item.id] = record
        _trim(state, max_entries)
        _update_emergencies(state, record)

        page = site.root / NEWS_DIR / f"{record['slug']}.html"
        write.files[page] = _render_page(site, record).encode()
        _render_shared(site, state, write)
        _commit(site, state, write)
    return PublishedNews(url=record["url"], path=page, changed=changed, feed_path=site.root / FEED_FILE)


def clear_emergency(settings: WebsiteChannel, *, now: datetime | None = None, author: str | None = None) -> bool:
    """Take the emergency banner down without publishing an item; True if one was up."""
    now = _aware(now or utcnow(), "now")
    site = _Site.from_settings(settings, author)
    with folder_lock(site.root):
        state = _load_state(site, now)
        was_on = bool(state["emergency"])
        state["emergency"] = []
        write = _Write()
        _render_shared(site, state, write)
        _commit(site, state, write)
    return was_on


def remove_news_item(
    item_id: str, settings: WebsiteChannel, *, now: datetime | None = None, author: str | None = None
) -> bool:
    """Take the item's page down and its entry out of the feed, the index and the banner (a retracted
    post); True if there was something to remove. An item already trimmed from the feed may still
    have its page: that page goes too."""
    now = _aware(now or utcnow(), "now")
    site = _Site.from_settings(settings, author)
    with folder_lock(site.root):
        state = _load_state(site, now)
        record = state["entries"].pop(item_id, None)
        page = site.root / NEWS_DIR / f"{record['slug'] if record else slug_for(item_id)}.html"
        if record is None and not page.exists():
            return False
        state["emergency"] = [e for e in state["emergency"] if e["id"] != item_id]
        write = _Write(delete=[page])
        _render_shared(site, state, write)
        _commit(site, state, write)
    return True


def slug_for(item_id: str) -> str:
    """A file name for the item: readable when the id is, unique always (a short hash otherwise)."""
    norm = unicodedata.normalize("NFKC", item_id).lower()
    base = re.sub(r"[^a-z0-9_-]+", "-", norm).strip("-_")[:60].strip("-_")
    if base and base == item_id:
        return base
    digest = hashlib.sha256(item_id.encode()).hexdigest()[:10]
    return f"{base}-{digest}" if base else digest


# ---------------------------------------------------------------------------------------------
# the item -> a JSON record kept in the state file


def _aware(moment: Any, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ChannelError(f"{what} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ChannelError(f"{what} {moment.isoformat()} has no time zone; give an aware datetime (UTC)")
    return moment.astimezone(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _record(
    item: NewsItem, site: _Site, images: list[dict[str, str]], previous: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    where = f"news item {item.id!r}"
    if not isinstance(item.id, str) or not item.id.strip() or len(item.id) > 200:
        raise ChannelError(f"news item id {item.id!r} must be a non-empty text of at most 200 characters")
    title = xml_safe(item.title or "").strip()
    if not title:
        raise ChannelError(f"{where}: the title is empty")
    link = (item.link or "").strip() or None
    if link and not is_web_url(link):
        raise ChannelError(f"{where}: link {link!r} is not an http(s) URL")
    published = _aware(item.published_at, f"{where}: published_at")
    content = {
        "title": title,
        "body": xml_safe(item.body or "").strip(),
        "link": link,
        "images": images,
        "category": xml_safe(item.category).strip() if item.category else None,
        "emergency": bool(item.emergency) and not item.all_clear,
        "all_clear": bool(item.all_clear),
        "published": _iso(published),
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    slug = previous["slug"] if previous else slug_for(item.id)
    if previous and previous.get("hash") == digest:
        return previous
    first_day = to_local(published).date().isoformat()
    return {
        "id": item.id,
        "atom_id": previous["atom_id"] if previous else site.tag(first_day, f"entry/{quote(item.id, safe='-._~')}"),
        "slug": slug,
        "url": site.url(f"{NEWS_DIR}/{slug}.html"),
        **content,
        "updated": _iso(max(now, published)),
        "hash": digest,
    }


def _prepare_image(image: str | NewsImage, item: NewsItem, site: _Site, write: _Write) -> dict[str, str]:
    """A remote image is linked as is; a local one is copied (content-addressed) into media/."""
    if isinstance(image, str):
        image = NewsImage(image)
    src = (image.src or "").strip()
    alt = xml_safe(image.alt or "").strip()
    where = f"news item {item.id!r}, image {src!r}"
    if "://" in src or src.startswith("//"):
        if not is_web_url(src):
            raise ChannelError(f"{where}: only http(s) image URLs can be shown")
        if Path(urlsplit(src).path).suffix.lower() == ".svg":
            raise ChannelError(f"{where}: SVG images are not published (they can carry script)")
        return {"url": src, "rel": src, "alt": alt}
    path = _local_image(src, where)
    data = path.read_bytes()
    name = f"{hashlib.sha256(data).hexdigest()[:12]}-{_safe_name(path.name)}"
    target = site.root / MEDIA_DIR / name
    if not target.exists():
        write.copies[target] = path
    return {"url": site.url(f"{MEDIA_DIR}/{name}"), "rel": f"{MEDIA_DIR}/{name}", "alt": alt}


def _local_image(src: str, where: str) -> Path:
    if not src:
        raise ChannelError(f"{where}: empty image path")
    given = Path(src).expanduser()
    if given.is_absolute():
        candidates = [given]
    else:
        base = include_dir().resolve()
        candidates = [p for p in (base / given, base / "media" / given) if p.resolve().is_relative_to(base)]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise ChannelError(f"{where}: no such image file (relative paths are read from include/ or include/media/)")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ChannelError(f"{where}: not a published image type (use {', '.join(sorted(IMAGE_SUFFIXES))})")
    return path


def _safe_name(name: str) -> str:
    stem, dot, suffix = name.rpartition(".")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40] or "image"
    return f"{stem}.{suffix.lower()}" if dot else stem


# ---------------------------------------------------------------------------------------------
# state


def _load_state(site: _Site, now: datetime) -> dict[str, Any]:
    path = site.root / STATE_FILE
    if not path.exists():
        return {
            "version": STATE_VERSION,
            "feed_id": site.tag(to_local(now).date().isoformat(), "feed"),
            "created": _iso(now),
            "entries": {},
            "emergency": [],
        }
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ChannelError(
            f"{path} cannot be read ({exc}); restore it from a backup or delete it to start a new feed"
        ) from exc
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ChannelError(f"{path} is not a Koho news index of version {STATE_VERSION}")
    return state


def _sorted_entries(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Newest first; ties broken by id so that regeneration is deterministic."""
    entries = sorted(state["entries"].values(), key=lambda e: e["id"])
    return sorted(entries, key=lambda e: e["published"], reverse=True)


def _trim(state: dict[str, Any], max_entries: int) -> None:
    keep = _sorted_entries(state)[: max(1, max_entries)]
    state["entries"] = {e["id"]: e for e in keep}


def _update_emergencies(state: dict[str, Any], record: dict[str, Any]) -> None:
    active = [e for e in state["emergency"] if e["id"] != record["id"]]
    if record["all_clear"]:
        active = []
    elif record["emergency"]:
        banner = {k: record[k] for k in ("id", "title", "url", "published", "slug")}
        active.append(banner)
    state["emergency"] = sorted(active, key=lambda e: (e["published"], e["id"]), reverse=True)


# ---------------------------------------------------------------------------------------------
# rendering (in memory) and writing


def _view(record: dict[str, Any]) -> dict[str, Any]:
    """What templates need from a record: datetimes, paragraphs, categories."""
    published = datetime.fromisoformat(record["published"])
    paragraphs = [p.splitlines() for p in re.split(r"\n\s*\n", record["body"]) if p.strip()]
    categories: list[tuple[str, str]] = []
    if record["category"]:
        categories.append((record["category"], record["category"]))
    if record["emergency"]:
        categories.append(EMERGENCY_CATEGORY)
    if record["all_clear"]:
        categories.append(ALL_CLEAR_CATEGORY)
    summary = re.sub(r"\s+", " ", record["body"]).strip()
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    return {
        **record,
        "published_at": published,
        "updated_at": datetime.fromisoformat(record["updated"]),
        "published_local": to_local(published).isoformat(timespec="seconds"),
        "published_rfc3339": to_local(published).isoformat(timespec="seconds"),
        "updated_rfc3339": to_local(datetime.fromisoformat(record["updated"])).isoformat(timespec="seconds"),
        "paragraphs": paragraphs,
        "categories": categories,
        "summary": summary,
    }


def _site_context(site: _Site) -> dict[str, Any]:
    return {"title": site.title, "base_url": site.base_url, "feed_url": site.url(FEED_FILE), "author": site.author}


def _render_page(site: _Site, record: dict[str, Any]) -> str:
    return render_html("website/news.html.j2", site=_site_context(site), entry=_view(record))


def _render_shared(site: _Site, state: dict[str, Any], write: _Write) -> None:
    entries = [_view(e) for e in _sorted_entries(state)]
    for entry in entries:
        # The feed carries the content as escaped HTML: render it as HTML first, then hand it
        # to the feed template as plain text so that autoescaping escapes it exactly once.
        entry["content_html"] = str(render_html("website/entry_content.html.j2", entry=entry))
    updated = max((e["updated"] for e in state["entries"].values()), default=state["created"])
    feed = {
        **_site_context(site),
        "id": state["feed_id"],
        "updated_rfc3339": to_local(datetime.fromisoformat(updated)).isoformat(timespec="seconds"),
        "self_url": site.url(FEED_FILE),
        "alternate_url": site.url(INDEX_FILE),
    }
    emergencies = [_view_banner(e) for e in state["emergency"]]
    write.files[site.root / FEED_FILE] = render_html("website/feed.xml.j2", feed=feed, entries=entries).encode()
    write.files[site.root / INDEX_FILE] = render_html(
        "website/index.html.j2", site=_site_context(site), entries=entries, emergencies=emergencies
    ).encode()
    banner = site.root / BANNER_FILE
    if emergencies:
        write.files[banner] = render_html(
            "website/emergency.html.j2", site=_site_context(site), emergencies=emergencies
        ).encode()
    else:
        write.delete.append(banner)


def _view_banner(banner: dict[str, Any]) -> dict[str, Any]:
    published = datetime.fromisoformat(banner["published"])
    return {**banner, "published_at": published, "published_local": to_local(published).isoformat(timespec="seconds")}


def _commit(site: _Site, state: dict[str, Any], write: _Write) -> None:
    """Write everything rendered; the state file last, as the commit point a retry starts from."""
    for target, source in write.copies.items():
        atomic_write_bytes(target, source.read_bytes())
    for target, data in write.files.items():
        atomic_write_bytes(target, data)
    for target in write.delete:
        target.unlink(missing_ok=True)
    atomic_write_text(site.root / STATE_FILE, json.dumps(state, ensure_ascii=False, indent=1, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------
# the channel adapter: how deliveries to the "website" pseudo-account are published


class WebsiteAdapter(ChannelAdapter):
    """Deliveries to the website become news items: the entry's full text (never fitted), its images
    from include/media, the emergency banner for emergency entries. Publishing is idempotent by
    entry id (the item's page is rewritten), so a retry after an unknown outcome needs no separate
    reconciliation; retracting removes the page and its feed entry."""

    name = "website"
    display_name = "City website"
    capabilities = Capabilities(
        replies=False,
        uploads_images=True,  # it copies Koho's own file into media/
        comments=False,
        search_accounts=False,
        idempotency_key=True,
        counts_towards_caps=False,
        needs_fitting=False,
        registry_account=False,
    )

    @classmethod
    def unavailable(cls, config: KohoConfig) -> str | None:
        if config.policy is None or config.policy.channels.website is None:
            return "the website channel is not configured (policy.yaml channels.website)"
        return None

    @classmethod
    def handle(cls, config: KohoConfig) -> str:
        return str(config.policy.channels.website.base_url) if config.policy else cls.name

    def publish_once(
        self,
        publication: Publication,
        *,
        idempotency_key: str,
        maybe_sent_before: bool = False,
        since: datetime | None = None,
    ) -> PublishedPost:
        if reason := self.unavailable(self.config):
            raise NotSupported(reason, platform=self.name)
        from koho.delivery.publishers import carries_images

        payload = publication.payload
        media = media_dir()
        item = NewsItem(
            id=publication.entry_id,
            title=publication.title or publication.entry_id,
            body=payload.get("text") or "",
            published_at=publication.due_at,
            link=payload.get("link"),
            category=payload.get("category"),
            images=[img if "://" in img else str(media / img) for img in payload.get("images") or ()]
            if carries_images(payload, self.name)
            else [],
            emergency=publication.origin == "emergency",
            all_clear=bool(payload.get("all_clear")),
        )
        try:
            news = publish_news_item(item, self.config.policy.channels.website)
        except FolderBusy as exc:  # another publisher is writing: nothing was written, later will do
            raise TransientError(str(exc), platform=self.name) from exc
        except ChannelError as exc:  # the entry cannot be a page as it is (an image, a link...)
            raise PermanentlyRejected(str(exc), kind="invalid", platform=self.name) from exc
        return PublishedPost(remote_id=publication.entry_id, url=news.url)

    def delete(self, remote_id: str) -> None:
        """Retract the item (``remote_id`` is its entry id); already gone is not an error."""
        if reason := self.unavailable(self.config):
            raise NotSupported(reason, platform=self.name)
        try:
            remove_news_item(remote_id, self.config.policy.channels.website)
        except FolderBusy as exc:
            raise TransientError(str(exc), platform=self.name) from exc
        except ChannelError as exc:  # an unreadable news index: a person restores it
            raise PermanentlyRejected(str(exc), kind="invalid", platform=self.name) from exc

    def removal_by_hand(self, where: str, account_id: str) -> str:
        return f"remove the news item {where} from the website by hand (the page and its entry in the news feed)"

    def full_text_url(self, entry_id: str) -> str | None:
        if self.unavailable(self.config):
            return None
        base = str(self.config.policy.channels.website.base_url)
        return urljoin(base if base.endswith("/") else base + "/", f"{NEWS_DIR}/{slug_for(entry_id)}.html")
