"""Read the Japan Meteorological Agency's disaster-information XML and pick out what the city posts.

The JMA publishes every bulletin as one XML document (気象庁防災情報XML) and lists new ones in
Atom feeds (``extra.xml`` for warnings and advisories, ``eqvol.xml`` for earthquakes and
volcanoes). A warning bulletin for a prefecture (``気象警報・注意報（Ｈ２７）``, VPWW54) names, per
municipality (``Body/Warning[@type="気象警報・注意報（市町村等）"]/Item``), every warning kind
in force and whether it was just issued (発表), continues (継続) or was lifted (解除).

This module is pure (no I/O) so that the trigger, the DAGs and the tests share it:

* :func:`parse_feed` and :func:`parse_document` turn bytes into dataclasses, refusing DTDs and
  entity declarations outright (the feed is fetched over the network: billion-laughs and
  external-entity tricks must not get a chance) and naming the document URL and the place in
  it for anything malformed;
* :func:`relevant` keeps what *this* city broadcasts: its area codes, the kinds in its
  settings, real bulletins only (``Control/Status`` 通常, never 訓練 or 試験) and only issued or
  corrected ones (取消 never produces a post);
* :func:`select_new` applies cancellations across a batch of documents and drops what was
  already seen, keyed by :func:`draft_key` — the one place that decides "same warning".

Settings live in ``include/config/emergency.yaml`` (:class:`koho.config.emergency.EmergencySettings`,
:func:`~koho.config.emergency.load_emergency_settings`), validated with the same file/line/field
reporting as the rest of Koho's configuration.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urljoin
from xml.etree import ElementTree as ET
from xml.parsers import expat

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from koho.errors import KohoError

#: ``Body/Warning/@type`` of the per-municipality layer: the only layer with 7-digit area codes.
MUNICIPAL_WARNING_TYPE = "気象警報・注意報（市町村等）"
INFO_TYPES = ("発表", "訂正", "取消")
CONTROL_STATUSES = ("通常", "訓練", "試験")
#: ``Kind/Status`` values of VPWW54 (解説資料 気象警報・注意報（Ｈ２７）).
KIND_STATUSES = (
    "発表",
    "継続",
    "特別警報から警報",
    "特別警報から注意報",
    "警報から注意報",
    "解除",
    "発表警報・注意報はなし",
)
#: Largest document accepted. Real warning bulletins are tens of kilobytes; a feed is ~1-2 MB.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024

Severity = Literal["critical", "high", "advisory"]
_SEVERITY_RANK = {"advisory": 0, "high": 1, "critical": 2}


class JmaDocumentError(KohoError):
    """A feed or bulletin could not be read. Says which URL and what is wrong, so one bad
    document can be logged and skipped while the watcher goes on with the others."""

    def __init__(self, url: str, reason: str, line: int | None = None):
        self.url = url
        self.reason = reason
        self.line = line
        where = f"{url}:{line}" if line else url
        super().__init__(f"JMA document {where}: {reason}")


# ---------------------------------------------------------------------------------------------
# safe XML


#: What each of defusedxml's refusals means in a JMA document.
_REFUSALS: dict[type[DefusedXmlException], str] = {
    DTDForbidden: "DTDs (<!DOCTYPE>) are not allowed in JMA documents",
    EntitiesForbidden: "entity declarations are not allowed in JMA documents",
    ExternalReferenceForbidden: "external entities are not allowed in JMA documents",
}


def parse_xml(data: bytes, url: str) -> ET.Element:
    """Parse ``data`` into an element tree with local (namespace-free) tag names.

    defusedxml stops the parse at the first DTD, entity declaration or external reference
    (JMA documents have none; a bulletin that does is hostile or broken). Namespaces are
    dropped from tag names because the JMA nests three of them (report, head, body) and
    hand-made test bulletins often omit them: matching on local names reads both.
    """
    if not isinstance(data, bytes | bytearray):
        raise JmaDocumentError(url, "expected the document as bytes")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise JmaDocumentError(url, f"document is too large ({len(data)} bytes; limit {MAX_DOCUMENT_BYTES})")
    if not data.strip():
        raise JmaDocumentError(url, "document is empty")
    parser = DefusedXMLParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(bytes(data))
        root = parser.close()
    except DefusedXmlException as exc:
        reason = next(text for kind, text in _REFUSALS.items() if isinstance(exc, kind))
        raise JmaDocumentError(url, reason, parser.parser.CurrentLineNumber) from None
    except ET.ParseError as exc:
        reason = expat.errors.messages.get(exc.code, str(exc)) if exc.code else str(exc)
        raise JmaDocumentError(url, f"malformed XML: {reason}", exc.position[0]) from None
    for element in root.iter():
        element.tag = _local(element.tag)
        if any("}" in key for key in element.attrib):
            element.attrib = {_local(key): value for key, value in element.attrib.items()}
    return root


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _text(elem: ET.Element | None, path: str) -> str:
    if elem is None:
        return ""
    found = elem.find(path)
    return (found.text or "").strip() if found is not None else ""


def _aware(value: str, url: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise JmaDocumentError(url, f"{what} is not an ISO 8601 date-time: {value!r}") from None
    if moment.tzinfo is None:
        raise JmaDocumentError(url, f"{what} has no UTC offset: {value!r}")
    return moment.astimezone(UTC)


def nfkc(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


# ---------------------------------------------------------------------------------------------
# Atom feed


@dataclass(frozen=True)
class FeedEntry:
    """One ``<entry>``: in the JMA feeds ``id`` and ``link`` are both the document URL."""

    id: str
    title: str
    updated: datetime | None
    link: str
    author: str
    content: str = ""


@dataclass(frozen=True)
class Feed:
    url: str
    title: str
    updated: datetime | None
    entries: tuple[FeedEntry, ...]
    problems: tuple[str, ...] = ()


def parse_feed(data: bytes, url: str) -> Feed:
    """Parse an Atom feed. A broken entry is reported in ``problems`` and skipped; the others stay."""
    root = parse_xml(data, url)
    if root.tag != "feed":
        raise JmaDocumentError(url, f"expected an Atom <feed> at the top, found <{root.tag}>")
    entries: list[FeedEntry] = []
    problems: list[str] = []
    for index, entry in enumerate(root.findall("entry"), start=1):
        link = ""
        for candidate in entry.findall("link"):
            if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
                link = candidate.get("href", "").strip()
                break
        entry_id = _text(entry, "id")
        if not link and entry_id.startswith(("http://", "https://")):
            link = entry_id  # the JMA's entry id is the document URL
        if not link:
            problems.append(f"{url}: entry {index} ({_text(entry, 'title') or 'untitled'}) has no link; skipped")
            continue
        updated = None
        if raw := _text(entry, "updated"):
            try:
                updated = _aware(raw, url, f"entry {index} <updated>")
            except JmaDocumentError as exc:
                problems.append(str(exc))
        entries.append(
            FeedEntry(
                id=entry_id or link,
                title=_text(entry, "title"),
                updated=updated,
                link=urljoin(url, link),
                author=_text(entry, "author/name"),
                content=_text(entry, "content"),
            )
        )
    feed_updated = None
    if raw := _text(root, "updated"):
        try:
            feed_updated = _aware(raw, url, "feed <updated>")
        except JmaDocumentError as exc:
            problems.append(str(exc))
    return Feed(url, _text(root, "title"), feed_updated, tuple(entries), tuple(problems))


# ---------------------------------------------------------------------------------------------
# warning bulletins


@dataclass(frozen=True)
class WarningKind:
    name: str  # 大雨警報
    code: str  # 03
    status: str  # 発表 / 継続 / 解除 / ...


@dataclass(frozen=True)
class AreaKinds:
    """One municipality's line in a bulletin: every kind in force there, with its status."""

    area_code: str
    area_name: str
    kinds: tuple[WarningKind, ...]


