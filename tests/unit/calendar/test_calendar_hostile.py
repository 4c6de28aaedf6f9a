"""Broken and hostile calendar files: each case broke the whole load, loosened a rule or let a
dangerous text through before. Every problem is located in its file; the valid file beside it loads."""

from __future__ import annotations

import io

import pytest

from koho.calendar.sources import read_source
from koho.config.schema import InputLimits
from tests.unit.calendar.calendar_helpers import csv_bytes, table_rows, yaml_text
from tests.unit.calendar.hostile_files import (
    GOOD,
    GOOD_ID,
    alias_bomb,
    encrypted_workbook,
    hand_made,
    replace_member,
    xlsx_bytes,
    zip_bomb,
)

ROW = {"ID": "x1", "タイトル": "t", "公開日時": "2027-02-03 10:00", "対象": "city-x", "本文": "b"}


def bad_entry(**fields) -> dict:
    return {
        "id": "bad-1",
        "title": "t",
        "publish_at": "2027-02-02 10:00",
        "targets": ["city-x"],
        "text": "本文",
        **fields,
    }


def load_beside_good(load, name: str, content: str | bytes):
    result = load({"good.yaml": GOOD, name: content})
    assert GOOD_ID in result.by_id(), [str(p) for p in result.problems]
    return result


def problems_in(result, name: str) -> list:
    return [p for p in result.problems if (p.where.file or "").startswith(name)]


# ---------------------------------------------------------------------------------------------- one file, one problem


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("control.yaml", "U+0007 is not allowed"),
        ("tag.yaml", "tag '!evil'"),
        ("anchor-key.yaml", "a key must be a plain name"),
        ("deep.yaml", "nest"),
        ("loop.yaml", "refers to the value it is part of"),
        ("corrupt-sheet.xlsx", "cannot open as an Excel workbook"),
        ("corrupt-styles.xlsx", "cannot open as an Excel workbook"),
        ("truncated.xlsx", "cannot open as an Excel workbook"),
        ("nul.csv", "control character(s) U+0000"),
    ],
)
def test_a_broken_file_is_reported_in_place_and_the_others_load(load, name, fragment):
    result = load_beside_good(load, name, hand_made()[name])
    found = problems_in(result, name)
    assert any(fragment in p.message and p.severity == "error" for p in found), [str(p) for p in result.problems]
    assert not [e for e in result.entries if e.id != GOOD_ID]


def test_an_unknown_tag_is_located_at_its_line_and_field(load):
    result = load_beside_good(load, "tag.yaml", hand_made()["tag.yaml"])
    [problem] = problems_in(result, "tag.yaml")
    assert (problem.where.line, problem.where.field) == (6, "entries[0].text")


def test_a_raw_control_character_is_located_at_its_line(load):
    result = load_beside_good(load, "control.yaml", hand_made()["control.yaml"])
    [problem] = problems_in(result, "control.yaml")
    assert problem.where.line == 6


# ---------------------------------------------------------------------------------------------- ambiguity never loosens a rule


def test_a_key_given_twice_stops_the_entry_instead_of_keeping_the_last_value(load):
    text = GOOD + (
        '  - id: bad-1\n    title: t\n    publish_at: "2027-02-02 10:00"\n    targets: [city-x]\n'
        "    text: 承認が必要な投稿\n    approval: true\n    approval: false\n"
    )
    result = load({"cal.yaml": text})
    assert set(result.by_id()) == {GOOD_ID}  # not loaded with approval: false
    [problem] = [p for p in result.problems if "duplicate key" in p.message]
    assert (problem.where.line, problem.where.field) == (13, "entries[1].approval")
    assert "neither value is used" in problem.message


def test_two_entries_lists_in_one_file_load_neither(load):
    second = GOOD.replace("good-1", "other-1")
    result = load({"cal.yaml": GOOD + second})
    assert result.entries == []
    assert any("duplicate key" in p.message and p.where.field == "entries" for p in result.problems)


