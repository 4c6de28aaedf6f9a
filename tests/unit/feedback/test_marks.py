"""Marks from the policy's word lists and simple shapes; hostile text never crashes marking."""

from __future__ import annotations

import pytest

from koho.config.feedback import MarkRules, MarkWords
from koho.feedback.marks import Marker


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ごみの収集日はいつですか？", {"question"}),
        ("収集日を教えて", {"question"}),
        ("街灯を増やしてください", {"request"}),
        ("街灯を増やして下さい", {"request"}),
        ("歩道が暗くて危ないです", {"complaint"}),
        ("いつ直るんですか、ひどすぎます", {"question", "complaint"}),
        ("イベント楽しかったです。ありがとうございました！", {"thanks"}),
        ("担当者は無能", {"abuse"}),
        ("ﾊﾞｶじゃないの", {"abuse"}),  # half-width kana: NFKC before matching
        ("バ\u200bカ、\u202eクズ", {"abuse"}),  # invisible characters do not hide a word
        ("副業で月100万稼げる、プロフ見て", {"spam"}),
        ("見て https://a.example https://b.example https://c.example", {"spam"}),
        ("買って買って買って買って", {"spam"}),
        ("すごーーーーーーーい😀😀😀😀😀😀", set()),
        ("市報を読みました", set()),
    ],
)
def test_marks(marker: Marker, text: str, expected: set[str]) -> None:
    assert set(marker.mark(text).marks) == expected


def test_negative_marks_follow_the_policy() -> None:
    words = MarkWords(complaint=["ひどい"], abuse=["バカ"], spam=["副業"])
    default = Marker(MarkRules(words=words))
    spam_counts = Marker(MarkRules(words=words, negative=["spam"]))

    assert default.mark("ひどい").negative and default.mark("バカ").negative
    assert not default.mark("副業").negative
    assert spam_counts.mark("副業").negative and not spam_counts.mark("ひどい").negative


def test_an_unknown_negative_mark_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        MarkRules(negative=["thanks"])


def test_empty_word_lists_mark_only_by_shape() -> None:
    marker = Marker(MarkRules())

    assert set(marker.mark("本当ですか?").marks) == {"question"}
    assert marker.mark("ありがとう").marks == frozenset()


@pytest.mark.parametrize(
    "text",
    [
        "\x00" * 100,
        "\u202eひどい\u202c",
        "<img src=x onerror=alert(1)>",
        "😀" * 30_000,
        "ab" * 30_000,
        "\ud800",
        None,
        42,
    ],
)
def test_hostile_input_never_crashes_marking(marker: Marker, text: object) -> None:
    marks = marker.mark(text)

    assert isinstance(marks.marks, frozenset)
