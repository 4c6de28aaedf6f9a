"""What a notification looks like on the wire, as received by a real SMTP server: the MIME
tree, inline ``cid:`` images, attachments with their types, Japanese subject and bodies."""

from __future__ import annotations

import re

from koho.calendar.demo_media import png_bytes
from koho.notify import Attachment, InlineImage, Message, send

CHART = png_bytes(40, 30, (51, 102, 204))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def report(**changes) -> Message:
    fields = {
        "id": "review:2026Q4",
        "to": ("koho@city.example.jp", "kiki@city.example.jp"),
        "subject": "[Koho] テスト市: アカウント評価レポート 2026年第4四半期",
        "template": "mail/report.html.j2",
        "context": {
            "city_name": "テスト市",
            "title": "アカウント評価",
            "paragraphs": ["各アカウントの到達数と反応です。", "<script>alert(1)</script>住民のコメント"],
            "figures": [{"name": "reach", "alt": "到達数の推移"}],
            "columns": ["アカウント", "到達数"],
            "rows": [["city-x", 1200], ["kosodate-line", 310]],
            "attachments_note": "",
        },
        "images": (InlineImage("reach", CHART),),
        "attachments": (
            Attachment("評価一覧.csv", "アカウント,到達数\ncity-x,1200\n".encode()),
            Attachment("review.xlsx", b"PK\x03\x04 workbook bytes"),
        ),
    }
    return Message(**{**fields, **changes})


def test_html_and_text_alternatives_sit_in_related_with_the_images_and_the_files_beside(ledger, smtp):
    sent = send(report(), ledger=ledger)

    assert sorted(sent.sent) == ["kiki@city.example.jp", "koho@city.example.jp"]
    assert [m["To"] for m in smtp.messages] == ["kiki@city.example.jp", "koho@city.example.jp"]
    assert smtp.envelopes == [["kiki@city.example.jp"], ["koho@city.example.jp"]]  # one recipient per mail
    mail = smtp.messages[0]
    assert mail.get_content_type() == "multipart/mixed"
    related, *files = mail.iter_parts()
    assert related.get_content_type() == "multipart/related"
    alternative, image = related.iter_parts()
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert image.get_content_type() == "image/png" and image.get_content() == CHART
    assert [(f.get_filename(), f.get_content_type()) for f in files] == [
        ("評価一覧.csv", "text/csv"),
        ("review.xlsx", XLSX),
    ]
    assert files[0].get_content().replace("\r\n", "\n") == "アカウント,到達数\ncity-x,1200\n"
    assert files[1].get_content() == b"PK\x03\x04 workbook bytes"


def test_every_cid_in_the_html_resolves_to_an_inline_part(ledger, smtp):
    send(report(), ledger=ledger)

    mail = smtp.messages[0]
    html = mail.get_body(("html",)).get_content()
    cids = re.findall(r'src="cid:([^"]+)"', html)
    parts = {p["Content-ID"].strip("<>"): p for p in mail.walk() if p["Content-ID"]}
    assert cids == ["reach"] and set(cids) <= set(parts)
    assert parts["reach"].get_content_disposition() == "inline"
    assert "data:" not in html


def test_japanese_subject_and_bodies_survive_any_relay(ledger, smtp):
    send(report(), ledger=ledger)

    mail, raw = smtp.messages[0], smtp.raw[0]
    raw.decode("ascii")  # 7-bit clean: RFC 2047 subject, base64 bodies, RFC 2231 file names
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n", 1)[0]
    assert str(mail["Subject"]) == "[Koho] テスト市: アカウント評価レポート 2026年第4四半期"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "各アカウントの到達数と反応です。" in text and "kosodate-line" in text and "<" not in text.split("\n")[0]
    assert "各アカウントの到達数と反応です。" in html
    assert "<script>" not in html and "&lt;script&gt;" in html  # residents' text is escaped
    assert mail.get_body(("plain",))["Content-Type"].params["charset"] == "utf-8"


def test_a_mail_to_a_bad_address_fails_alone_and_says_which(ledger, smtp):
    import pytest

    from koho.notify import MailNotSent

    with pytest.raises(MailNotSent, match="'koho@city' is not a mail address"):
        send(report(to=("koho@city", "kiki@city.example.jp", "x@y.jp\nBcc: evil@example.com")), ledger=ledger)

    assert [m["To"] for m in smtp.messages] == ["kiki@city.example.jp"]


def test_a_template_showing_an_image_the_message_lacks_is_an_error_before_anything_is_sent(ledger, smtp):
    import pytest

    from koho.notify import NotifyError

    with pytest.raises(NotifyError, match="shows image 'reach', which the message does not carry"):
        send(report(images=()), ledger=ledger)
    assert smtp.messages == []
