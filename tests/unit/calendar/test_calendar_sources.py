"""Reading CSV (every encoding Excel writes) and Excel sheets, including the shipped templates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from koho.calendar.columns import column_for, convert
from koho.calendar.sources import (
    TEMPLATE_COLUMNS,
    calendar_files,
    decode_csv,
    write_csv_template,
    write_template,
)
from koho.config.loader import include_dir
from tests.unit.calendar.calendar_helpers import TABLE_HEADERS, csv_bytes, table_rows, write_xlsx

TEMPLATES = include_dir() / "calendar" / "templates"

ROWS = [
    {
        "ID": "gomi-1",
        "タイトル": "ごみ収集のお知らせ",
        "公開日時": "2027/2/1 9:00",
        "対象": "city-x、city-line",
        "チャネル": "SNS、ホームページ",
        "本文": "-ご注意ください。\n2月から収集曜日が変わります。",
        "リンク": "https://www.city.example.jp/gomi/",
        "ハッシュタグ": "#こほ市 #ごみ",
        "分類": "くらし",
        "承認": "要",
        "祝日可": "×",
        "X用本文": "2月から収集曜日が変わります",
    },
    {
        "ID": "hoiku-1",
        "タイトル": "保育園の見学会",
        "公開日時": "2027年2月2日 10時30分",
        "対象": "topic:child_rearing",
        "本文": "保育園の見学会を開きます。",
        "承認": "いいえ",
        "祝日可": "○",
        "状態": "予定",
    },
]


def _check_roundtrip(result) -> None:
    assert result.errors == [], result.errors
    gomi, hoiku = result.by_id()["gomi-1"], result.by_id()["hoiku-1"]
    assert gomi.publish_at == datetime(2027, 2, 1, 0, 0, tzinfo=UTC)
    assert gomi.targets == ["city-x", "city-line"] and gomi.accounts == ["city-x", "city-line"]
    assert gomi.channels == ["social", "website"]
    assert gomi.text == "-ご注意ください。\n2月から収集曜日が変わります。"
    assert gomi.hashtags == ["こほ市", "ごみ"]
    assert gomi.overrides == {"x": "2月から収集曜日が変わります"}
    assert gomi.approval is True and gomi.allow_holiday is False and gomi.category == "くらし"
    assert hoiku.publish_at == datetime(2027, 2, 2, 1, 30, tzinfo=UTC)
    assert hoiku.accounts == ["kosodate-line"] and hoiku.approval is False and hoiku.allow_holiday is True


@pytest.mark.parametrize("encoding", ["cp932", "utf-8-sig", "utf-8", "utf-16"])
def test_csv_with_japanese_headers_in_every_excel_encoding(load, encoding):
    raw = csv_bytes(table_rows(ROWS), encoding=encoding)
    assert decode_csv(raw)[1] == encoding
    _check_roundtrip(load({"calendar.csv": raw}))


def test_cp932_csv_keeps_characters_shift_jis_knows():
    raw = "ID,タイトル,公開日時,本文\r\na,髙橋さんの①講座,2027-02-01 10:00,－ご案内－\r\n".encode("cp932")
    text, encoding = decode_csv(raw)
    assert encoding == "cp932" and "髙橋さんの①講座" in text and "－ご案内－" in text


def test_english_headers_and_tab_separated_text(load):
    text = (
        "id\ttitle\tpublish_at\ttargets\ttext\tapproval\tx text\n"
        "e1\tEnglish\t2027-02-01T10:00:00+09:00\tcity-x\tHello\ttrue\tHi X\n"
    )
    result = load({"english.csv": text})
    assert result.errors == []
    entry = result.by_id()["e1"]
    assert entry.approval is True and entry.overrides == {"x": "Hi X"}
    assert entry.publish_at == datetime(2027, 2, 1, 1, 0, tzinfo=UTC)


def test_multiline_csv_cells_keep_the_right_line_numbers(load):
    text = (
        "ID,タイトル,公開日時,対象,本文\n"
        'a,一,2027-02-01 10:00,city-x,"一行目\n二行目\n三行目"\n'
        "b,二,2027-02-30 10:00,city-x,本文\n"
    )
    result = load({"multi.csv": text})
    assert result.by_id()["a"].text == "一行目\n二行目\n三行目"
    [problem] = result.errors
    assert (problem.where.file, problem.where.line, problem.where.field) == ("multi.csv", 5, "公開日時")


def test_comment_rows_blank_rows_note_columns_and_a_title_above_the_header(load):
    text = (
        "こほ市 投稿カレンダー 2027年2月,,,,,\n"
        ",,,,,\n"
        "ID,タイトル,公開日時,対象,本文,備考\n"
        "※記入例,例,2027-01-01 00:00,nobody,例,\n"
        ",,,,,\n"
        "# 後で書く,,,,,\n"
        "a,一,2027-02-01 10:00,city-x,本文,担当: 山田\n"
    )
    result = load({"notes.csv": text})
    assert result.problems == []
    assert [e.id for e in result.entries] == ["a"]
    assert result.entries[0].source == "notes.csv:7"


def test_repeated_column_is_refused_but_rows_without_a_value_there_load(load):
    text = (
        "ID,タイトル,公開日時,対象,本文,本文\n"
        "a,一,2027-02-01 10:00,city-x,本文,\n"
        "b,二,2027-02-01 12:00,city-x,本文,もう一つの本文\n"
    )
    result = load({"repeat.csv": text})
    assert [e.id for e in result.entries] == ["a"]
    assert [(p.where.line, p.where.field) for p in result.errors] == [(1, "本文"), (3, "本文")]


def test_unreadable_and_unsupported_files_are_reported(load):
    result = load({"broken.xlsx": b"not a zip", "old.xls": b"\xd0\xcf\x11\xe0", "empty.yaml": ""})
    messages = {p.where.file: (p.severity, p.message) for p in result.problems}
    assert messages["broken.xlsx"][1].startswith("cannot open as an Excel workbook")
    assert "save it as .xlsx" in messages["old.xls"][1]
    assert messages["empty.yaml"][0] == "warning"


def test_calendar_files_skip_templates_and_excel_lock_files(tmp_path):
    (tmp_path / "templates").mkdir()
    for name in ("b.yaml", "a.csv", "~$a.xlsx", ".hidden.yaml", "notes.txt", "c.xlsx"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in calendar_files(tmp_path)] == ["a.csv", "b.yaml", "c.xlsx"]


# ------------------------------------------------------------------------------------------ Excel


def test_excel_date_cells_numbers_and_booleans(load, tmp_path):
    folder = tmp_path / "calendar"
    folder.mkdir()
    rows = table_rows(
        [
            {
                "ID": 20270201,
                "タイトル": "数値ID",
                "公開日時": datetime(2027, 2, 1, 10, 0),
                "対象": "city-x",
                "本文": "本文",
                "承認": True,
                "祝日可": 0,
            }
        ]
    )
    write_xlsx(folder / "cal.xlsx", rows, formats={"C2": "yyyy/m/d h:mm"})
    result = load({})
    assert result.problems == []
    entry = result.by_id()["20270201"]
    assert entry.publish_at == datetime(2027, 2, 1, 1, 0, tzinfo=UTC)
    assert entry.approval is True and entry.allow_holiday is False
    assert entry.source == "cal.xlsx!カレンダー!2:2"


def test_excel_reads_the_sheet_named_calendar_or_else_the_first(load, tmp_path):
    from openpyxl import Workbook

    folder = tmp_path / "calendar"
    folder.mkdir()
    book = Workbook()
    book.active.title = "表紙"
    book.active.append(["これは表紙です"])
    sheet = book.create_sheet("カレンダー")
    for row in table_rows(
        [{"ID": "s1", "タイトル": "t", "公開日時": "2027-02-01 10:00", "対象": "city-x", "本文": "b"}]
    ):
        sheet.append(row)
    book.save(folder / "named.xlsx")
    write_xlsx(
        folder / "first.xlsx",
        table_rows([{"ID": "s2", "タイトル": "t", "公開日時": "2027-02-02 10:00", "対象": "city-x", "本文": "b"}]),
        sheet="Sheet1",
    )
    result = load({})
    assert result.problems == []
    assert {e.id: e.source for e in result.entries} == {
        "s1": "named.xlsx!カレンダー!2:2",
        "s2": "first.xlsx!Sheet1!2:2",
    }


def test_excel_formula_cells_are_never_evaluated(load, tmp_path):
    folder = tmp_path / "calendar"
    folder.mkdir()
    rows = table_rows(
        [
            {
                "ID": "f1",
                "タイトル": '=HYPERLINK("https://evil.example","click")',
                "公開日時": "2027-02-01 10:00",
                "対象": "city-x",
                "本文": "本文",
            },
            {"ID": "f2", "タイトル": "正常", "公開日時": "2027-02-01 12:00", "対象": "city-x", "本文": "本文"},
        ]
    )
    write_xlsx(folder / "f.xlsx", rows)
    result = load({})
    [problem] = result.problems
    assert str(problem.where) == "f.xlsx!カレンダー!B2, field 'タイトル'"
    assert "formula" in problem.message
    assert [e.id for e in result.entries] == ["f2"]


def test_shipped_templates_exist_are_small_and_regenerate(tmp_path):
    xlsx, csv_template = TEMPLATES / "calendar_template.xlsx", TEMPLATES / "calendar_template.csv"
    assert xlsx.stat().st_size < 30_000 and csv_template.read_bytes().startswith(b"\xef\xbb\xbf")
    fresh = write_csv_template(tmp_path / "t.csv")
    assert fresh.read_bytes() == csv_template.read_bytes()
    regenerated = write_template(tmp_path / "t.xlsx")
    from openpyxl import load_workbook

    for path in (xlsx, regenerated):
        book = load_workbook(path)
        assert book.sheetnames == ["カレンダー", "記入方法"]
        assert [c.value for c in book["カレンダー"][1]] == TEMPLATE_COLUMNS
        data_rows = book["カレンダー"].iter_rows(min_row=2, values_only=True)
        assert all(v is None for row in data_rows for v in row)  # only formats and input lists below the header


def test_filled_excel_template_loads(load, tmp_path):
    from openpyxl import load_workbook

    folder = tmp_path / "calendar"
    folder.mkdir()
    book = load_workbook(TEMPLATES / "calendar_template.xlsx")
    sheet = book["カレンダー"]
    values = {
        "ID": "tmpl-1",
        "タイトル": "テンプレートから",
        "公開日時": datetime(2027, 2, 3, 9, 0),
        "対象": "city-x、kosodate-line",
        "チャネル": "SNS",
        "本文": "ひな形に書いた投稿です。",
        "承認": "要",
        "祝日可": "不要",
        "状態": "予定",
        "X用本文": "X向け",
        "メモ": "担当: 広報",
    }
    for col, title in enumerate(TEMPLATE_COLUMNS, start=1):
        if title in values:
            sheet.cell(row=2, column=col, value=values[title])
    book.save(folder / "filled.xlsx")
    result = load({})
    assert result.problems == []
    entry = result.by_id()["tmpl-1"]
    assert entry.accounts == ["city-x", "kosodate-line"] and entry.approval and entry.overrides == {"x": "X向け"}
    assert entry.publish_at == datetime(2027, 2, 3, 0, 0, tzinfo=UTC)


def test_csv_template_loads_without_entries(load):
    result = load({"t.csv": (TEMPLATES / "calendar_template.csv").read_bytes()})
    assert result.problems == [] and result.entries == []


# ------------------------------------------------------------------------------------------ columns


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("公開日時", "publish_at"),
        ("投稿日時", "publish_at"),
        ("公開日時（JST）", "publish_at"),
        ("ＩＤ", "id"),
        ("＊本文", "text"),
        ("Title", "title"),
        ("X用本文", ("overrides", "x")),
        ("Instagram用本文", ("overrides", "instagram")),
        ("LINE用の本文", ("overrides", "line")),
        ("city-line用本文", ("overrides", "city-line")),
        ("text:bluesky", ("overrides", "bluesky")),
        ("Twitter用本文", ("overrides", "x")),
        ("謎の列", None),
    ],
)
def test_column_headers(header, expected):
    assert column_for(header) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("要", True),
        ("不要", False),
        ("はい", True),
        ("いいえ", False),
        ("○", True),
        ("×", False),
        ("TRUE", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("１", True),
        ("〇", True),
        (1, True),
        (0.0, False),
    ],
)
def test_yes_no_words(word, expected):
    assert convert("approval", word) is expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("予定", "planned"),
        ("中止", "cancelled"),
        ("取り消し", "cancelled"),
        ("Cancelled", "cancelled"),
        ("保留", "保留"),
    ],
)
def test_status_words(word, expected):
    assert convert("status", word) == expected


def test_list_cells_split_on_japanese_and_ascii_separators():
    assert convert("targets", "city-x、city-line,bousai-x;kosodate-line\nall") == [
        "city-x",
        "city-line",
        "bousai-x",
        "kosodate-line",
        "all",
    ]
    assert convert("images", "写真 1.png、b.png") == ["写真 1.png", "b.png"]
    assert convert("channels", "SNS、ホームページ、広報紙") == ["social", "website", "newsletter"]


def test_every_template_header_is_understood():
    for title in TABLE_HEADERS:
        assert column_for(title) is not None, title
    assert Path(TEMPLATES).is_dir()
