"""Fit one post's text to one platform's length rule, exactly, by the platform's own count.

Three outcomes, tried in this order (``mode="adapt"``):

``as_is``      text + link + hashtags fit: one part.
``thread``     the platform takes replies, threads are allowed and no ``more_url`` was given:
               numbered parts ("(1/3)", counted in the length) cut at sentence boundaries;
               hashtags on the first part, the link on the last.
``shortened``  one part: the longest prefix that fits, cut at a sentence boundary, then "…"
               and ``more_url`` (the full article), the link and the hashtags.

Nothing fits -> :class:`TextDoesNotFit`, naming the platform, the counted length and the limit.
Text is never dropped silently: without ``more_url`` a text that needs shortening is an error.

Cuts fall, by preference, at sentence ends (Japanese-aware, :mod:`koho.text.japanese`), then
between morphemes, then between grapheme clusters, and never inside a grapheme cluster, a URL,
an e-mail address, a domain, a #hashtag or an @mention. Every candidate is measured with the
platform's counter (:mod:`koho.text.rules`) on the exact string that would be sent, so the
limit holds by construction, not by arithmetic that might disagree with the platform.

``mode="emergency"``: the text is not reworded and nothing is added but the link (no
hashtags). It is split into a thread where the platform takes replies, otherwise shortened
with ``more_url``, which is then required. Each part's text is an exact substring of the
original, in order (see :attr:`FittedText.spans`): concatenating the parts without numbering
and whitespace gives back the original (the whole of it, unless shortened).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import regex

from koho.errors import KohoError
from koho.text import japanese
from koho.text.rules import URL_PATTERN, TextRule, rules_for

ELLIPSIS = "…"
MODES = ("adapt", "emergency")
STRATEGIES = ("as_is", "shortened", "thread")

_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
URL = regex.compile(URL_PATTERN)
HASHTAG = regex.compile(r"(?<![\p{L}\p{M}\p{N}_&/#＃])[#＃][\p{L}\p{N}_][\p{L}\p{M}\p{N}_]*")
MENTION = regex.compile(
    r"(?<![\p{L}\p{N}_@.])@[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)?"
)
EMAIL = regex.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
#: Domains without a scheme ("city.koho.jp/gomi"): X counts them as links, so they are atoms too.
DOMAIN = regex.compile(
    rf"(?<![A-Za-z0-9@./:_-])(?:[A-Za-z0-9-]+\.)+[A-Za-z]{{2,}}(?:/{_URL_CHARS}*)?(?<![.,:;!?'\)\]])"
)
_GRAPHEME = regex.compile(r"\X")
#: Caps a platform sets on the UTF-8 encoding besides its length rule: app.bsky.feed.post's text
#: has ``maxLength`` 3000 (bytes) as well as ``maxGraphemes`` 300, and emoji-heavy text (a family
#: emoji is one grapheme of 25 bytes) reaches the bytes first. Every candidate must fit both.
UTF8_BYTE_LIMITS: dict[str, int] = {"bluesky": 3000}


class TextError(KohoError):
    """The fitter was given something it cannot work with (an invalid hashtag, an unknown mode)."""


class TextDoesNotFit(TextError):
    """No strategy makes the text fit the platform's rule."""

    def __init__(self, message: str, *, platform: str, length: int | None = None, limit: int | None = None):
        self.platform, self.length, self.limit = platform, length, limit
        counted = f" (counted {length}, limit {limit})" if length is not None and limit is not None else ""
        super().__init__(f"{platform}: {message}{counted}")


@dataclass(frozen=True)
class FittedText:
    """The parts to publish, in order (one unless ``strategy == "thread"``).

    ``lengths`` are the parts' lengths by the platform's own counter; ``limit`` its maximum
    (``None`` = unlimited). ``spans`` are ``(start, end)`` offsets into the original text of
    the body each part carries, for audits and for proving emergency texts unchanged.
    """

    parts: list[str]
    strategy: str
    lengths: list[int]
    limit: int | None
    platform: str = ""
    spans: list[tuple[int, int]] = field(default_factory=list)


