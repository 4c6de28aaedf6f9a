"""Broken and hostile calendar files, as a careless or malicious user would drop them, and the
valid file that must still load beside them. Shared by the calendar, fuzz and ledger tests."""

from __future__ import annotations

import io
import zipfile
from functools import cache
from pathlib import Path

from tests.unit.calendar.calendar_helpers import csv_bytes, table_rows, yaml_text

GOOD_ID = "good-1"
GOOD = yaml_text(
    [
        {
            "id": GOOD_ID,
            "title": "正常なお知らせ",
            "publish_at": "2027-02-01 10:00",
            "targets": ["city-x"],
            # valid text that is hard on storage and exports: emoji sequences, astral kanji, marks
            "text": "👨‍👩‍👧 家族で𠮷野家へ。ｶﾞｷﾞ ✔︎ -ご注意ください +81-3-1234-5678",
        }
    ]
)

ENTRY = '  - id: bad-1\n    title: t\n    publish_at: "2027-02-02 10:00"\n    targets: [city-x]\n'


def xlsx_bytes(rows: list[list], *, sheet: str = "カレンダー") -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    ws = book.active
    ws.title = sheet
    for row in rows:
        ws.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def replace_member(workbook: bytes, member: str, data: bytes) -> bytes:
    """``workbook`` with one zip member's bytes replaced (a corrupt part)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, data if info.filename == member else src.read(info.filename))
    return out.getvalue()


def zip_bomb(inflated: int) -> bytes:
    """A real workbook plus one member that deflates ``inflated`` zero bytes into a few kilobytes."""
    good = xlsx_bytes(table_rows([{"ID": "z1", "タイトル": "t", "公開日時": "2027-02-03 10:00", "本文": "b"}]))
    out = io.BytesIO(good)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("xl/media/padding.bin", "w", force_zip64=True) as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(inflated >> 20):
                member.write(chunk)
    return out.getvalue()


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each level repeats the one before ten times (10**levels values)."""
    lines = ["a0: &a0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + f"\nentries:\n  - id: bomb\n    text: *a{levels}\n"


def encrypted_workbook() -> bytes:
    """What Excel writes for a password-protected .xlsx: a compound file with an EncryptionInfo stream."""
    directory = "EncryptionInfo".encode("utf-16-le").ljust(64, b"\0")
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504 + directory + b"\0" * 1024


@cache
def _hand_made() -> tuple[tuple[str, bytes], ...]:
    return tuple(_build().items())


def hand_made() -> dict[str, bytes]:
    """File name -> content: each one broke (or loosened) the calendar load before."""
    return dict(_hand_made())


def _build() -> dict[str, bytes]:
    table = table_rows([{"ID": "x1", "タイトル": "t", "公開日時": "2027-02-03 10:00", "対象": "city-x", "本文": "b"}])
    good_book = xlsx_bytes(table)
    return {
        "control.yaml": ("entries:\n" + ENTRY + "    text: ベル\x07の文字\n").encode(),
        "tag.yaml": ("entries:\n" + ENTRY + "    text: !evil 本文\n").encode(),
        "anchor-key.yaml": b"entries:\n  - ? [a, b]\n    : value\n",
        "deep.yaml": ("entries: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
        "bomb.yaml": alias_bomb().encode(),
        "loop.yaml": b"entries: &e\n  - *e\n",
        "latin1.yaml": "entries:\n  - id: caf\xe9\n".encode("latin-1"),
        "nul.csv": csv_bytes(
            table_rows([{"ID": "n1", "タイトル": "t", "公開日時": "2027-02-03 11:00", "本文": "ヌル\0文字"}])
        ),
        "corrupt-sheet.xlsx": replace_member(good_book, "xl/worksheets/sheet1.xml", b"<worksheet><sheetData><row"),
        "corrupt-styles.xlsx": replace_member(good_book, "xl/styles.xml", b"\xff\xfe garbage"),
        "truncated.xlsx": good_book[: len(good_book) // 2],
        "locked.xlsx": encrypted_workbook(),
        "renamed-xls.xlsx": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 2000,
        "bomb.xlsx": zip_bomb(64 << 20),
        "old.xls": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100,
    }


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "good.yaml").write_text(GOOD, encoding="utf-8")
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder
