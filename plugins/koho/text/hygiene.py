"""What a text may hold to be posted as the city: rules on the text *as it will be posted*.

Every text staff or a feed hand in (calendar files, the ad-hoc and emergency forms, the JMA
feed) is normalised (NFC, line breaks as ``\\n``, outer whitespace stripped) and then checked
here, so no rule can be dodged by hiding a character in front of it:

* a spreadsheet formula (``=HYPERLINK(...)``) behind any leading whitespace or invisible mark;
* control characters (other than the line break): one of them once broke an export;
* a text with no visible character at all (only zero-width or blank characters);
* bidirectional controls (U+202E...), which can make ``0120-123-456`` read backwards;
* links that say one place and go to another: ``https://city.example.jp@evil.example/``, hosts
  mixing scripts, and hosts (Unicode or punycode) that look like the city's own domains.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import urlsplit

import idna

from koho.text.confusables import imitated, is_mixed_script, scripts

#: Explicit bidirectional formatting characters (UAX #9), marks included.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
#: Letters that render as blank space although their category says "letter".
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})
#: A link as people paste it: anything up to whitespace or a Japanese bracket (hosts may be non-ASCII).
LINK = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]{0,15}://[^\s<>\"「」『』（）()【】、。]+")


def normalise_text(text: str) -> str:
    """``text`` as it will be posted: NFC, line breaks as ``\\n``, no outer whitespace."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


def code_points(chars: Iterable[str]) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``-style names, for messages staff can search for."""
    return ", ".join(
        f"U+{ord(c):04X}" + (f" ({unicodedata.name(c)})" if unicodedata.name(c, "") else "") for c in chars
    )


def is_visible(char: str) -> bool:
    return unicodedata.category(char) not in _INVISIBLE_CATEGORIES and char not in BLANK_LETTERS


def text_problems(text: str, *, own_domains: Iterable[str] = (), formulas: bool = True) -> list[str]:
    """Why ``text`` must not be posted as it is (one sentence each); empty when it may.

    ``own_domains`` are the city's domains that links must not imitate. ``formulas`` is False
    where the reader already refused formula cells (calendar files), so they are not told twice.
    """
    text = normalise_text(text)
    out: list[str] = []
    controls = sorted({c for c in text if unicodedata.category(c) == "Cc" and c != "\n"})
    if controls:
        out.append(f"contains the control character(s) {code_points(controls)}; only line breaks are kept, remove them")
    bidi = sorted({c for c in text if c in BIDI_CONTROLS})
    if bidi:
        out.append(
            f"contains the bidirectional control(s) {code_points(bidi)}, which can make a number or a link "
            "read in another order than it is written; remove them"
        )
    if text and not any(is_visible(c) for c in text):
        out.append("has no visible character (only blank or zero-width characters)")
    if formulas:
        from koho.calendar.formula import formula_problem  # late: koho.calendar imports this module

        if reason := formula_problem(text):
            out.append(reason)
    for match in LINK.finditer(text):
        out += link_problems(match.group(0), own_domains=own_domains)
    return out


def link_problems(url: str, *, own_domains: Iterable[str] = ()) -> list[str]:
    """Why the link ``url`` may lead readers somewhere other than it seems to."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:
        return [f"link '{url}' is not a valid URL ({exc})"]
    out: list[str] = []
    if "@" in parts.netloc:
        shown = parts.netloc.rsplit("@", 1)[0]
        out.append(
            f"link '{url}' has a 'user@' part: it goes to '{host}', not to '{shown}'; remove everything "
            "between '//' and '@'"
        )
    readable = _unicode_host(host)
    if readable is None:
        return [*out, f"link '{url}' has a host name that cannot be decoded ('{host}')"]
    for label in readable.split("."):
        if is_mixed_script(label):
            used = " and ".join(sorted(s.title() for s in scripts(label)))
            out.append(f"link '{url}' has a host that mixes scripts ({used} in '{label}'), a common disguise")
            break
    if genuine := imitated(readable, own_domains):
        out.append(f"link '{url}' goes to '{readable}', which looks like the city's '{genuine}' but is not it")
    return out


def _unicode_host(host: str) -> str | None:
    """``host`` with punycode labels (``xn--...``) decoded; None when one cannot be decoded."""
    labels = []
    for label in host.split("."):
        if label.startswith("xn--"):
            try:
                label = idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError):
                try:
                    label = label[4:].encode("ascii").decode("punycode")
                except (UnicodeError, ValueError):
                    return None
        labels.append(label.lower())
    return ".".join(labels)
