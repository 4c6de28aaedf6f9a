"""Helpers for calendar tests: a small account registry of our own (so the tests do not move
when the demo city's accounts change) and writers for YAML, CSV and Excel."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from koho.calendar.demo_media import png_bytes
from koho.config import KohoConfig, load_config

NOW = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)

DEPARTMENTS = """\
departments:
  - {id: pr, name: 広報課, email: koho@city.example.jp}
  - {id: childcare, name: こども課, email: kodomo@city.example.jp}
  - {id: disaster, name: 危機管理課, email: kiki@city.example.jp}
  - {id: tourism, name: 観光課, email: kanko@city.example.jp}
"""

POLICY = """\
city_name: テスト市
pr_department: pr
caps: {{per_day: 6, min_spacing_minutes: 60, quiet_hours: "21:00-07:00"}}
holidays: {holidays}
texts: {{sample: true, directory_title: 一覧, directory_intro: サンプル, disclaimer: サンプル, feedback_note: サンプル}}
channels:
  website: {{base_url: "https://www.city.example.jp/news/", feed_title: お知らせ}}
  newsletter: {{max_item_chars: 200}}
"""


def _account(id: str, platform: str, handle: str, kind: str = "general", **extra: Any) -> dict:
    return {
        "id": id,
        "name": id,
        "platform": platform,
        "handle": handle,
        "kind": kind,
        "department": extra.pop("department", "pr"),
        "connection_id": f"conn_{id.replace('-', '_')}",
        **extra,
    }


ACCOUNTS = [
    _account("city-x", "x", "city_x", caps={"per_day": 8, "min_spacing_minutes": 30}),
    _account("city-line", "line", "@city-line", caps={"per_day": 2, "min_spacing_minutes": 180}),
    _account("city-instagram", "instagram", "city_insta"),
    _account("city-youtube", "youtube", "cityyoutube"),
    _account("old-x", "x", "old_city_x", status="retired"),
    _account("paused-facebook", "facebook", "city.fb", status="suspended"),
    _account(
        "kosodate-line",
        "line",
        "@kosodate",
        "special",
        topic="child_rearing",
        department="childcare",
        caps={"per_day": 1, "quiet_hours": "20:00-08:00"},
    ),
    _account(
        "bousai-x",
        "x",
        "bousai_x",
        "special",
        topic="disaster",
        department="disaster",
        caps={"per_day": 20, "min_spacing_minutes": 5, "quiet_hours": "00:00-00:00"},
    ),
    _account("kanko-instagram", "instagram", "kanko_insta", "special", topic="tourism", department="tourism"),
]


def write_config(directory: Path, *, holidays: str = "warn", website_dir: Path | None = None) -> KohoConfig:
    """The test registry in ``directory``; ``website_dir``: where the website channel writes (else the
    policy's default folder, so give one to any test that publishes to the website)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "departments.yaml").write_text(DEPARTMENTS, encoding="utf-8")
    policy = POLICY.format(holidays=holidays)
    if website_dir is not None:
        data = yaml.safe_load(policy)
        data["channels"]["website"]["output_dir"] = str(website_dir)
        policy = yaml.safe_dump(data, allow_unicode=True)
    (directory / "policy.yaml").write_text(policy, encoding="utf-8")
    (directory / "accounts.yaml").write_text(json.dumps({"accounts": ACCOUNTS}, ensure_ascii=False), encoding="utf-8")
    config = load_config(directory)
    assert config.problems == [], config.problems
    return config


def write_media(folder: Path) -> Path:
    """The images every media check needs: ok.png (a real PNG), notimage.png (text named .png) and huge.png
    (a PNG over the 8 MB limit). Returns ``folder``."""
    (folder / "ok.png").write_bytes(png_bytes(4, 4, (10, 20, 30)))
    (folder / "notimage.png").write_text("これは画像ではありません", encoding="utf-8")
    with (folder / "huge.png").open("wb") as handle:
        handle.write(png_bytes(2, 2))
        handle.truncate(9 * 1024 * 1024)
    return folder


# ------------------------------------------------------------------------------------------ writers

TABLE_HEADERS = [
    "ID",
    "タイトル",
    "公開日時",
    "対象",
    "チャネル",
    "本文",
    "リンク",
    "画像",
    "ハッシュタグ",
    "分類",
    "承認",
    "祝日可",
    "状態",
    "X用本文",
    "Instagram用本文",
]


def yaml_text(entries: list[dict]) -> str:
    """One key per line (values as JSON, which YAML reads), so tests know every field's line."""
    lines = ["entries:"]
    for entry in entries:
        for i, (key, value) in enumerate(entry.items()):
            lines.append(f"{'  - ' if i == 0 else '    '}{key}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def table_rows(rows: list[dict], headers: list[str] | None = None) -> list[list[Any]]:
    headers = headers or TABLE_HEADERS
    return [headers, *[[row.get(h, "") for h in headers] for row in rows]]


def csv_bytes(rows: list[list[Any]], encoding: str = "utf-8-sig") -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


def write_xlsx(
    path: Path, rows: list[list[Any]], *, sheet: str = "カレンダー", formats: dict[str, str] | None = None
) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    ws = book.active
    ws.title = sheet
    for row in rows:
        ws.append([None if v == "" else v for v in row])
    for coordinate, number_format in (formats or {}).items():
        ws[coordinate].number_format = number_format
    book.save(path)
    return path


def place(problem) -> str:
    where = problem.where
    return f"{where.file}:{where.line}" if where.line else (where.file or "")