@dataclass(frozen=True)
class Warning:
    """One JMA warning bulletin (VPWW54 and documents of the same shape)."""

    url: str
    control_title: str  # 気象警報・注意報（Ｈ２７）
    status: str  # Control/Status: 通常 / 訓練 / 試験
    office: str  # Control/EditorialOffice: 銚子地方気象台
    title: str  # Head/Title: 千葉県気象警報・注意報
    report_time: datetime  # Head/ReportDateTime, aware UTC
    info_type: str  # Head/InfoType: 発表 / 訂正 / 取消
    event_id: str  # Head/EventID (empty for warning bulletins)
    headline: str  # Head/Headline/Text
    areas: tuple[AreaKinds, ...]
    problems: tuple[str, ...] = ()

    @property
    def series(self) -> tuple[str, str, str]:
        """What makes bulletins one series (JMA FAQ: Title, EditorialOffice and Status).

        A 取消 cancels the latest earlier bulletin of its series.
        """
        return (self.control_title, self.office, self.status)


#: The same class under a name that does not shadow Python's built-in ``Warning`` on import.
JmaWarning = Warning


def _postable(text: str, url: str, what: str, problems: list[str]) -> str:
    """``text`` if it may go into a post (:func:`koho.text.hygiene.text_problems`); else "" and a problem.

    The feed is another party's text that ends up in the city's drafts: the same rules apply."""
    from koho.text.hygiene import text_problems

    reasons = text_problems(text, formulas=False) if text else []
    if reasons:
        problems.append(f"{url}: {what} {'; '.join(reasons)}; left out of the draft")
        return ""
    return text