def test_an_id_given_twice_makes_the_whole_file_count_as_unreadable():
    from koho.calendar.sources import yaml_entries
    from koho.config.yamlsource import parse_yaml

    read = yaml_entries(parse_yaml("entries:\n  - id: a\n    id: b\n    title: t\n", "cal.yaml"))
    assert any("duplicate key" in p.message for p in read.problems)  # file-level: nothing looks deleted
    assert any("duplicate key" in p.message for p in read.entries[0].problems)


@pytest.mark.parametrize(
    ("cell", "column"),
    [("たぶん", "承認"), ("=TRUE()", "承認"), ("#N/A", "状態"), ("=A1", "対象"), ("後で", "公開日時")],
)
def test_a_guarding_cell_that_cannot_be_read_stops_the_row(load, cell, column):
    row = {**ROW, "承認": "要", column: cell}
    result = load({"good.yaml": GOOD, "cal.csv": csv_bytes(table_rows([row]))})
    assert set(result.by_id()) == {GOOD_ID}
    assert any(p.where.field == column and p.severity == "error" for p in problems_in(result, "cal.csv"))


# ---------------------------------------------------------------------------------------------- workbooks


def test_a_hidden_sheet_is_never_read_and_the_sheet_read_is_named(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    secret = book.active
    secret.title = "下書き"
    for row in table_rows([{**ROW, "ID": "secret", "本文": "未発表の内容"}]):
        secret.append(row)
    secret.sheet_state = "hidden"
    public = book.create_sheet("公開用")
    for row in table_rows([{**ROW, "ID": "public"}]):
        public.append(row)
    book.save(tmp_path / "cal.xlsx")

    read = read_source(tmp_path / "cal.xlsx")
    assert [e.data["id"] for e in read.entries] == ["public"]
    assert read.sheet == "公開用"
    [note] = read.problems
    assert note.severity == "warning" and "'公開用' was read" in note.message


def test_a_hidden_calendar_sheet_is_reported_as_hidden(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "カレンダー"
    book.active.append(["古い"])
    book.active.sheet_state = "hidden"
    visible = book.create_sheet("Sheet2")
    for row in table_rows([ROW]):
        visible.append(row)
    book.save(tmp_path / "cal.xlsx")

    read = read_source(tmp_path / "cal.xlsx")
    assert read.sheet == "Sheet2" and [e.data["id"] for e in read.entries] == ["x1"]
    assert "'カレンダー' is hidden" in read.problems[0].message


def test_a_workbook_with_only_hidden_sheets_loads_nothing(tmp_path):
    import zipfile

    book = xlsx_bytes(table_rows([ROW]))
    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        workbook_xml = archive.read("xl/workbook.xml")
    hidden = replace_member(book, "xl/workbook.xml", workbook_xml.replace(b'state="visible"', b'state="hidden"'))
    (tmp_path / "cal.xlsx").write_bytes(hidden)
    read = read_source(tmp_path / "cal.xlsx")
    assert read.entries == []
    assert [p.message for p in read.problems] == ["the workbook has no visible worksheet; nothing was read"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (encrypted_workbook(), "password-protected"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "Excel 97-2003"),
        (b"just text", "zip archive"),
    ],
)
def test_a_workbook_that_is_not_an_xlsx_says_exactly_what_it_is(tmp_path, content, fragment):
    (tmp_path / "cal.xlsx").write_bytes(content)
    [problem] = read_source(tmp_path / "cal.xlsx").problems
    assert fragment in problem.message and problem.where.file == "cal.xlsx"


# ---------------------------------------------------------------------------------------------- limits


def test_an_alias_bomb_is_refused_at_the_alias_limit(tmp_path):
    (tmp_path / "bomb.yaml").write_text(alias_bomb(), encoding="utf-8")
    [problem] = read_source(tmp_path / "bomb.yaml").problems
    assert "more than 100 alias uses" in problem.message and problem.where.line


def test_aliases_within_the_limit_still_expand_up_to_the_node_limit(tmp_path):
    (tmp_path / "wide.yaml").write_text(alias_bomb(levels=2), encoding="utf-8")
    limits = InputLimits(max_yaml_aliases=1000, max_yaml_nodes=100)
    [problem] = read_source(tmp_path / "wide.yaml", limits=limits).problems
    assert "more than 100 values" in problem.message


def test_a_compressed_workbook_bomb_is_refused_before_it_is_inflated(tmp_path):
    (tmp_path / "bomb.xlsx").write_bytes(zip_bomb(8 << 20))
    [problem] = read_source(tmp_path / "bomb.xlsx", limits=InputLimits(max_workbook_bytes=4_000_000)).problems
    assert "unpacks to" in problem.message and "max_workbook_bytes" in problem.message


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    (tmp_path / "big.csv").write_bytes(b"x" * 20_001)
    [problem] = read_source(tmp_path / "big.csv", limits=InputLimits(max_file_bytes=20_000)).problems
    assert "20,001 bytes" in problem.message and "max_file_bytes" in problem.message


def test_entries_over_the_per_file_limit_are_refused_with_the_place_of_the_first(tmp_path):
    rows = [{**ROW, "ID": f"e{i}", "公開日時": f"2027-02-{i + 1:02d} 10:00"} for i in range(5)]
    (tmp_path / "cal.csv").write_bytes(csv_bytes(table_rows(rows)))
    read = read_source(tmp_path / "cal.csv", limits=InputLimits(max_entries_per_file=3))
    assert [e.data["id"] for e in read.entries] == ["e0", "e1", "e2"]
    [problem] = read.problems
    assert problem.where.line == 5 and "more than 3 entries; at most 3" in problem.message


def test_one_file_lists_a_bounded_number_of_problems_and_every_bad_entry_stays_refused(tmp_path):
    rows = [{**ROW, "ID": f"e{i}", "承認": "たぶん", "状態": "?", "祝日可": "?"} for i in range(40)]
    (tmp_path / "cal.csv").write_bytes(csv_bytes(table_rows(rows)))
    read = read_source(tmp_path / "cal.csv", limits=InputLimits(max_problems_per_file=20))
    assert all(e.problems for e in read.entries)  # each entry is still refused
    listed = sum(len(e.problems) for e in read.entries)
    assert listed <= 20 + len(read.entries) < 3 * 40  # the limit, then one per entry
    assert "more problems in this file are not listed" in read.problems[-1].message


def test_rows_past_the_sheet_limit_are_not_read(tmp_path):
    rows = [{**ROW, "ID": f"e{i}"} for i in range(30)]
    (tmp_path / "cal.xlsx").write_bytes(xlsx_bytes(table_rows(rows)))
    read = read_source(tmp_path / "cal.xlsx", limits=InputLimits(max_sheet_rows=10))
    assert len(read.entries) == 9
    assert any("more than 10 rows" in p.message for p in read.problems)


def test_a_very_long_text_is_refused_before_fitting_not_turned_into_a_thread(load):
    result = load({"good.yaml": GOOD, "cal.yaml": yaml_text([bad_entry(text="お知らせです。" * 1500)])})
    [problem] = [p for p in problems_in(result, "cal.yaml") if p.severity == "error"]
    assert "10,500 characters; at most 8,000" in problem.message and problem.where.field == "entries[0].text"
    assert "bad-1" not in result.by_id()


def test_a_text_that_would_make_a_long_thread_names_the_count(load):
    result = load({"cal.yaml": yaml_text([bad_entry(text="防災訓練のお知らせです。" * 100)])})
    [problem] = [p for p in result.problems if p.where.account == "city-x"]
    assert "thread of" in problem.message and "at most 8" in problem.message
    count = int(problem.message.split("thread of ")[1].split()[0])
    assert count > 8


def test_a_medium_thread_is_planned_with_a_warning_that_names_the_count(load):
    result = load({"cal.yaml": yaml_text([bad_entry(text="防災訓練のお知らせです。" * 55)])})
    assert "bad-1" in result.by_id()
    [warning] = result.warnings
    assert "as a thread of" in warning.message and warning.where.account == "city-x"


# ---------------------------------------------------------------------------------------------- text as posted


@pytest.mark.parametrize("lead", [" ", "\n", "\u3000", "\u200b", "\u00a0", " \t "])
@pytest.mark.parametrize("kind", ["yaml", "csv"])
def test_a_formula_behind_any_blank_is_refused(load, lead, kind):
    formula = lead + '=HYPERLINK("https://evil.example","詳しくはこちら")'
    if kind == "yaml":
        files = {"cal.yaml": yaml_text([bad_entry(text=formula)])}
    else:
        files = {"cal.csv": csv_bytes(table_rows([{**ROW, "ID": "bad-1", "本文": formula}]))}
    result = load(files)
    assert "bad-1" not in result.by_id()
    assert any("formula" in p.message for p in result.problems)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("縦タブ\x0bの文字", "U+000B"),
        ("エスケープ\x1b[31m赤", "U+001B"),
        ("\u200b\u200b\u2060", "no visible character"),
        ("\u3164\u3164", "no visible character"),
        ("電話は \u202e654-321-0210\u202c まで", "U+202E"),
        ("詳しくは https://www.city.example.jp@evil.example/ へ", "goes to 'evil.example'"),
        ("詳しくは https://www.\u0441ity.example.jp/ へ", "looks like the city's"),
        ("詳しくは https://www.xn--ity-3ed.example.jp/ へ", "looks like the city's"),
        ("詳しくは https://www.\uff43\uff49\uff54\uff59.example.jp/ へ", "looks like the city's"),
    ],
)
def test_a_dangerous_text_is_refused_where_it_is(load, text, fragment):
    result = load({"good.yaml": GOOD, "cal.yaml": yaml_text([bad_entry(text=text)])})
    assert "bad-1" not in result.by_id()
    [problem] = [p for p in problems_in(result, "cal.yaml") if fragment in p.message]
    assert problem.where.field == "entries[0].text" and problem.where.line == 6