# ----------------------------------------------------------------------------- atoms and cuts


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Spans that must never be cut: URLs, e-mail addresses, domains, hashtags, mentions (merged)."""
    spans = sorted(m.span() for pattern in (URL, EMAIL, DOMAIN, HASHTAG, MENTION) for m in pattern.finditer(text))
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def grapheme_ends(text: str) -> list[int]:
    return [m.end() for m in _GRAPHEME.finditer(text)]


class _Cuts:
    """Where ``text[start:end]`` may be cut, best kind first: sentence ends, morpheme ends, graphemes."""

    def __init__(self, text: str, start: int, end: int) -> None:
        protected = protected_spans(text)
        starts = [s for s, _ in protected]
        ends_of = [e for _, e in protected]

        def allowed(position: int) -> bool:
            i = bisect_right(starts, position - 1) - 1  # last protected span starting before position
            return not (i >= 0 and starts[i] < position < ends_of[i])

        graphemes = [p for p in grapheme_ends(text) if start < p < end and allowed(p)]
        ok = set(graphemes)
        sentence_ends = sorted({e for _, e in japanese.sentence_spans(text) if e in ok})
        token_ends = sorted({e for _, e in japanese.token_spans(text) if e in ok})
        # ``end`` closes every level: "the rest fits" is then found by the same search, which
        # never measures the whole (possibly very long) rest unless the parts before it fit.
        self.levels: list[list[int]] = [[*level, end] for level in (sentence_ends, token_ends, graphemes)]


def _largest(candidates: Sequence[int], above: int, fits: Callable[[int], bool]) -> int | None:
    """The largest candidate > ``above`` for which ``fits`` holds (lengths grow with the cut).

    Galloping from the nearest candidate, then bisecting, so that probes stay near the size of
    one part even in a very long text (counting a 60,000-character prefix is slow and useless).
    """
    first = bisect_right(candidates, above)
    if first >= len(candidates) or not fits(candidates[first]):
        return None
    good, step, hi = first, 1, len(candidates) - 1
    while good + step <= hi:
        if not fits(candidates[good + step]):
            hi = good + step - 1
            break
        good, step = good + step, step * 2
    lo = good + 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(candidates[mid]):
            good, lo = mid, mid + 1
        else:
            hi = mid - 1
    return candidates[good]


def _best_cut(cuts: _Cuts, above: int, fits: Callable[[int], bool]) -> int | None:
    for level in cuts.levels:
        found = _largest(level, above, fits)
        if found is not None:
            return found
    return None


def _skip_space(text: str, position: int, end: int) -> int:
    while position < end and text[position].isspace():
        position += 1
    return position


def _rstrip_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


# ----------------------------------------------------------------------------- assembling


def _normalize_tags(hashtags: Iterable[str], text: str) -> list[str]:
    """``#tag`` forms, validated, without repeats and without those the text already carries."""
    present = {japanese.normalize(m.group()[1:]).casefold() for m in HASHTAG.finditer(text)}
    out: list[str] = []
    for raw in hashtags:
        tag = raw.strip()
        tag = tag if tag[:1] in ("#", "＃") else f"#{tag}"
        if not HASHTAG.fullmatch(tag):
            raise TextError(f"'{raw}' is not a valid hashtag (letters, digits and _ only, no spaces)")
        key = japanese.normalize(tag[1:]).casefold()
        if key not in present:
            present.add(key)
            out.append(tag)
    return out


def _as_is(body: str, link: str | None, tags: list[str]) -> str:
    lines = [body] if body else []
    if link and link not in body:
        lines.append(link)
    if tags:
        lines.append(" ".join(tags))
    return "\n".join(lines)


def _thread_part(
    body: str, number: int, total: str, *, first: bool, last: bool, link: str | None, tags: list[str]
) -> str:
    lines = [f"{body} ({number}/{total})" if body else f"({number}/{total})"]
    if last and link and link not in body:
        lines.append(link)
    if first and tags:
        lines.append(" ".join(tags))
    return "\n".join(lines)


def _shortened(piece: str, more_url: str, link: str | None, tags: list[str]) -> str:
    lines = [piece + ELLIPSIS, more_url]
    if link and link != more_url and link not in piece:
        lines.append(link)
    if tags:
        lines.append(" ".join(tags))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- strategies


