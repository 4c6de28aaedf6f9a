"""The text rules every intake shares, the confusables skeleton and the safe spreadsheet cell."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koho.calendar.formula import formula_problem
from koho.text.cells import safe_cell
from koho.text.confusables import imitated, is_mixed_script, skeleton
from koho.text.hygiene import link_problems, normalise_text, text_problems

CITY = ["city.example.jp", "www.city.example.jp"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("お知らせ\x0bです", "U+000B"),
        ("お知らせ\x00です", "U+0000"),
        ("\u200b\u200c\u2060\ufeff", "no visible character"),
        ("\u3164\u2800", "no visible character"),
        ("電話 \u202e0120-123-456", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("\u2067隔離\u2069", "U+2067"),
        ('\u3000=HYPERLINK("https://evil.example")', "formula"),
        ("\n\n@SUM(A1:A3)", "formula"),
    ],
)
def test_dangerous_texts_are_refused_with_what_is_wrong(text, fragment):
    reasons = text_problems(text)
    assert any(fragment in r for r in reasons), reasons


@pytest.mark.parametrize(
    "text",
    [
        "1月のごみ収集日程をお知らせします。\n詳しくは https://www.city.example.jp/gomi/ へ",
        "👨‍👩‍👧 家族で参加できます 🇯🇵",  # ZWJ sequences and flags are visible text
        "-ご注意ください",
        "+81-3-1234-5678 までお電話ください",
        "@koho_city さんより",
        "こほ市（https://こほ市.jp/）",
    ],
)
def test_ordinary_city_texts_pass(text):
    assert text_problems(text, own_domains=CITY) == []


def test_the_formula_rule_can_be_left_to_a_reader_that_already_applied_it():
    assert text_problems("=1+1", formulas=False) == []
    assert text_problems("=1+1") != []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://www.city.example.jp@evil.example/", "goes to 'evil.example'"),
        ("https://user:pw@evil.example/", "'user@' part"),
        ("https://www.\u0441ity.example.jp/", "mixes scripts"),  # Cyrillic es
        ("https://www.\u0441ity.example.jp/", "looks like the city's"),
        ("https://www.xn--ity-3ed.example.jp/", "looks like the city's"),  # the same host in punycode
        ("https://www.xn--999999999999999.example.jp/", "cannot be decoded"),
        ("https://www.\uff43ity.example.jp/", "looks like the city's"),  # full-width c
    ],
)
def test_links_that_go_elsewhere_than_they_say_are_refused(url, fragment):
    reasons = link_problems(url, own_domains=CITY)
    assert any(fragment in r for r in reasons), reasons


@pytest.mark.parametrize(
    "url",
    ["https://www.city.example.jp/a", "https://news.city.example.jp/", "https://evil.example/", "https://こほ市.jp/"],
)
def test_genuine_and_unrelated_links_pass(url):
    assert link_problems(url, own_domains=CITY) == []


def test_the_skeleton_maps_look_alikes_to_one_shape():
    assert skeleton("\u0441ity") == skeleton("city") == skeleton("CITY")
    assert skeleton("\u0440aypal") == skeleton("paypal")
    assert skeleton("kobe") != skeleton("kyoto")
    assert is_mixed_script("\u0441ity") and not is_mixed_script("こほ市koho") and not is_mixed_script("city-1")
    assert imitated("city.example.jp.evil.example", CITY) is None
    assert imitated("www.\u0441ity.example.jp", CITY) == "city.example.jp"


@settings(deadline=None)
@given(st.text(max_size=30))
def test_the_skeleton_is_stable(text):
    assert skeleton(skeleton(text)) == skeleton(text)


def test_normalise_text_is_what_gets_posted():
    assert normalise_text("\u3000 本文\r\n二行目 \n") == "本文\n二行目"


# ---------------------------------------------------------------------------------------------- safe cells


@pytest.mark.parametrize(
    "value",
    ['=HYPERLINK("x")', " =1+1", "\u3000=1", "\n@SUM(1)", "\u200b-2+3", "＝1", "+1", "\t普通", "\rx"],
)
def test_a_safe_cell_never_starts_a_formula(value):
    out = safe_cell(value)
    assert out.startswith("'")


@pytest.mark.parametrize("value", ["普通の文", "2027年1月", "", "https://www.city.example.jp/"])
def test_a_safe_cell_leaves_plain_text_alone(value):
    assert safe_cell(value) == value


def test_a_safe_cell_drops_what_xml_cannot_hold_and_keeps_the_rest():
    assert safe_cell("縦\x0bタブ\x00と\x1b絵文字👍") == "縦タブと絵文字👍"
    assert safe_cell(12) == 12 and safe_cell(None) is None


@settings(deadline=None)
@given(st.text())
def test_any_text_becomes_a_cell_openpyxl_writes_and_excel_shows_as_text(text):
    from openpyxl import Workbook

    cell = Workbook().active.cell(row=1, column=1, value=safe_cell(text))
    assert cell.data_type != "f"
    assert formula_problem(str(cell.value or "")) is None or str(cell.value).startswith("'")


def test_the_skeleton_is_stable_for_every_character_of_the_confusables_data():
    from confusable_homoglyphs.confusables import confusables_data

    unstable = [c for c in confusables_data if skeleton(skeleton(c)) != skeleton(c)]
    assert unstable == []
