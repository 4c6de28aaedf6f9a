"""The ad-hoc form applies the same text rules as the calendar, field by field."""

from __future__ import annotations

import pytest

from tests.unit.posting.conftest import counts
from tests.unit.posting.test_posting_adhoc_form import BASE

HOSTILE = [
    ("control character", {"text": "お知らせ\x0bです"}, "text", "U+000B"),
    ("NUL, which Postgres refuses", {"text": "お知らせ\x00です"}, "text", "U+0000"),
    ("bidi override", {"text": "電話 \u202e0120-123-456"}, "text", "U+202E"),
    ("invisible only", {"text": "\u200b\u200b"}, "text", "no visible character"),
    ("formula behind a space", {"text": '\u3000=HYPERLINK("https://evil.example")'}, "text", "formula"),
    ("look-alike link in the text", {"text": "詳細 https://www.\u0441ity.example.jp/"}, "text", "looks like"),
    ("user@ link", {"link": "https://www.city.example.jp@evil.example/"}, "link", "goes to 'evil.example'"),
    ("control character in the title", {"title": "題\x1b名"}, "title", "U+001B"),
]


@pytest.mark.parametrize(("changes", "field", "reason"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_adhoc_form_refuses_hostile_text_where_it_is(submit, ledger, changes, field, reason):
    result = submit({**BASE, **changes})
    assert not result.check.ok and result.recorded is None
    assert any(p.where.field == field and reason in p.message for p in result.check.errors), [
        str(p) for p in result.check.errors
    ]
    assert counts(ledger) == (0, 0)


def test_adhoc_form_refuses_a_flood_of_text_before_fitting(submit):
    result = submit({**BASE, "text": "お知らせです。" * 1500})
    [problem] = [p for p in result.check.errors if p.where.field == "text"]
    assert "10,500 characters; at most 8,000" in problem.message


def test_adhoc_form_names_the_thread_length_it_refuses(submit):
    result = submit({**BASE, "text": "防災訓練のお知らせです。" * 100})
    [problem] = [p for p in result.check.errors if p.where.account == "city-x"]
    assert "a thread would need" in problem.message and "at most 8 allowed" in problem.message