@dataclass
class _Job:
    rule: TextRule
    text: str
    start: int
    end: int
    link: str | None
    tags: list[str]
    more_url: str | None
    max_parts: int | None

    @property
    def limit(self) -> int:
        assert self.rule.max_length is not None
        return self.rule.max_length

    def fits(self, candidate: str) -> bool:
        return (
            self.rule.count(candidate) <= self.limit
            and _bytes_over(self.rule, candidate) is None
            and _entity_problem(self.rule, candidate) is None
        )

    def too_long(self, message: str, candidate: str) -> TextDoesNotFit:
        length = self.rule.count(candidate)
        over = _bytes_over(self.rule, candidate)
        if length <= self.limit and over is not None:
            size, most = over
            return TextDoesNotFit(f"{message}: {size:,} UTF-8 bytes, at most {most:,}", platform=self.rule.name)
        return TextDoesNotFit(message, platform=self.rule.name, length=length, limit=self.limit)


def _bytes_over(rule: TextRule, text: str) -> tuple[int, int] | None:
    """``(size, cap)`` when ``text``'s UTF-8 encoding is over the platform's byte cap, else ``None``."""
    most = UTF8_BYTE_LIMITS.get(rule.name)
    if most is None:
        return None
    size = len(text.encode("utf-8"))
    return (size, most) if size > most else None


def _thread(job: _Job, cuts: _Cuts) -> tuple[list[str], list[tuple[int, int]]]:
    digits = 1
    while True:
        spans = _thread_spans(job, cuts, digits)
        # Every part was measured with a total of ``digits`` nines in "(n/m)": the real total
        # must not be wider, or each part would grow by a character after it was measured.
        if spans is not None and len(spans) < 10**digits:
            break
        digits += 1
    total = str(len(spans))
    if job.max_parts is not None and len(spans) > job.max_parts:
        raise TextDoesNotFit(
            f"a thread would need {len(spans)} parts, at most {job.max_parts} allowed", platform=job.rule.name
        )
    parts = [
        _thread_part(job.text[a:b], n, total, first=n == 1, last=n == len(spans), link=job.link, tags=job.tags)
        for n, (a, b) in enumerate(spans, 1)
    ]
    return parts, spans


def _thread_spans(job: _Job, cuts: _Cuts, digits: int) -> list[tuple[int, int]] | None:
    """Greedy split assuming the part count has ``digits`` digits; ``None`` when it needs more."""
    placeholder = "9" * digits
    spans: list[tuple[int, int]] = []
    a, number = job.start, 1
    while a < job.end:
        if number >= 10**digits:
            return None
        first = number == 1

        def part(b: int, *, last: bool, a: int = a, n: int = number, first: bool = first) -> str:
            return _thread_part(
                job.text[a : _rstrip_end(job.text, a, b)],
                n,
                placeholder,
                first=first,
                last=last,
                link=job.link,
                tags=job.tags,
            )

        cut = _best_cut(cuts, a, lambda b, part=part: job.fits(part(b, last=b == job.end)))
        if cut == job.end:
            spans.append((a, job.end))
            return spans
        if cut is None:
            link_alone = _thread_part("", number + 1, placeholder, first=False, last=True, link=job.link, tags=[])
            if job.link and job.fits(part(job.end, last=False)) and job.fits(link_alone):
                # Everything left fits but not with the link: the link gets a part of its own.
                if number + 1 >= 10**digits:
                    return None  # that extra part makes the count one digit wider than measured
                spans.append((a, job.end))
                spans.append((job.end, job.end))
                return spans
            smallest = next(
                (lvl[bisect_right(lvl, a)] for lvl in reversed(cuts.levels) if bisect_right(lvl, a) < len(lvl)), job.end
            )
            raise job.too_long(
                "even the smallest piece that may not be cut is too long for one part", part(smallest, last=False)
            )
        spans.append((a, _rstrip_end(job.text, a, cut)))
        a = _skip_space(job.text, cut, job.end)
        number += 1
    return spans