def parse_document(data: bytes, url: str) -> Warning:
    """Parse one warning bulletin; raise :class:`JmaDocumentError` naming ``url`` if unusable.

    A municipality item that lacks its code is reported in ``problems`` and skipped: nothing
    valid is dropped because of something invalid beside it.
    """
    root = parse_xml(data, url)
    if root.tag != "Report":
        raise JmaDocumentError(url, f"expected a JMA <Report> at the top, found <{root.tag}>")
    control, head = root.find("Control"), root.find("Head")
    if control is None:
        raise JmaDocumentError(url, "missing Control")
    if head is None:
        raise JmaDocumentError(url, "missing Head")
    status = _text(control, "Status")
    if status not in CONTROL_STATUSES:
        raise JmaDocumentError(url, f"Control/Status must be one of {'/'.join(CONTROL_STATUSES)}, got {status!r}")
    info_type = _text(head, "InfoType")
    if info_type not in INFO_TYPES:
        raise JmaDocumentError(url, f"Head/InfoType must be one of {'/'.join(INFO_TYPES)}, got {info_type!r}")
    raw_time = _text(head, "ReportDateTime")
    if not raw_time:
        raise JmaDocumentError(url, "missing Head/ReportDateTime")
    report_time = _aware(raw_time, url, "Head/ReportDateTime")

    areas: list[AreaKinds] = []
    problems: list[str] = []
    headline = _postable(_text(head, "Headline/Text"), url, "Head/Headline/Text", problems)
    body = root.find("Body")
    for warning in body.findall("Warning") if body is not None else ():
        if warning.get("type") != MUNICIPAL_WARNING_TYPE:
            continue
        for index, item in enumerate(warning.findall("Item"), start=1):
            code = _text(item, "Area/Code")
            name = _postable(_text(item, "Area/Name"), url, f"item {index} Area/Name", problems)
            if not re.fullmatch(r"\d{7}", code):
                problems.append(
                    f"{url}: {MUNICIPAL_WARNING_TYPE} item {index} ({name or 'no name'}) "
                    f"has no 7-digit Area/Code (got {code!r}); skipped"
                )
                continue
            kinds = []
            for kind in item.findall("Kind"):
                kind_name, kind_status = _text(kind, "Name"), _text(kind, "Status")
                if not kind_name:
                    continue  # "発表警報・注意報はなし" items carry a Kind with only a Status
                kinds.append(WarningKind(nfkc(kind_name), _text(kind, "Code"), kind_status))
            areas.append(AreaKinds(code, name, tuple(kinds)))
    return Warning(
        url=url,
        control_title=_text(control, "Title"),
        status=status,
        office=_text(control, "EditorialOffice"),
        title=_text(head, "Title"),
        report_time=report_time,
        info_type=info_type,
        event_id=_text(head, "EventID"),
        headline=headline,
        areas=tuple(areas),
        problems=tuple(problems),
    )


# ---------------------------------------------------------------------------------------------
# filtering and identity


