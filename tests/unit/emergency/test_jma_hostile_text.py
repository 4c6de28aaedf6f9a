"""The JMA feed is another party's text that ends up in the city's drafts: the same text rules apply."""

from __future__ import annotations

from koho.emergency.jma import parse_document
from tests.unit.emergency.test_jma_parsing import HEAD, _report

ITEM = (
    '<Warning type="気象警報・注意報（市町村等）"><Item><Kind><Name>大雨警報</Name><Code>03</Code>'
    "<Status>発表</Status></Kind><Area><Name>{name}</Name><Code>1229900</Code></Area></Item></Warning>"
)


def test_a_headline_with_a_bidi_override_is_left_out_and_reported():
    head = HEAD + "<Headline><Text>大雨警報を発表\u202e します</Text></Headline>"
    warning = parse_document(_report(head, ITEM.format(name="こほ市")), "https://example.jp/doc.xml")
    assert warning.headline == ""
    [problem] = warning.problems
    assert "Head/Headline/Text" in problem and "U+202E" in problem and "https://example.jp/doc.xml" in problem
    assert [a.area_name for a in warning.areas] == ["こほ市"]  # the rest of the bulletin is kept


def test_an_area_name_of_invisible_characters_is_left_out_and_reported():
    warning = parse_document(_report(HEAD, ITEM.format(name="\u200b\u200b")), "https://example.jp/doc.xml")
    assert [a.area_name for a in warning.areas] == [""]
    assert any("Area/Name" in p and "no visible character" in p for p in warning.problems)


def test_a_plain_headline_is_kept():
    head = HEAD + "<Headline><Text>こほ市に大雨警報を発表しました。</Text></Headline>"
    assert parse_document(_report(head), "https://example.jp/doc.xml").headline == "こほ市に大雨警報を発表しました。"
