"""Properties of the fitter over random mixes of Japanese, ASCII, emoji, URLs, hashtags and mentions.

Checked with counters independent of Koho's own where one exists (twitter-text for X, the
``grapheme`` package for Bluesky and for cut positions):

* every part is within the platform's limit by the platform's count;
* no cut falls inside a grapheme cluster, a URL, a hashtag or a mention;
* emergency mode returns the original text: parts carry exact substrings, in order, and
  (unless shortened) nothing but whitespace is lost between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import grapheme
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twitter_text import parse_tweet

from koho.text import TextDoesNotFit, fit, rules_for
from koho.text.rules import count_mastodon, count_threads, count_utf16

JAPANESE = [
    "燃えるごみは月曜日と木曜日に出してください。",
    "年末年始は収集日が変わります！",
    "子育て支援センターでは毎週火曜日に相談会を開いています",
    "「避難所はどこですか？」という問い合わせが増えています。",
    "防災訓練に参加しませんか？",
    "観光案内所で、湖北市の地図を無料で配っています。",
    "ご協力をお願いします",
    "、",
    "。",
    "本日",
    "市民会館（中央町1-2-3）",
]
ASCII = ["Koho City", "hello world.", "ver.2", "A-1 (B)", "10:00-12:00", "info", "OK!"]
EMOJI = ["👨‍👩‍👧‍👦", "🇯🇵", "👍🏽", "🍎", "1️⃣", "❤️", "🏳️‍🌈", "👩🏻‍🚒", "🗾", "é"]
URLS = [
    "https://www.city.koho.example.jp/kurashi/gomi/calendar2026.html",
    "https://example.com/faq?id=1&x=2",
    "http://koho.example.jp",
    "https://koho.example.jp/" + "kankou/" * 12 + "map.pdf",
]
HASHTAGS = ["#防災", "#子育て", "#湖北市", "#Koho_City", "#ごみ分別2026"]
MENTIONS = ["@koho_city", "@koho@social.example.jp", "@city.koho.bsky.social"]
SEPARATORS = ["", "", " ", "\n", "　"]

ATOM_POOLS = (URLS, HASHTAGS, MENTIONS)
PLAIN_POOLS = (JAPANESE, JAPANESE, JAPANESE, ASCII, EMOJI)


@dataclass
class Sample:
    text: str
    atoms: list[tuple[int, int]]  # spans of the URLs, hashtags and mentions put in


@st.composite
def samples(draw, min_size: int = 1, max_size: int = 60) -> Sample:
    """Random notices; atoms are set off by spaces, as people write them, so their extent is known."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from([p for pool in PLAIN_POOLS for p in pool]).map(lambda s: ("plain", s)),
                st.sampled_from([a for pool in ATOM_POOLS for a in pool]).map(lambda s: ("atom", s)),
            ),
            min_size=min_size,
            max_size=max_size,
        )
    )
    text, atoms = "", []
    for kind, piece in pieces:
        if kind == "atom":
            text += " "
            atoms.append((len(text), len(text) + len(piece)))
            text += piece + " "
        else:
            text += draw(st.sampled_from(SEPARATORS)) + piece
    return Sample(text, atoms)


#: Each platform's count from outside Koho where possible.
INDEPENDENT_COUNT = {
    "x": lambda t: parse_tweet(t).weightedLength,
    "bluesky": grapheme.length,
    "mastodon": count_mastodon,
    "threads": count_threads,
    "instagram": count_utf16,
}
MORE = "https://www.city.koho.example.jp/news/2026/0001.html"
LINK = "https://www.city.koho.example.jp/info"


def _grapheme_boundaries(text: str) -> set[int]:
    bounds, position = {0}, 0
    for cluster in grapheme.graphemes(text):
        position += len(cluster)
        bounds.add(position)
    return bounds


def _check_cuts(sample: Sample, spans: list[tuple[int, int]], *, shortened: bool) -> None:
    bounds = _grapheme_boundaries(sample.text)
    for a, b in spans:
        assert a in bounds and b in bounds, (a, b)
    kept_until = spans[-1][1]
    for s, e in sample.atoms:
        whole = any(a <= s and e <= b for a, b in spans)
        dropped = shortened and s >= kept_until
        assert whole or dropped, f"atom {sample.text[s:e]!r} was cut"


