"""Look-alike text (Unicode TR #39 confusables): the skeleton two strings share when they look the same.

``confusable-homoglyphs`` ships Unicode's confusables data; it offers checks, not the TR #39
skeleton, so :func:`skeleton` builds one from that data: every character is replaced by the
prototype of its look-alike group, so ``skeleton("сity.example.jp")`` (Cyrillic ``с``) equals
``skeleton("city.example.jp")``. Used for links that imitate the city's own domains, and by
anything else that must tell "looks the same" from "is the same" (impersonation checks).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from functools import cache

from confusable_homoglyphs import categories
from confusable_homoglyphs.confusables import confusables_data

#: Scripts that mix with any other without suspicion (digits, punctuation, combining marks).
NEUTRAL_SCRIPTS = frozenset({"COMMON", "INHERITED", "Unknown"})
#: Mixtures TR #39 calls "highly restrictive": normal writing, not a disguise (日本語 with Latin).
ALLOWED_MIXTURES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


@cache
def _prototype(char: str) -> str:
    """The prototype of ``char``'s look-alike group.

    The data lists, for a prototype, all its look-alikes and, for each look-alike, its prototype;
    the prototype is therefore the member with the most look-alikes (ties: the lowest code point,
    which puts ASCII first).
    """
    group = {char, *(h["c"] for h in confusables_data.get(char, ()) if len(h["c"]) == 1)}
    if len(group) == 1:
        return char
    return min(group, key=lambda c: (-len(confusables_data.get(c, ())), ord(c)))


@cache
def _settled(char: str) -> str:
    """Follow prototypes until they stop (the data chains some: Lisu ``ꓵ`` -> Armenian ``ո`` -> ``n``)."""
    seen = {char}
    while (following := _prototype(char)) not in seen:
        seen.add(following)
        char = following
    return char


def skeleton(text: str) -> str:
    """TR #39 skeleton: NFD, each character mapped to its prototype, NFD again; lower-cased
    (case does not matter in the host names this is used for). Repeated until it no longer
    changes, so that the skeleton of a skeleton is itself."""
    shape = text
    for _ in range(8):
        decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", shape).casefold())
        settled = unicodedata.normalize("NFD", "".join(_settled(c) for c in decomposed)).casefold()
        if settled == shape:
            break
        shape = settled
    return shape


def scripts(text: str) -> set[str]:
    """The scripts ``text`` uses, leaving out the neutral ones (digits, '-', '.', marks)."""
    return {categories.alias(c) for c in text} - NEUTRAL_SCRIPTS


def is_mixed_script(text: str) -> bool:
    """True when ``text`` mixes scripts the way disguises do (``pаypal`` with a Cyrillic ``а``);
    Japanese writing (kanji, kana and Latin together) is not mixed in that sense."""
    used = scripts(text)
    return len(used) > 1 and not any(used <= allowed for allowed in ALLOWED_MIXTURES)


def imitated(host: str, genuine: Iterable[str]) -> str | None:
    """The genuine domain that ``host`` looks like without being it (or a subdomain of it), if any."""
    host = host.lower().rstrip(".")
    shape = skeleton(host)
    for domain in genuine:
        domain = domain.lower().rstrip(".")
        if not domain or host == domain or host.endswith("." + domain):
            continue
        target = skeleton(domain)
        if shape == target or shape.endswith("." + target):
            return domain
    return None
