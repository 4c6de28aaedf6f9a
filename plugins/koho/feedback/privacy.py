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

_PREFECTURES = (
    "北海道|青森県|岩手県|宮城県|秋田県|山形県|福島県|茨城県|栃木県|群馬県|埼玉県|千葉県|東京都|神奈川県|"
    "新潟県|富山県|石川県|福井県|山梨県|長野県|岐阜県|静岡県|愛知県|三重県|滋賀県|京都府|大阪府|兵庫県|"
    "奈良県|和歌山県|鳥取県|島根県|岡山県|広島県|山口県|徳島県|香川県|愛媛県|高知県|福岡県|佐賀県|長崎県|"
    "熊本県|大分県|宮崎県|鹿児島県|沖縄県"
)
_N = r"[0-9０-９一二三四五六七八九十〇]{1,4}"
_NAME = r"[\p{Han}\p{Katakana}ヶケ々ー]"  # place names: kanji and katakana (hiragana ends a name, except の)
_TOWN = rf"(?:{_NAME}|の){{0,12}}"
_HYPHEN = r"[\-‐‑‒–—―−ー－ｰの]"
#: The house-level part that makes a place personal: 1丁目2番3号, 2丁目5-8, 12番地の3, 1-2-3.
_BLOCK = (
    rf"(?:{_N}丁目(?:{_N}(?:番地?|{_HYPHEN}))?(?:{_N}号?)?"
    rf"|{_N}番地?(?:の?{_N}号?)?"
    rf"|{_N}{_HYPHEN}{_N}(?:{_HYPHEN}{_N})?(?:号)?)"
)
_ADDRESS = regex.compile(
    rf"(?:(?:{_PREFECTURES})(?:{_NAME}{{1,6}}?[市区町村郡])*{_TOWN}"
    rf"|{_NAME}{{1,6}}?[市区町村郡](?:{_NAME}{{1,6}}?[市区町村郡])*{_TOWN}"
    rf"|{_NAME}{{1,10}}町)"
    rf"{_BLOCK}{_NOT_DIGIT_AFTER}"
)


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
    out = _ADDRESS.sub(lambda m: _counted(m, "address", counts), out)
    return Masked(out, dict(counts))


def _counted(match: regex.Match[str], kind: str, counts: Counter[str], check=None) -> str:
    if check is not None and not check(match.group()):
        return match.group()
    counts[kind] += 1
    return PLACEHOLDERS[kind]


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