def _shorten(job: _Job, cuts: _Cuts) -> tuple[list[str], list[tuple[int, int]]]:
    assert job.more_url is not None

    def candidate(b: int) -> str:
        return _shortened(
            job.text[job.start : _rstrip_end(job.text, job.start, b)], job.more_url or "", job.link, job.tags
        )

    cut = _best_cut(cuts, job.start, lambda b: job.fits(candidate(b)))
    if cut is None:
        raise job.too_long(
            "even the shortest prefix with '…' and the link to the full text is too long",
            _shortened("", job.more_url, job.link, job.tags),
        )
    end = _rstrip_end(job.text, job.start, cut)
    return [candidate(cut)], [(job.start, end)]


def _entity_problem(rule: TextRule, text: str) -> str | None:
    """Why ``text`` breaks the rule's hashtag/mention/link caps, or ``None``."""
    for what, pattern, most in (
        ("hashtags", HASHTAG, rule.max_hashtags),
        ("mentions", MENTION, rule.max_mentions),
        ("links", URL, rule.max_links),
    ):
        if most is None:
            continue
        matches = [m.group() for m in pattern.finditer(text)]
        found = len(set(matches)) if what == "links" else len(matches)
        if found > most:
            return f"{found} {what} in one post, at most {most} allowed"
    return None


def _result(rule: TextRule, parts: list[str], strategy: str, spans: list[tuple[int, int]]) -> FittedText:
    for part in parts:
        problem = _entity_problem(rule, part)
        if problem:
            raise TextDoesNotFit(problem, platform=rule.name)
        over = _bytes_over(rule, part)
        if over is not None and rule.max_length is not None:  # a bug guard, as for the length below
            raise TextDoesNotFit(
                f"a fitted part came out {over[0]:,} UTF-8 bytes, at most {over[1]:,}", platform=rule.name
            )
    lengths = [rule.count(p) for p in parts]
    if rule.max_length is not None:
        for length in lengths:
            if length > rule.max_length:  # a bug guard: every candidate was measured before
                raise TextDoesNotFit(
                    "a fitted part came out too long", platform=rule.name, length=length, limit=rule.max_length
                )
    return FittedText(parts, strategy, lengths, rule.max_length, platform=rule.name, spans=spans)


def fit(
    platform: str,
    text: str,
    *,
    link: str | None = None,
    hashtags: Iterable[str] = (),
    more_url: str | None = None,
    mode: str = "adapt",
    allow_thread: bool = True,
    rule: TextRule | None = None,
    max_parts: int | None = None,
) -> FittedText:
    """Adapt ``text`` (plus ``link`` and ``hashtags``) to ``platform``'s rule; see the module docstring."""
    if mode not in MODES:
        raise TextError(f"unknown fitting mode '{mode}'; expected one of {', '.join(MODES)}")
    rule = rule or rules_for(platform)
    emergency = mode == "emergency"
    start = _skip_space(text, 0, len(text))
    end = _rstrip_end(text, start, len(text))
    body = text[start:end]
    tags = [] if emergency else _normalize_tags(hashtags, body)
    link = link.strip() if link else None
    whole = _as_is(body, link, tags)
    if rule.max_length is None:
        return _result(rule, [whole], "as_is", [(start, end)])
    job = _Job(rule, text, start, end, link, tags, more_url.strip() if more_url else None, max_parts)
    if job.fits(whole):
        return _result(rule, [whole], "as_is", [(start, end)])

    can_thread = allow_thread and rule.supports_thread and (emergency or job.more_url is None)
    if not can_thread and job.more_url is None:
        hint = (
            "an emergency text is never reworded: give more_url to shorten it with a link to the full text"
            if emergency
            else "give more_url (the full article) so it can be shortened, or allow a thread"
        )
        problem = _entity_problem(rule, whole) if rule.count(whole) <= rule.max_length else None
        if problem:
            raise TextDoesNotFit(f"{problem}; {hint}", platform=rule.name)
        raise job.too_long(f"text too long and {hint}", whole)

    cuts = _Cuts(text, start, end)
    if can_thread:
        try:
            parts, spans = _thread(job, cuts)
            return _result(rule, parts, "thread", spans)
        except TextDoesNotFit:
            if job.more_url is None:
                raise
    parts, spans = _shorten(job, cuts)
    return _result(rule, parts, "shortened", spans)
