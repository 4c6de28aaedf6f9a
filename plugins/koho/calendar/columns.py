"""Spreadsheet columns and cells -> the fields of a calendar entry.

A CSV or Excel calendar is typed by staff in Japanese, so headers and values come in many
spellings (公開日時 / 投稿日時, 要 / ○ / TRUE ...). This module is the one place that knows them;
everything after it sees the same dictionary a YAML entry gives.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time
from typing import Any

#: normalised header -> entry field
HEADERS: dict[str, str] = {}
_SPELLINGS = {
    "id": ("id", "番号", "管理番号", "エントリid"),
    "title": ("title", "タイトル", "件名", "表題", "見出し"),
    "publish_at": ("publish_at", "publishat", "公開日時", "投稿日時", "配信日時", "掲載日時", "日時"),
    "targets": ("targets", "target", "対象", "対象アカウント", "投稿先", "配信先"),
    "channels": ("channels", "channel", "チャネル", "チャンネル", "媒体"),
    "text": ("text", "本文", "投稿文", "本文(共通)"),
    "link": ("link", "url", "リンク", "リンクurl"),
    "images": ("images", "image", "画像", "画像ファイル"),
    "hashtags": ("hashtags", "hashtag", "ハッシュタグ", "タグ"),
    "category": ("category", "分類", "カテゴリ", "カテゴリー", "区分"),
    "approval": ("approval", "承認", "要承認", "承認要否"),
    "allow_holiday": ("allow_holiday", "allowholiday", "祝日可", "祝日投稿", "祝日投稿可"),
    "status": ("status", "状態", "ステータス"),
}
for _field, _names in _SPELLINGS.items():
    for _name in _names:
        HEADERS[_name] = _field

#: the header the template and the docs use for each field
JAPANESE_HEADERS = {
    "id": "ID",
    "title": "タイトル",
    "publish_at": "公開日時",
    "targets": "対象",
    "channels": "チャネル",
    "text": "本文",
    "link": "リンク",
    "images": "画像",
    "hashtags": "ハッシュタグ",
    "category": "分類",
    "approval": "承認",
    "allow_holiday": "祝日可",
    "status": "状態",
}
REQUIRED_COLUMNS = ("id", "title", "publish_at", "text")

PLATFORM_NAMES = {
    "x": "x",
    "twitter": "x",
    "x(旧twitter)": "x",
    "ツイッター": "x",
    "エックス": "x",
    "facebook": "facebook",
    "fb": "facebook",
    "フェイスブック": "facebook",
    "instagram": "instagram",
    "insta": "instagram",
    "インスタ": "instagram",
    "インスタグラム": "instagram",
    "threads": "threads",
    "スレッズ": "threads",
    "line": "line",
    "ライン": "line",
    "bluesky": "bluesky",
    "mastodon": "mastodon",
    "マストドン": "mastodon",
    "youtube": "youtube",
}
_OVERRIDE = (
    re.compile(r"^(?P<key>.+?)(?:用の?本文|用テキスト|向け本文)$"),
    re.compile(r"^(?:text|本文)[:_\-(\[](?P<key>[^)\]]+)[)\]]?$"),
    re.compile(r"^(?P<key>.+?)[ _]text$"),
)

_TRUE = {"要", "はい", "○", "〇", "◯", "true", "1", "yes", "y", "あり", "有", "可", "on", "必要"}
_FALSE = {"不要", "いいえ", "×", "✕", "✖", "false", "0", "no", "n", "なし", "無", "不可", "off", "-", "ー"}
BOOLEAN_HINT = "要/不要, はい/いいえ, ○/×, true/false or 1/0"

_CHANNELS = {
    "social": "social",
    "sns": "social",
    "ソーシャル": "social",
    "ソーシャルメディア": "social",
    "website": "website",
    "web": "website",
    "ウェブ": "website",
    "ウェブサイト": "website",
    "ホームページ": "website",
    "hp": "website",
    "webサイト": "website",
    "newsletter": "newsletter",
    "広報紙": "newsletter",
    "広報誌": "newsletter",
    "市報": "newsletter",
}
_STATUS = {
    "planned": "planned",
    "予定": "planned",
    "有効": "planned",
    "公開": "planned",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "中止": "cancelled",
    "取消": "cancelled",
    "取り消し": "cancelled",
    "キャンセル": "cancelled",
}

_SPLIT = re.compile(r"[、,;，；\n\r]+")
_SPLIT_WORDS = re.compile(r"[、,;，；\s]+")
EXCEL_ERRORS = re.compile(r"^#(N/A|REF!|VALUE!|DIV/0!|NAME\?|NULL!|NUM!|SPILL!|CALC!|GETTING_DATA)$")

LIST_FIELDS = ("targets", "channels", "images", "hashtags")
BOOL_FIELDS = ("approval", "allow_holiday")


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower()


def column_for(header: str) -> str | tuple[str, str] | None:
    """The entry field a header names: a field name, ``("overrides", key)``, or ``None`` if unknown."""
    name = normalise(header)
    name = re.sub(r"[*※]", "", name).strip()
    if name in HEADERS:
        return HEADERS[name]
    bare = re.sub(r"\s+", "", re.sub(r"\([^)]*\)$", "", name)).strip()
    if bare in HEADERS:
        return HEADERS[bare]
    for pattern in _OVERRIDE:
        match = pattern.match(name)
        if match:
            key = match.group("key").strip()
            return ("overrides", PLATFORM_NAMES.get(key, key))
    return None


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_text(value: Any) -> str:
    """A cell as text: Excel gives numbers for ids like 12 (as 12.0), and CRLF line ends from Windows."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).replace("\r\n", "\n").replace("\r", "\n")


def convert(field: str, value: Any) -> Any:
    """One non-blank cell converted for ``field``; ``ValueError`` says what was expected."""
    if field == "publish_at":
        if isinstance(value, datetime | date | time):
            return value
        return as_text(value)
    if field in BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        word = normalise(as_text(value))
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(f"'{as_text(value)}' is not a yes/no value; expected {BOOLEAN_HINT}")
    if field in LIST_FIELDS:
        splitter = _SPLIT if field == "images" else _SPLIT_WORDS
        items = [item.strip() for item in splitter.split(as_text(value)) if item.strip()]
        if field == "channels":
            return [_CHANNELS.get(normalise(item), item) for item in items]
        return items
    if field == "status":
        word = normalise(as_text(value))
        return _STATUS.get(word, as_text(value).strip())
    return as_text(value)