class WatchFilter(Protocol):
    """What :func:`relevant` needs: :class:`EmergencySettings` and the trigger's own filter fit."""

    @property
    def area_codes(self) -> Sequence[str]: ...
    @property
    def kinds(self) -> Sequence[str]: ...
    @property
    def statuses(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Watch:
    """A plain :class:`WatchFilter`, rebuilt from a trigger's JSON kwargs."""

    area_codes: tuple[str, ...]
    kinds: tuple[str, ...]
    statuses: tuple[str, ...] = ("発表",)


@dataclass(frozen=True)
class AreaWarning:
    """What one bulletin says about one of the city's areas: the kinds it posts about.

    Kinds are grouped per area on purpose: a bulletin issuing 大雨警報 and 洪水警報 together
    makes one post ("大雨警報・洪水警報が発表されました"), not two within the same second.
    """

    event_id: str
    report_time: datetime
    info_type: str
    title: str
    headline: str
    office: str
    document_url: str
    area_code: str
    area_name: str
    kinds: tuple[WarningKind, ...]

    @property
    def kind_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.kinds)

    @property
    def severity(self) -> Severity:
        return max((severity_of(k) for k in self.kinds), key=_SEVERITY_RANK.__getitem__, default="advisory")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (trigger events, XCom): times as ISO 8601 UTC strings."""
        return {
            "event_id": self.event_id,
            "report_time": self.report_time.isoformat(),
            "info_type": self.info_type,
            "title": self.title,
            "headline": self.headline,
            "office": self.office,
            "document_url": self.document_url,
            "area_code": self.area_code,
            "area_name": self.area_name,
            "kinds": [{"name": k.name, "code": k.code, "status": k.status} for k in self.kinds],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AreaWarning:
        return cls(
            event_id=data["event_id"],
            report_time=datetime.fromisoformat(data["report_time"]).astimezone(UTC),
            info_type=data["info_type"],
            title=data["title"],
            headline=data["headline"],
            office=data["office"],
            document_url=data["document_url"],
            area_code=data["area_code"],
            area_name=data["area_name"],
            kinds=tuple(WarningKind(k["name"], k["code"], k["status"]) for k in data["kinds"]),
        )


def severity_of(kind: WarningKind) -> Severity:
    """特別警報 -> critical, 警報 -> high, 注意報 (and a lifted anything) -> advisory.

    A lifting (解除) is good news: it must never take the critical path meant for new danger.
    """
    if kind.status == "解除":
        return "advisory"
    if "特別警報" in kind.name:
        return "critical"
    if kind.name.endswith("警報"):
        return "high"
    return "advisory"


def relevant(warning: Warning, settings: WatchFilter) -> list[AreaWarning]:
    """The parts of ``warning`` this city posts about, one :class:`AreaWarning` per area.

    Drills (訓練) and tests (試験) are never relevant, whatever they contain; a 取消 only ever
    cancels (see :func:`select_new`); continuing kinds (継続) are left out unless the settings
    ask for them, because every later bulletin repeats them and each repeat would be a post.
    """
    if warning.status != "通常" or warning.info_type not in ("発表", "訂正"):
        return []
    codes = set(settings.area_codes)
    kinds = {nfkc(k) for k in settings.kinds}
    statuses = set(settings.statuses)
    out: list[AreaWarning] = []
    for area in warning.areas:
        if area.area_code not in codes:
            continue
        wanted = tuple(k for k in area.kinds if k.name in kinds and k.status in statuses)
        if not wanted:
            continue
        out.append(
            AreaWarning(
                event_id=warning.event_id,
                report_time=warning.report_time,
                info_type=warning.info_type,
                title=warning.title,
                headline=warning.headline,
                office=warning.office,
                document_url=warning.url,
                area_code=area.area_code,
                area_name=area.area_name,
                kinds=wanted,
            )
        )
    return out


def draft_key(area_warning: AreaWarning) -> str:
    """The identity of a draft: (event id, area, kinds with status, report time).

    Stable across processes and runs, so a bulletin listed twice in the feed, the same
    bulletin in two formats (VPWW53 and VPWW54 share the report time) or a trigger running
    twice all land on the same key and the ledger keeps one draft. Readable at the front
    (area and time) for people reading logs; the digest makes it unique.
    """
    when = area_warning.report_time.astimezone(UTC)
    kinds = ",".join(sorted(f"{k.name}:{k.status}" for k in area_warning.kinds))
    material = "|".join((area_warning.event_id, area_warning.area_code, kinds, when.isoformat()))
    digest = hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]
    return f"jma:{area_warning.area_code}:{when:%Y%m%dT%H%M%SZ}:{digest}"


@dataclass(frozen=True)
class Cancellation:
    """A 取消 bulletin and the bulletin it withdrew (None if that one was not in the batch)."""

    document_url: str
    report_time: datetime
    title: str
    cancelled_url: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_url": self.document_url,
            "report_time": self.report_time.isoformat(),
            "title": self.title,
            "cancelled_url": self.cancelled_url,
        }


@dataclass
class Selection:
    warnings: list[AreaWarning] = field(default_factory=list)
    cancellations: list[Cancellation] = field(default_factory=list)


def select_new(warnings: Iterable[Warning], settings: WatchFilter, seen_keys: Iterable[str] = ()) -> Selection:
    """The relevant area warnings of a batch that are new, after applying cancellations.

    Bulletins are taken in report-time order; a 取消 removes what the latest earlier bulletin
    of its series contributed (a cancelled warning never becomes a draft if both arrive in the
    same poll). Keys in ``seen_keys`` and repeats within the batch are dropped.
    """
    seen = set(seen_keys)
    ordered = sorted(warnings, key=lambda w: (w.report_time, w.info_type == "取消", w.url))
    pending: dict[str, AreaWarning] = {}
    history: dict[tuple[str, str, str], list[Warning]] = {}
    selection = Selection()
    for warning in ordered:
        if warning.status != "通常":
            continue
        if warning.info_type == "取消":
            earlier = history.get(warning.series, [])
            target = earlier.pop() if earlier else None
            if target is not None:
                for area_warning in relevant(target, settings):
                    pending.pop(draft_key(area_warning), None)
            selection.cancellations.append(
                Cancellation(warning.url, warning.report_time, warning.title, target.url if target else None)
            )
            continue
        history.setdefault(warning.series, []).append(warning)
        for area_warning in relevant(warning, settings):
            key = draft_key(area_warning)
            if key not in seen and key not in pending:
                pending[key] = area_warning
    selection.warnings = list(pending.values())
    return selection
