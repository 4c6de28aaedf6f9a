"""A message over the size limit is split into mails under it, says so in its body, and loses
nothing: files that do not fit follow in continuation mails, a file too big for any mail is
named in the body and in the report."""

from __future__ import annotations

from koho.notify import Attachment, InlineImage, Message, send

LIMIT = 260_000


def blob(size: int, seed: int) -> bytes:
    """Binary content of ``size`` bytes (base64 grows it by a third, as it does images and workbooks)."""
    return bytes((i * 7919 + seed) % 251 for i in range(size))


def digest(**changes) -> Message:
    fields = {
        "id": "feedback_digest:childcare:2026-12-04",
        "to": ("kodomo@city.example.jp",),
        "subject": "[Koho] テスト市: 住民の声 12月4日",
        "template": "mail/report.html.j2",
        "context": {
            "city_name": "テスト市",
            "title": "住民の声",
            "paragraphs": ["今日のご意見です。"],
            "figures": [{"name": "trend", "alt": "件数の推移"}, {"name": "big", "alt": "大きな図"}],
            "columns": [],
            "rows": [],
            "attachments_note": "",
        },
        "images": (InlineImage("trend", blob(60_000, 1)), InlineImage("big", blob(160_000, 2))),
        "attachments": (
            Attachment("a.csv", blob(60_000, 3)),
            Attachment("b.xlsx", blob(60_000, 4)),
            Attachment("c.xlsx", blob(60_000, 5)),
        ),
    }
    return Message(**{**fields, **changes})


def test_a_big_message_is_split_into_mails_under_the_limit_and_nothing_is_lost(ledger, smtp):
    report = send(digest(), ledger=ledger, max_bytes=LIMIT)

    assert report.parts == len(smtp.messages) > 1
    assert all(len(raw) <= LIMIT for raw in smtp.raw)
    first, *rest = smtp.messages
    html = first.get_body(("html",)).get_content()
    text = first.get_body(("plain",)).get_content()
    assert f"{report.parts} 通に分けて送ります" in html and f"{report.parts} 通に分けて送ります" in text
    assert 'src="cid:trend"' in html  # the small chart stays inline
    assert 'src="cid:big"' not in html and "big.png" in html  # the big one is described, and follows
    files = [
        p.get_filename()
        for m in smtp.messages
        for p in m.iter_attachments()
        if p.get_content_disposition() == "attachment"
    ]
    assert sorted(files) == ["a.csv", "b.xlsx", "big.png", "c.xlsx"]  # every file exactly once
    subjects = [str(m["Subject"]) for m in smtp.messages]
    assert subjects == [f"[Koho] テスト市: 住民の声 12月4日（{i}/{report.parts}）" for i in range(1, report.parts + 1)]
    for n, mail in enumerate(rest, start=2):
        body = mail.get_body(("html",)).get_content()
        assert f"（{n}/{report.parts} 通目）" in body and "住民の声" in body


def test_a_message_under_the_limit_is_one_mail(ledger, smtp):
    report = send(digest(), ledger=ledger, max_bytes=2_000_000)

    assert report.parts == 1 and len(smtp.messages) == 1
    html = smtp.messages[0].get_body(("html",)).get_content()
    assert "分けて" not in html and 'src="cid:big"' in html


def test_a_file_too_big_for_any_mail_is_named_not_dropped_silently(ledger, smtp):
    huge = Attachment("全件.xlsx", blob(400_000, 6))
    report = send(digest(attachments=(Attachment("a.csv", blob(1_000, 3)), huge)), ledger=ledger, max_bytes=LIMIT)

    assert report.too_big == ["全件.xlsx"]
    assert all(len(raw) <= LIMIT for raw in smtp.raw)
    html = smtp.messages[0].get_body(("html",)).get_content()
    assert "全件.xlsx (0.4 MB)" in html and "上限（0.3 MB）" in html
    files = [p.get_filename() for m in smtp.messages for p in m.iter_attachments()]
    assert "全件.xlsx" not in files and "a.csv" in files
