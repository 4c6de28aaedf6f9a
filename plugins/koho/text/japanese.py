"""Japanese sentence and word boundaries, from a real morphological analyser (SudachiPy).

Why a tokenizer and not a regex: "。" and "！" are sentence ends only when they are
punctuation (Sudachi tags them 補助記号-句点), not inside a name, a URL or a quotation, and
Japanese has no spaces, so the only safe place to cut a long sentence is between morphemes.

Rules used for sentences: a sentence ends after a run of terminators (。．！？!? and the
half-width ｡) that Sudachi tags as punctuation, and at every line break; never inside a
matched 「」『』（）() pair nor inside a URL. Sentences never contain their surrounding
whitespace, and the text between two sentences is whitespace only, so cutting between
sentences loses nothing but blanks.

The Sudachi dictionary is loaded lazily once per process (about 0.2 s); each thread gets its
own tokenizer object, because a tokenizer is not meant to be shared between threads.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterator
from functools import cache

import regex

from koho.text.rules import URL_PATTERN

TERMINATORS = frozenset("。．！？!?｡")
OPENERS = {"「": "」", "『": "』", "（": "）", "(": ")", "【": "】"}
_URL = regex.compile(URL_PATTERN)
_GRAPHEME = regex.compile(r"\X")
_LINE = regex.compile(r"[^\n]*\n|[^\n]+")
#: Sudachi refuses inputs over 49,149 UTF-8 bytes; chunks stay well below (4 bytes per char at most).
_CHUNK_CHARS = 10_000

_local = threading.local()


@cache
def _dictionary():
    from sudachipy import Dictionary  # imported lazily: DAG parsing never pays for the dictionary

    return Dictionary(dict="core")


def _tokenizer():
    tokenizer = getattr(_local, "tokenizer", None)
    if tokenizer is None:
        from sudachipy import SplitMode

        tokenizer = _dictionary().tokenizer(mode=SplitMode.C)
        _local.tokenizer = tokenizer
    return tokenizer


def normalize(text: str) -> str:
    """NFKC, for matching (full-width ASCII, half-width kana and ① fold to their plain forms)."""
    return unicodedata.normalize("NFKC", text)


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """(offset, chunk) pieces small enough for Sudachi: lines, and long lines at grapheme boundaries."""
    for line in _LINE.finditer(text):
        start, piece = line.start(), line.group()
        while len(piece) > _CHUNK_CHARS:
            cut = _grapheme_cut_before(piece, _CHUNK_CHARS)
            yield start, piece[:cut]
            start, piece = start + cut, piece[cut:]
        if piece:
            yield start, piece


def _grapheme_cut_before(text: str, limit: int) -> int:
    cut = 0
    for match in _GRAPHEME.finditer(text):
        if match.end() > limit:
            break
        cut = match.end()
    return cut or len(text)


def morphemes(text: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, surface, pos)`` for every morpheme; surfaces cover ``text`` exactly, in order."""
    out: list[tuple[int, int, str, str]] = []
    tokenizer = _tokenizer()
    for offset, chunk in _chunks(text):
        for m in tokenizer.tokenize(chunk):
            pos = m.part_of_speech()
            out.append((offset + m.begin(), offset + m.end(), m.surface(), f"{pos[0]}-{pos[1]}"))
    return out


def normalized_forms(text: str) -> list[str]:
    """Sudachi's normalized form of each morpheme of the NFKC text (whitespace included, as " ").

    The form matching uses: 子ども, こども and 子供 all give 子供, so a keyword written one way
    finds a comment written another. Surfaces and parts of speech are never asked for, and a
    text short enough for one call skips the line splitting (routing's hot path).
    """
    tokenizer = _tokenizer()
    text = normalize(text)
    if len(text) <= _CHUNK_CHARS:
        return [m.normalized_form() for m in tokenizer.tokenize(text)]
    out: list[str] = []
    for _, chunk in _chunks(text):
        out.extend([m.normalized_form() for m in tokenizer.tokenize(chunk)])
    return out


def tokenizer():
    """This thread's Sudachi tokenizer (split mode C), for callers measuring it bare."""
    return _tokenizer()


def tokens(text: str) -> list[str]:
    """Surface forms of the morphemes (whitespace included), so ``"".join(tokens(t)) == t``."""
    return [surface for _, _, surface, _ in morphemes(text)]


def token_spans(text: str) -> list[tuple[int, int]]:
    """Offsets of each morpheme (whitespace morphemes left out)."""
    return [(s, e) for s, e, surface, _ in morphemes(text) if surface.strip()]


def _quoted(text: str) -> list[tuple[int, int]]:
    """Spans inside matched brackets/quotes (outermost); an unmatched opener protects nothing."""
    spans: list[tuple[int, int]] = []
    stack: list[tuple[str, int]] = []
    closers = {v: k for k, v in OPENERS.items()}
    for i, ch in enumerate(text):
        if ch in OPENERS:
            stack.append((ch, i))
        elif ch in closers:
            # Close the nearest matching opener; openers above it were unmatched and are dropped.
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth][0] == closers[ch]:
                    start = stack[depth][1]
                    del stack[depth:]
                    if not stack:
                        spans.append((start, i + 1))
                    break
        elif ch == "\n":
            stack.clear()  # a quotation does not run across paragraphs
    return spans


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(s < position < e for s, e in spans)


def _terminator_ends(text: str) -> list[int]:
    """Offsets just after each run of sentence-ending punctuation, as the tokenizer sees it."""
    ends: list[int] = []
    previous_end = -1
    for start, end, surface, pos in morphemes(text):
        is_end = surface and all(ch in TERMINATORS for ch in surface) and pos.startswith("補助記号")
        if is_end:
            if ends and ends[-1] == start == previous_end:
                ends[-1] = end  # "！？" and "!!" are one ending
            else:
                ends.append(end)
        previous_end = end
    return ends


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Offsets of each sentence, without surrounding whitespace; only whitespace lies between them."""
    protected = _quoted(text) + [m.span() for m in _URL.finditer(text)]
    cuts = {e for e in _terminator_ends(text) if not _inside(e, protected)}
    cuts.update(i + 1 for i, ch in enumerate(text) if ch == "\n")
    spans: list[tuple[int, int]] = []
    start = 0
    for cut in sorted(cuts | {len(text)}):
        piece = text[start:cut]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + lead + len(stripped)))
        start = cut
    return spans


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` in order, each stripped of surrounding whitespace."""
    return [text[s:e] for s, e in sentence_spans(text)]
