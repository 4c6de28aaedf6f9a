"""The printed PR newsletter as a channel (policy P11): a monthly export of what was published.

The newsletter's editors pick items from what went out on social media and the website that
month. They work in Excel, so the export is a workbook (a summary sheet, then one sheet per
category), the same rows as CSV (UTF-8 with BOM, which Excel needs to read Japanese) and an
HTML preview to read in a browser.

Why some details matter:

* **Months are Japan months.** A post at 00:30 JST on 1 December is 15:30 UTC on 30 November
  and belongs to the December issue; bounds are computed in Asia/Tokyo, then converted.
* **Formula injection.** Post texts and titles come from staff and may start with ``=``, ``+``,
  ``-`` or ``@``; Excel would run such a cell as a formula. Every cell goes through
  :func:`koho.text.cells.safe_cell` (leading apostrophe, no characters XML cannot hold), in
  the workbook and the CSV.
* **Length.** Texts are trimmed to ``max_item_chars`` at a sentence end (。！？) with "…", so an
  editor never gets half a sentence unless a single sentence is longer than half the space.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from koho.channels._common import atomic_write_bytes, atomic_write_text, is_web_url, resolve_output_dir
from koho.config.schema import NewsletterChannel
from koho.templating import render_html
from koho.text.cells import XML_ILLEGAL, safe_cell
from koho.timeutil import local_zone, to_local

log = logging.getLogger(__name__)

UNCATEGORISED = "その他"
SUMMARY_SHEET = "概要"
SENTENCE_ENDS = "。！？"
ELLIPSIS = "…"
COLUMNS = ("公開日時（JST）", "タイトル", "本文", "掲載先", "URL", "エントリーID")
PLATFORM_LABELS = {
    "x": "X",
    "facebook": "Facebook",
    "instagram": "Instagram",
    "threads": "Threads",
    "line": "LINE",
    "youtube": "YouTube",
    "bluesky": "Bluesky",
    "mastodon": "Mastodon",
    "website": "ウェブサイト",
}


@dataclass
class _Item:
    entry_id: str
    title: str
    text: str
    category: str
    published_at: datetime
    accounts: list[dict[str, str]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return "、".join(_account_label(a) for a in self.accounts)

    @property
    def urls(self) -> list[str]:
        return [a["url"] for a in self.accounts if a.get("url")]


# ---------------------------------------------------------------------------------------------
# public API


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """The month in Japan time as a half-open UTC range [start, end)."""
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    zone = local_zone()
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def neutralise(value: Any) -> Any:
    """A cell value Excel will show as text (see :func:`koho.text.cells.safe_cell`)."""
    return safe_cell(value)


def trim_text(text: str, max_chars: int) -> str:
    """``text`` in at most ``max_chars`` characters, cut after a sentence end and marked with "…"."""
    text = (text or "").strip()
    if len(text) <= max_chars:
        return text
    room = max(1, max_chars - len(ELLIPSIS))
    head = text[:room]
    end = max(head.rfind(mark) for mark in SENTENCE_ENDS)
    if end + 1 >= room / 2:  # keep whole sentences unless that would throw away most of the space
        head = head[: end + 1]
    return head.rstrip() + ELLIPSIS


def export_month(rows: Iterable[Mapping[str, Any]], year: int, month: int, settings: NewsletterChannel) -> Path:
    """Write the month's export (.xlsx, .csv, .html) into the configured folder; return the .xlsx.

    ``rows`` are plain dicts (see :func:`month_rows`): ``entry_id``, ``title``, ``text``,
    ``category``, ``published_at`` (aware), ``accounts`` (``name``, ``platform``, ``url``).
    Rows outside the month (in Japan time) are left out; several rows of one entry are merged.
    """
    items = _items(rows, year, month, settings.max_item_chars)
    groups = _group(items)
    folder = resolve_output_dir(settings.output_dir)
    stem = f"koho-newsletter-{year:04d}-{month:02d}"
    label = f"{year}年{month}月"

    workbook = _workbook(groups, label, settings.max_item_chars)
    csv_text = _csv(groups)
    html = render_html(
        "newsletter/preview.html.j2", label=label, groups=groups, total=len(items), max_chars=settings.max_item_chars
    )

    xlsx_path = folder / f"{stem}.xlsx"
    atomic_write_bytes(xlsx_path, workbook)
    atomic_write_text(folder / f"{stem}.csv", csv_text, encoding="utf-8-sig")
    atomic_write_text(folder / f"{stem}.html", html)
    log.info("newsletter export for %s: %d item(s) in %d categories -> %s", label, len(items), len(groups), xlsx_path)
    return xlsx_path


def month_rows(session: Any, year: int, month: int) -> list[dict[str, Any]]:
    """What was published in the month (Japan time), one row per calendar entry, from the ledger.

    An entry belongs to the month of its first published delivery, so a post that went to one
    account at 23:59 and another at 00:01 appears once, with both accounts.
    """
    from koho.ledger import deliveries as ledger_deliveries

    start, end = month_bounds(year, month)
    entries = ledger_deliveries.first_published_between(session, start, end)
    if not entries:
        return []
    deliveries = ledger_deliveries.published_with_accounts(session, [e.id for e, _ in entries])
    by_entry: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for delivery, account in deliveries:
        by_entry[delivery.entry_id].append((delivery, account))

    rows = []
    for entry, first_published in entries:
        payload = entry.payload or {}
        accounts: dict[str, dict[str, str]] = {}
        texts: list[str] = []
        for delivery, account in by_entry[entry.id]:
            if delivery.part_index == 0:
                texts.append(delivery.text or "")
            if account.id not in accounts:
                accounts[account.id] = {
                    "account_id": account.id,
                    "name": account.display_name,
                    "platform": account.platform,
                    "handle": account.handle,
                    "url": delivery.remote_url or "",
                }
        text = payload.get("text") or payload.get("body") or max(texts, key=len, default="")
        rows.append(
            {
                "entry_id": entry.id,
                "title": entry.title,
                "text": str(text),
                "category": payload.get("category") or payload.get("topic"),
                "origin": entry.origin,
                "published_at": first_published,
                "accounts": list(accounts.values()),
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# rows -> items


def _items(rows: Iterable[Mapping[str, Any]], year: int, month: int, max_chars: int) -> list[_Item]:
    start, end = month_bounds(year, month)
    merged: dict[str, _Item] = {}
    for number, row in enumerate(rows, start=1):
        entry_id = str(row.get("entry_id") or row.get("id") or "").strip()
        published = row.get("published_at")
        if isinstance(published, str):
            try:
                published = datetime.fromisoformat(published)
            except ValueError:
                published = None
        if not entry_id or not isinstance(published, datetime) or published.tzinfo is None:
            log.warning(
                "newsletter row %d skipped: it needs an entry_id and an aware published_at (got %r, %r)",
                number,
                entry_id,
                row.get("published_at"),
            )
            continue
        published = published.astimezone(UTC)
        item = merged.get(entry_id)
        if item is None:
            item = _Item(
                entry_id=entry_id,
                title=str(row.get("title") or "").strip(),
                text=trim_text(str(row.get("text") or ""), max_chars),
                category=str(row.get("category") or "").strip() or UNCATEGORISED,
                published_at=published,
            )
            merged[entry_id] = item
        item.published_at = min(item.published_at, published)
        for account in _accounts(row):
            if account not in item.accounts:
                item.accounts.append(account)
    return [i for i in merged.values() if start <= i.published_at < end]


def _accounts(row: Mapping[str, Any]) -> list[dict[str, str]]:
    raw = row.get("accounts")
    if raw is None and (row.get("account_id") or row.get("url")):
        raw = [row]
    out = []
    for account in raw or ():
        if not isinstance(account, Mapping):
            continue
        url = str(account.get("url") or account.get("remote_url") or "")
        out.append(
            {
                "name": str(account.get("name") or account.get("account_name") or account.get("account_id") or ""),
                "platform": str(account.get("platform") or ""),
                "url": url,
            }
        )
    return out


def _group(items: list[_Item]) -> list[tuple[str, list[_Item]]]:
    groups: dict[str, list[_Item]] = defaultdict(list)
    for item in items:
        groups[item.category].append(item)
    ordered = sorted(groups, key=lambda c: (c == UNCATEGORISED, c))
    return [(c, sorted(groups[c], key=lambda i: (i.published_at, i.entry_id))) for c in ordered]


def _account_label(account: Mapping[str, str]) -> str:
    platform = PLATFORM_LABELS.get(account.get("platform", ""), account.get("platform", ""))
    name = account.get("name", "")
    return f"{platform}（{name}）" if platform and name else platform or name


def _cells(item: _Item) -> list[Any]:
    return [
        to_local(item.published_at).strftime("%Y-%m-%d %H:%M"),
        item.title,
        item.text,
        item.where,
        "\n".join(item.urls),
        item.entry_id,
    ]


# ---------------------------------------------------------------------------------------------
# writers


def _workbook(groups: list[tuple[str, list[_Item]]], label: str, max_chars: int) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    summary = book.active
    summary.title = SUMMARY_SHEET
    summary.append([neutralise(f"広報紙向け 公開記録 {label}")])
    summary["A1"].font = Font(bold=True, size=14)
    summary.append([])
    summary.append(["カテゴリ", "件数", "シート"])
    for cell in summary[3]:
        cell.font = Font(bold=True)
    names = _sheet_names([c for c, _ in groups])
    for (category, items), name in zip(groups, names, strict=True):
        summary.append([neutralise(category), len(items), neutralise(name)])
    summary.append(["合計", sum(len(items) for _, items in groups)])
    summary.append([])
    summary.append([f"本文は{max_chars}字以内に文の区切りで短縮しています（…）。"])
    summary.column_dimensions["A"].width = 40
    summary.column_dimensions["C"].width = 24

    widths = (18, 36, 70, 36, 48, 24)
    wrap = Alignment(wrap_text=True, vertical="top")
    for (_category, items), name in zip(groups, names, strict=True):
        sheet = book.create_sheet(name)
        sheet.append(list(COLUMNS))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for item in items:
            sheet.append([neutralise(v) for v in _cells(item)])
            row = sheet.max_row
            for cell in sheet[row]:
                cell.alignment = wrap
            urls = item.urls
            if len(urls) == 1 and is_web_url(urls[0]):
                sheet.cell(row=row, column=5).hyperlink = urls[0]
        for index, width in enumerate(widths, start=1):
            sheet.column_dimensions[chr(ord("A") + index - 1)].width = width
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _sheet_names(categories: list[str]) -> list[str]:
    """Excel sheet names: at most 31 characters, none of []:*?/\\, unique ignoring case."""
    used = {SUMMARY_SHEET.lower(), "history"}
    names = []
    for category in categories:
        base = re.sub(r"[\[\]:*?/\\]", "_", XML_ILLEGAL.sub("", category)).strip("'").strip() or UNCATEGORISED
        base = base[:31]
        name, n = base, 2
        while name.lower() in used:
            suffix = f" ({n})"
            name, n = base[: 31 - len(suffix)] + suffix, n + 1
        used.add(name.lower())
        names.append(name)
    return names


def _csv(groups: list[tuple[str, list[_Item]]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["カテゴリ", *COLUMNS])
    for category, items in groups:
        for item in items:
            writer.writerow([neutralise(v) for v in (category, *_cells(item))])
    return buffer.getvalue()
