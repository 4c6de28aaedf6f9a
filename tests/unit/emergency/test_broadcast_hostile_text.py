"""The emergency form applies the same text rules as the calendar and the ad-hoc form."""

from __future__ import annotations

import pytest

from tests.unit.emergency.test_broadcast import check, city  # noqa: F401 - city is a fixture


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"message": "避難してください\x07"}, "message", "U+0007"),
        ({"message": "避難所 \u202eA-21"}, "message", "U+202E"),
        ({"message": "\u200b\u3164"}, "message", "no visible character"),
        ({"link": "https://city.example.jp@evil.example/"}, "link", "goes to 'evil.example'"),
    ],
)
def test_emergency_form_refuses_hostile_text(city, posting_settings, changes, field, reason):  # noqa: F811
    result = check(city, posting_settings, **changes)
    assert not result.ok
    assert any(p.where.field == field and reason in p.message for p in result.errors), [str(p) for p in result.errors]
