"""Parsing the JMA Atom feed and warning bulletins, including hostile and broken input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from koho.emergency.jma import JmaDocumentError, parse_document, parse_feed

FEED_URL = "https://www.data.jma.go.jp/developer/xml/feed/extra.xml"

FEED = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" lang="ja">
  <title>高頻度（随時）</title>
  <subtitle>JMAXML publishing feed</subtitle>
  <updated>2025-07-09T20:12:30Z</updated>
  <id>https://www.data.jma.go.jp/developer/xml/feed/extra.xml#short_1</id>
  <link rel="self" href="https://www.data.jma.go.jp/developer/xml/feed/extra.xml"/>
  <entry>
    <title>気象警報・注意報（Ｈ２７）</title>
    <id>https://www.data.jma.go.jp/developer/xml/data/20250709201205_0_VPWW54_120000.xml</id>
    <updated>2025-07-09T20:12:05Z</updated>
    <author><name>銚子地方気象台</name></author>
    <link type="application/xml" href="https://www.data.jma.go.jp/developer/xml/data/20250709201205_0_VPWW54_120000.xml"/>
    <content type="text">【千葉県気象警報・注意報】北東部では土砂災害に警戒してください。</content>
  </entry>
  <entry>
    <title>府県気象情報</title>
    <id>https://www.data.jma.go.jp/developer/xml/data/20250709200000_0_VPFJ50_120000.xml</id>
    <updated>2025-07-09T20:00:00Z</updated>
    <author><name>銚子地方気象台</name></author>
    <link type="application/xml" href="../data/relative.xml"/>
  </entry>
  <entry>
    <title>リンクのない項目</title>
    <id>urn:uuid:00000000-0000-0000-0000-000000000000</id>
    <updated>not a date</updated>
  </entry>
</feed>
""".encode()


def test_feed_entries_are_read_with_aware_times_and_absolute_links():
    feed = parse_feed(FEED, FEED_URL)
    assert feed.title == "高頻度（随時）"
    assert feed.updated == datetime(2025, 7, 9, 20, 12, 30, tzinfo=UTC)
    first, second = feed.entries
    assert first.id == first.link == "https://www.data.jma.go.jp/developer/xml/data/20250709201205_0_VPWW54_120000.xml"
    assert first.title == "気象警報・注意報（Ｈ２７）"
    assert first.author == "銚子地方気象台"
    assert first.updated == datetime(2025, 7, 9, 20, 12, 5, tzinfo=UTC)
    assert first.content.startswith("【千葉県気象警報・注意報】")
    assert second.link == "https://www.data.jma.go.jp/developer/xml/data/relative.xml"


def test_a_broken_feed_entry_is_reported_and_the_others_kept():
    feed = parse_feed(FEED, FEED_URL)
    assert len(feed.entries) == 2
    assert any("entry 3" in p and "no link" in p for p in feed.problems)


def test_a_feed_that_is_not_atom_is_refused_with_its_url():
    with pytest.raises(JmaDocumentError, match=r"extra\.xml: expected an Atom <feed>"):
        parse_feed(b"<html><body>maintenance</body></html>", FEED_URL)


def test_a_warning_bulletin_is_parsed(bulletin):
    warning = bulletin("heavy_rain")
    assert warning.control_title == "気象警報・注意報（Ｈ２７）"
    assert warning.status == "通常"
    assert warning.office == "銚子地方気象台"
    assert warning.title == "千葉県気象警報・注意報"
    assert warning.info_type == "発表"
    assert warning.event_id == ""  # warning bulletins carry an empty EventID
    assert warning.report_time == datetime(2025, 7, 9, 20, 12, tzinfo=UTC)  # 05:12 JST
    assert warning.report_time.tzinfo is UTC
    assert warning.headline.startswith("北東部では")
    # only the per-municipality layer (7-digit codes); the prefecture layer is not an area
    assert [a.area_code for a in warning.areas] == ["1229900", "1229800", "1249900"]
    city = warning.areas[0]
    assert city.area_name == "こほ市"
    assert [(k.name, k.code, k.status) for k in city.kinds] == [
        ("大雨警報", "03", "発表"),
        ("洪水警報", "04", "発表"),
        ("雷注意報", "14", "発表"),
    ]
    assert warning.problems == ()


def test_drill_cancellation_and_no_warning_items(bulletin):
    assert bulletin("drill").status == "訓練"
    cancel = bulletin("storm_cancel")
    assert cancel.info_type == "取消" and cancel.areas == ()
    all_clear = bulletin("all_clear")
    # an item with only "発表警報・注意報はなし" has no kinds, but the area is still listed
    assert all_clear.areas[1].area_code == "1249900" and all_clear.areas[1].kinds == ()


