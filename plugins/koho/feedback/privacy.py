"""Masking the personal data residents often write, for digests: phone numbers, e-mail
addresses, street addresses and My Number (個人番号).

The ledger keeps the original; digests and reports show :func:`mask`'s text. Matching is on the
text as written (full-width digits and hyphens included), so the unmasked rest of the comment
reads exactly as the resident wrote it. A 12-digit number is masked as My Number only when its
check digit is right (python-stdnum), so order and account numbers are not taken for one.
Phone numbers are matched here rather than by a general phone library because the shapes that
matter are Japan's only and must be found inside unspaced Japanese text.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass

import regex
from stdnum.jp import in_ as my_number

from koho.feedback.untrusted import bounded

PLACEHOLDERS = {
    "my_number": "［個人番号］",
    "phone": "［電話番号］",
    "email": "［メールアドレス］",
    "address": "［住所］",
}

_D = "[0-9０-９]"
_SEP = r"[\-‐‑‒–—―−ー－ｰ\s]"  # hyphens as residents type them, the katakana long mark included
_NOT_DIGIT_BEFORE = r"(?<![0-9０-９])"
_NOT_DIGIT_AFTER = r"(?![0-9０-９])"

_MY_NUMBER = regex.compile(rf"{_NOT_DIGIT_BEFORE}{_D}{{4}}{_SEP}?{_D}{{4}}{_SEP}?{_D}{{4}}{_NOT_DIGIT_AFTER}")
#: A candidate phone number: +81 or a leading 0, then digits with hyphens, spaces or brackets.
_PHONE = regex.compile(
    rf"{_NOT_DIGIT_BEFORE}(?:[+＋]\s?[8８][1１][\s\-－]?[(（]?[0０]?[)）]?|[0０])"
    rf"(?:{_D}|{_SEP}|[()（）]){{8,16}}?{_D}{_NOT_DIGIT_AFTER}"
)
_EMAIL = regex.compile(
    r"[A-Za-z0-9Ａ-Ｚａ-ｚ０-９._%+\-＿．－]{1,64}[@＠][A-Za-z0-9Ａ-Ｚａ-ｚ０-９\-－]{1,63}"
    r"(?:[.．][A-Za-z0-9Ａ-Ｚａ-ｚ０-９\-－]{1,63}){0,8}[.．][A-Za-zＡ-Ｚａ-ｚ]{2,24}"
)

_N = r"[0-9０-９一二三四五六七八九十〇]{1,4}"
#: Place names: kanji and katakana, and の (丸の内); other hiragana ends a name ("私は" is no place).
_PLACE = r"(?:[\p{Han}\p{Katakana}ヶケ々ー]|の){1,30}"
_HYPHEN = r"[\-‐‑‒–—―−ー－ｰの]"
#: The house-level part that makes a place personal: 1丁目2番3号, 2丁目5-8, 12番地の3, 1-2-3.
_BLOCK = (
    rf"(?:{_N}丁目(?:{_N}(?:番地?|{_HYPHEN}))?(?:{_N}号?)?"
    rf"|{_N}番地?(?:の?{_N}号?)?"
    rf"|{_N}{_HYPHEN}{_N}(?:{_HYPHEN}{_N})?(?:号)?)"
)
#: One bounded run then the block: no nested quantifiers, so no input can make it backtrack for long.
_ADDRESS = regex.compile(rf"(?P<place>{_PLACE}?)(?P<block>{_BLOCK}){_NOT_DIGIT_AFTER}")
#: A place is an address's when it names an administrative unit, or the block is in 丁目/番/号.
_UNIT = regex.compile(r"[都道府県市区町村郡]")
_BLOCK_UNIT = regex.compile(r"丁目|番|号")


@dataclass(frozen=True)
class Masked:
    text: str
    #: How many of each kind were masked (``{"phone": 1}``), for a digest's note.
    counts: dict[str, int]


def mask(text: object) -> Masked:
    """``text`` with personal data replaced by placeholders (see :data:`PLACEHOLDERS`)."""
    counts: Counter[str] = Counter()
    out = bounded(text, max_chars=100_000)
    out = _MY_NUMBER.sub(lambda m: _counted(m, "my_number", counts, _is_my_number), out)
    out = _EMAIL.sub(lambda m: _counted(m, "email", counts), out)
    out = _PHONE.sub(lambda m: _counted(m, "phone", counts, _is_phone), out)
    out = _ADDRESS.sub(lambda m: _counted(m, "address", counts, _is_address), out)
    return Masked(out, dict(counts))


def _counted(match: regex.Match[str], kind: str, counts: Counter[str], check=None) -> str:
    if check is not None and not check(match.group()):
        return match.group()
    counts[kind] += 1
    return PLACEHOLDERS[kind]


def _is_address(text: str) -> bool:
    match = _ADDRESS.fullmatch(text)
    return bool(match and match["place"] and (_UNIT.search(match["place"]) or _BLOCK_UNIT.search(match["block"])))


def _digits(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit())


def _is_my_number(text: str) -> bool:
    return my_number.is_valid(_digits(text))


def _is_phone(text: str) -> bool:
    """Japan's numbering: 10 digits from 0 (fixed, 0120), 11 for 050/070/080/090/0800/020 numbers;
    after +81 the leading 0 is dropped."""
    digits = _digits(text)
    if digits.startswith("81") and unicodedata.normalize("NFKC", text).lstrip().startswith("+"):
        digits = "0" + digits[2:].removeprefix("0")
    if not digits.startswith("0") or digits.startswith("00"):
        return False
    if len(digits) == 11:
        return digits[:3] in {"020", "050", "060", "070", "080", "090"} or digits.startswith("0800")
    return len(digits) == 10