def test_a_link_field_with_a_user_part_is_refused(load):
    result = load({"cal.yaml": yaml_text([bad_entry(link="https://city.example.jp@evil.example/page")])})
    [problem] = [p for p in result.problems if p.where.field == "entries[0].link"]
    assert "goes to 'evil.example'" in problem.message


def test_genuine_links_and_japanese_domains_are_accepted(load):
    text = "詳しくは https://www.city.example.jp/gomi/ と https://こほ市.jp/ と https://evil.example/ をご覧ください"
    result = load({"cal.yaml": yaml_text([bad_entry(text=text, link="https://city.example.jp/a")])})
    assert "bad-1" in result.by_id(), [str(p) for p in result.problems]


@pytest.mark.parametrize(("when", "ok"), [("2027-02-01(月) 10:00", True), ("2027-02-01(火) 10:00", False)])
def test_a_weekday_in_parentheses_must_match_the_date(load, when, ok):
    result = load({"cal.yaml": yaml_text([bad_entry(publish_at=when)])})
    assert ("bad-1" in result.by_id()) is ok
    if not ok:
        [problem] = result.errors
        assert problem.where.field == "entries[0].publish_at" and "is a Monday (月), not (火)" in problem.message


def test_read_source_never_raises_even_for_a_directory_named_like_a_file(tmp_path):
    (tmp_path / "odd.csv").mkdir()
    read = read_source(tmp_path / "odd.csv")
    assert read.problems and read.problems[0].where.file == "odd.csv"


def test_replace_member_helper_really_corrupts_the_sheet():
    book = replace_member(xlsx_bytes([["a"]]), "xl/worksheets/sheet1.xml", b"broken")
    import zipfile

    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        assert archive.read("xl/worksheets/sheet1.xml") == b"broken"


def test_every_hand_made_file_fails_alone_and_is_located(load, tmp_path):
    for name, content in hand_made().items():
        result = load_beside_good(load, name, content)
        errors = [p for p in result.problems if p.severity == "error"]
        assert errors, name
        assert all((p.where.file or "").startswith(name) for p in errors), name
        (tmp_path / "calendar" / name).unlink()  # the load fixture keeps one folder per test
