"""Each platform's length rule: its limit and, above all, *how it counts*.

"500 characters" means something different on every platform, and a post that fits by one
count is rejected by another. Each rule therefore carries the platform's own counter:

* X: twitter-text's weighted length (CJK and emoji count 2, every URL 23), via
  ``twitter-text-parser`` (``parse_tweet(text).weightedLength``), the library X publishes.
* Bluesky: grapheme clusters (``app.bsky.feed.post`` has ``maxGraphemes: 300``).
* Mastodon: grapheme clusters after replacing every URL by 23 characters
  (``characters_reserved_per_url``) and every ``@user@domain`` by ``@user``.
* Threads: characters, but an emoji counts its UTF-8 bytes (Threads API "Posts" limitations).
* LINE: UTF-16 code units (Messaging API "Character counting in a text").
* Instagram, Facebook: Meta does not document the unit; UTF-16 code units are the safe side
  (an emoji counts 2), which is what Meta's web composer measures.

The numbers are defaults only: they belong to configuration (``policy.yaml``), so
:func:`rules_for` takes overrides, and Mastodon's limit should come from the instance
(``/api/v2/instance``) at run time.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache

import regex
from twitter_text import parse_tweet

from koho.errors import KohoError

#: What counts as one URL when protecting and counting: scheme + ASCII URL characters
#: (Japanese text often follows a URL without a space: "https://city.example.jp/gomiをご覧ください").
URL_PATTERN = r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+(?<![.,:;!?'\)\]])"
MASTODON_MENTION = regex.compile(r"(?<![=/\w])@([a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?)(?:@[\w.-]+\w)?", regex.IGNORECASE)
_URL = regex.compile(URL_PATTERN)
_GRAPHEME = regex.compile(r"\X")
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\p{Emoji_Modifier}\u20e3\ufe0f]")

CHARACTERS_RESERVED_PER_URL = 23  # Mastodon and X


class UnknownPlatform(KohoError, KeyError):
    """No text rule is known for this platform name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def count_codepoints(text: str) -> int:
    return len(text)


def count_utf16(text: str) -> int:
    """UTF-16 code units: astral characters (most emoji, some kanji) count 2."""
    return len(text.encode("utf-16-le")) // 2


def count_graphemes(text: str) -> int:
    """User-perceived characters: a family emoji or a flag counts 1."""
    return len(_GRAPHEME.findall(text))


def count_x(text: str) -> int:
    """X's weighted length, computed by twitter-text itself."""
    return parse_tweet(text).weightedLength if text else 0


def count_mastodon(text: str, *, url_length: int = CHARACTERS_RESERVED_PER_URL) -> int:
    """Mastodon's StatusLengthValidator: URLs count ``url_length``, mentions their local part, then graphemes."""
    countable = _URL.sub("x" * url_length, text)
    countable = MASTODON_MENTION.sub(lambda m: "@" + m.group(1), countable)
    return count_graphemes(countable)


def count_threads(text: str) -> int:
    """Threads: one per character, except that an emoji counts its UTF-8 bytes."""
    total = 0
    for cluster in _GRAPHEME.findall(text):
        total += len(cluster.encode("utf-8")) if _EMOJI.search(cluster) else len(cluster)
    return total


@dataclass(frozen=True)
class TextRule:
    """How long a post may be on one platform, and how that platform counts.

    ``max_length`` ``None`` means unlimited (the city website). ``supports_thread`` says
    whether a long text may be published as numbered replies to itself. ``publish`` is False
    for platforms Koho only reads (YouTube).
    """

    name: str
    max_length: int | None
    counter: Callable[[str], int] = count_codepoints
    url_length: int | None = None  # what one URL counts, when the platform fixes it (X, Mastodon)
    supports_thread: bool = False
    image_required: bool = False
    max_hashtags: int | None = None
    max_mentions: int | None = None
    max_links: int | None = None
    publish: bool = True
    unit: str = "characters"

    def count(self, text: str) -> int:
        return self.counter(text)

    def with_limit(self, max_length: int | None) -> TextRule:
        if max_length is not None and max_length < 1:
            raise ValueError(f"{self.name}: a length limit must be at least 1, got {max_length}")
        return replace(self, max_length=max_length)


DEFAULT_NEWSLETTER_LENGTH = 400  # one item in the printed newsletter's "SNS digest" column

DEFAULT_RULES: dict[str, TextRule] = {
    rule.name: rule
    for rule in (
        TextRule("x", 280, count_x, url_length=23, supports_thread=True, unit="weighted characters"),
        TextRule("bluesky", 300, count_graphemes, supports_thread=True, unit="graphemes"),
        TextRule(
            "mastodon",
            500,
            count_mastodon,
            url_length=CHARACTERS_RESERVED_PER_URL,
            supports_thread=True,
            unit="characters (URLs 23)",
        ),
        TextRule(
            "threads", 500, count_threads, supports_thread=True, max_links=5, unit="characters (emoji by UTF-8 bytes)"
        ),
        TextRule(
            "instagram", 2200, count_utf16, image_required=True, max_hashtags=30, max_mentions=20, unit="UTF-16 units"
        ),
        TextRule("line", 5000, count_utf16, unit="UTF-16 units"),
        TextRule("facebook", 63206, count_utf16, unit="UTF-16 units"),
        TextRule("youtube", 5000, count_codepoints, publish=False),
        TextRule("website", None, count_codepoints),
        TextRule("newsletter", DEFAULT_NEWSLETTER_LENGTH, count_codepoints),
    )
}


@cache
def _default(platform: str) -> TextRule:
    key = unicodedata.normalize("NFKC", platform).strip().lower()
    try:
        return DEFAULT_RULES[key]
    except KeyError:
        raise UnknownPlatform(f"no text rule for platform '{platform}'; known: {', '.join(DEFAULT_RULES)}") from None


def rules_for(platform: str, overrides: Mapping[str, int | None] | None = None) -> TextRule:
    """The rule for ``platform``; ``overrides`` maps platform name -> max_length (from configuration).

    ``None`` as an override removes the limit.
    """
    rule = _default(platform)
    if overrides and rule.name in overrides:
        value = overrides[rule.name]
        return rule.with_limit(None if value is None else int(value))
    return rule


def count(platform: str, text: str) -> int:
    """``text``'s length as ``platform`` counts it."""
    return rules_for(platform).count(text)