def test_malformed_bulletin_error_names_the_url_the_line_and_the_fault(sample_bytes):
    url = "https://www.data.jma.go.jp/developer/xml/data/broken.xml"
    with pytest.raises(JmaDocumentError) as caught:
        parse_document(sample_bytes("malformed"), url)
    assert caught.value.url == url
    assert "malformed XML" in str(caught.value) and "mismatched tag" in str(caught.value)
    assert str(caught.value).startswith(f"JMA document {url}:")
    assert caught.value.line is not None


def test_dtd_and_entities_are_refused_before_expansion(sample_bytes):
    with pytest.raises(JmaDocumentError, match="DTDs"):
        parse_document(sample_bytes("entity_bomb"), "https://example.jp/bomb.xml")


@pytest.mark.parametrize(
    "doc",
    [
        b'<?xml version="1.0"?><!DOCTYPE Report SYSTEM "http://evil.example/x.dtd"><Report/>',
        b'<?xml version="1.0"?><!DOCTYPE Report [<!ENTITY x SYSTEM "file:///etc/passwd">]><Report>&x;</Report>',
    ],
)
def test_external_dtds_and_entities_are_refused(doc):
    with pytest.raises(JmaDocumentError, match="not allowed"):
        parse_document(doc, "https://example.jp/evil.xml")


def test_the_feed_refuses_dtds_too():
    with pytest.raises(JmaDocumentError, match="DTDs"):
        parse_feed(b'<!DOCTYPE feed [<!ENTITY a "a">]><feed xmlns="http://www.w3.org/2005/Atom"/>', FEED_URL)


def _report(head: str, body: str = "", status: str = "通常") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/">
<Control><Title>気象警報・注意報（Ｈ２７）</Title><Status>{status}</Status>
<EditorialOffice>銚子地方気象台</EditorialOffice></Control>
<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/">{head}</Head>
<Body xmlns="http://xml.kishou.go.jp/jmaxml1/body/meteorology1/">{body}</Body>
</Report>""".encode()


HEAD = "<Title>千葉県気象警報・注意報</Title><ReportDateTime>2025-07-10T05:12:00+09:00</ReportDateTime><InfoType>発表</InfoType>"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_report("<InfoType>発表</InfoType>"), "missing Head/ReportDateTime"),
        (_report("<ReportDateTime>2025-07-10T05:12:00</ReportDateTime><InfoType>発表</InfoType>"), "no UTC offset"),
        (_report("<ReportDateTime>yesterday</ReportDateTime><InfoType>発表</InfoType>"), "not an ISO 8601"),
        (_report(HEAD.replace("発表", "更新")), "Head/InfoType must be one of"),
        (_report(HEAD, status="本番"), "Control/Status must be one of"),
        (b"", "document is empty"),
        (b"<feed/>", "expected a JMA <Report>"),
        (b"\xff\xfe<\x00R\x00", "malformed XML"),
    ],
)
def test_unusable_bulletins_say_what_is_wrong(doc, message):
    with pytest.raises(JmaDocumentError, match=message):
        parse_document(doc, "https://example.jp/doc.xml")


def test_an_item_without_area_code_is_skipped_and_reported_the_rest_kept():
    body = """<Warning type="気象警報・注意報（市町村等）">
<Item><Kind><Name>大雨警報</Name><Code>03</Code><Status>発表</Status></Kind><Area><Name>名無し市</Name></Area></Item>
<Item><Kind><Name>大雨警報</Name><Code>03</Code><Status>発表</Status></Kind>
<Area><Name>こほ市</Name><Code>1229900</Code></Area></Item></Warning>"""
    warning = parse_document(_report(HEAD, body), "https://example.jp/doc.xml")
    assert [a.area_code for a in warning.areas] == ["1229900"]
    assert len(warning.problems) == 1 and "名無し市" in warning.problems[0]


def test_documents_without_namespaces_are_read_too():
    doc = _report(
        HEAD,
        """<Warning type="気象警報・注意報（市町村等）"><Item>
<Kind><Name>大雨警報</Name><Status>発表</Status></Kind><Area><Name>こほ市</Name><Code>1229900</Code></Area>
</Item></Warning>""",
    ).replace(b' xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/"', b"")
    assert parse_document(doc, "https://example.jp/doc.xml").areas[0].kinds[0].name == "大雨警報"


def test_oversized_documents_are_refused():
    with pytest.raises(JmaDocumentError, match="too large"):
        parse_document(b"<Report>" + b" " * (9 * 1024 * 1024) + b"</Report>", "https://example.jp/big.xml")
