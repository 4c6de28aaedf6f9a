"""Marks on a resident's item: question, request, complaint, thanks, abuse, spam.

Word lists are policy (``feedback.marks`` in policy.yaml); beside them, simple shapes: a
question mark makes a question, more links than ``max_urls`` or one piece of text repeated
``repeat_count`` times in a row makes spam. An item may carry several marks ("いつ直るんですか、
ひどすぎます" is a question and a complaint). Words are compiled into one alternation per mark,
so marking costs one scan per mark whatever the list's length.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import regex

from koho.config.feedback import MarkRules
from koho.feedback.untrusted import bounded
from koho.text.rules import URL_PATTERN

MARKS = ("question", "request", "complaint", "thanks", "abuse", "spam")
_URL = regex.compile(URL_PATTERN)
#: The repeated-text rule looks at the start only: its backtracking grows with the length read.
_REPEAT_WINDOW = 2_000
_QUESTION_MARKS = ("?", "？")
#: Invisible format characters (zero-width space, RTL override...) hide a word from a list: "バ\u200bカ".
_FORMAT = regex.compile(r"\p{Cf}+")


@dataclass(frozen=True)
class Marks:
    marks: frozenset[str]
    #: Marks counted as negative for comment-storm detection (policy: complaint, abuse).
    negative: bool

    def __contains__(self, mark: object) -> bool:
        return mark in self.marks


class Marker:
    """Built once from the policy's rules; :meth:`mark` is pure."""

    def __init__(self, rules: MarkRules | None = None):
        self.rules = rules or MarkRules()
        self._words: dict[str, re.Pattern[str] | None] = {
            mark: _alternation(getattr(self.rules.words, mark)) for mark in MARKS
        }
        spam = self.rules.spam
        self._repeat = re.compile(rf"(.{{{spam.repeat_min_chars},40}}?)\1{{{spam.repeat_count - 1},}}", re.DOTALL)
        self._negative = frozenset(self.rules.negative)

    def mark(self, text: object) -> Marks:
        body = _FORMAT.sub("", unicodedata.normalize("NFKC", bounded(text))).casefold()
        found = {mark for mark, pattern in self._words.items() if pattern is not None and pattern.search(body)}
        if any(q in body for q in _QUESTION_MARKS):
            found.add("question")
        if self._is_spam_shaped(body):
            found.add("spam")
        marks = frozenset(found)
        return Marks(marks, negative=bool(marks & self._negative))

    def _is_spam_shaped(self, body: str) -> bool:
        if len(_URL.findall(body)) > self.rules.spam.max_urls:
            return True
        # A unit of one character repeated ("ーーーー", "😀😀😀😀") is emphasis, not copied text.
        return any(len(set(m.group(1))) > 1 for m in self._repeat.finditer(body[:_REPEAT_WINDOW]))


def _alternation(words: list[str]) -> re.Pattern[str] | None:
    """One pattern for a word list, longest words first, in the same NFKC + casefold as the text."""
    forms = sorted({unicodedata.normalize("NFKC", w).casefold() for w in words if w.strip()}, key=len, reverse=True)
    return re.compile("|".join(re.escape(f) for f in forms)) if forms else None
