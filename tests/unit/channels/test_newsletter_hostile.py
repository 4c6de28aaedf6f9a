"""The newsletter export writes any text that passed validation, and hostile texts too, without
crashing and without a cell that runs as a formula (workbook and CSV)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from koho.channels.newsletter import export_month
from koho.config.schema import NewsletterChannel

WHEN = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)
TEXTS = [
    ' =HYPERLINK("https://evil.example","詳細")',
    "\u3000@SUM(A1)",
    "\n-2+3+cmd|' /C calc'!A0",
    "縦タブ\x0bの入った本文",
    "👨‍👩‍👧 𠮷野家 ｶﾞ ✔︎",
]


@pytest.fixture
def settings(tmp_path: Path) -> NewsletterChannel:
    return NewsletterChannel(output_dir=str(tmp_path / "newsletter"), max_item_chars=400)


def test_hostile_texts_are_exported_as_text_in_the_workbook_and_the_csv(settings):
    from openpyxl import load_workbook

    rows = [
        {
            "entry_id": f"e{i}",
            "title": text,
            "text": text,
            "category": "くらし\x07" if i == 3 else "くらし",
            "published_at": WHEN,
            "accounts": [{"name": "こほ市", "platform": "x", "url": "https://x.com/koho/status/1"}],
        }
        for i, text in enumerate(TEXTS)
    ]
    path = export_month(rows, 2026, 11, settings)

    book = load_workbook(path)
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    texts = [c.value for c in cells if isinstance(c.value, str)]
    assert "縦タブの入った本文" in texts and "👨‍👩‍👧 𠮷野家 ｶﾞ ✔︎" in texts
    with open(path.with_suffix(".csv"), encoding="utf-8-sig", newline="") as handle:
        for record in csv.reader(handle):
            for value in record:
                assert not value.lstrip(" \t\r\n\u3000").startswith(("=", "+", "-", "@")), value