def _check_limits(platform: str, parts: list[str], lengths: list[int], limit: int) -> None:
    counter = INDEPENDENT_COUNT[platform]
    for part, length in zip(parts, lengths, strict=True):
        assert counter(part) == length
        assert length <= limit, (platform, length, part)


SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


#: Real limits, plus shorter configured ones so that threads of many parts are common.
LIMITS = {"x": [280], "bluesky": [300, 120], "mastodon": [500, 150], "threads": [500, 150]}


@SETTINGS
@given(
    sample=samples(min_size=20, max_size=100),
    data=st.data(),
    tags=st.lists(st.sampled_from(["防災", "湖北市", "kankou"]), max_size=3),
    with_link=st.booleans(),
)
def test_adapted_threads_fit_and_never_cut_atoms(sample, data, tags, with_link):
    platform = data.draw(st.sampled_from(sorted(LIMITS)))
    limit = data.draw(st.sampled_from(LIMITS[platform]))
    rule = rules_for(platform, {platform: limit})
    try:
        fitted = fit(platform, sample.text, link=LINK if with_link else None, hashtags=tags, rule=rule)
    except TextDoesNotFit as exc:
        # Only when one uncuttable piece is longer than a part (a long URL on a short limit).
        assert "smallest piece" in str(exc)
        event("does not fit")
        return
    event(f"{platform}: {fitted.strategy}")
    _check_limits(platform, fitted.parts, fitted.lengths, limit)
    _check_cuts(sample, fitted.spans, shortened=False)
    if fitted.strategy == "thread":
        n = len(fitted.parts)
        for i, (part, (a, b)) in enumerate(zip(fitted.parts, fitted.spans, strict=True), 1):
            assert part.startswith(f"{sample.text[a:b]} ({i}/{n})".lstrip())


@SETTINGS
@given(sample=samples(min_size=10), platform=st.sampled_from(["x", "bluesky", "instagram"]), allow_thread=st.booleans())
def test_shortened_posts_fit_and_end_with_the_link_to_the_full_text(sample, platform, allow_thread):
    text = sample.text * (8 if platform == "instagram" else 1)
    sample = Sample(
        text,
        [
            (s + k * len(sample.text), e + k * len(sample.text))
            for k in range(8 if platform == "instagram" else 1)
            for s, e in sample.atoms
        ],
    )
    fitted = fit(platform, text, more_url=MORE, allow_thread=allow_thread)
    event(f"{platform}: {fitted.strategy}")
    _check_limits(platform, fitted.parts, fitted.lengths, rules_for(platform).max_length)
    if fitted.strategy == "shortened":
        (a, b), part = fitted.spans[0], fitted.parts[0]
        assert part == f"{text[a:b]}…\n{MORE}"
        _check_cuts(sample, fitted.spans, shortened=True)


@SETTINGS
@given(
    sample=samples(min_size=15, max_size=100),
    platform=st.sampled_from(["x", "bluesky", "mastodon", "threads", "instagram"]),
)
def test_emergency_mode_preserves_the_text(sample, platform):
    text = sample.text
    fitted = fit(platform, text, mode="emergency", hashtags=["緊急タグ"], more_url=MORE)
    event(f"{platform}: {fitted.strategy}")
    assert all("#緊急タグ" not in part for part in fitted.parts)
    _check_limits(platform, fitted.parts, fitted.lengths, rules_for(platform).max_length)
    previous = 0
    for part, (a, b) in zip(fitted.parts, fitted.spans, strict=True):
        assert part.startswith(text[a:b])  # the words, exactly as written
        assert text[previous:a].strip() == ""  # only whitespace between parts
        previous = b
    if fitted.strategy == "shortened":
        assert fitted.parts[0].endswith(f"…\n{MORE}")
        _check_cuts(sample, fitted.spans, shortened=True)
    else:
        assert text[previous:].strip() == ""  # nothing lost at the end either
        rebuilt = "".join(text[a:b] for a, b in fitted.spans)
        assert "".join(rebuilt.split()) == "".join(text.split())
        _check_cuts(sample, fitted.spans, shortened=False)
