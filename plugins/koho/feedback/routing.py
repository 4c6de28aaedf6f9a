"""Which department a resident's comment concerns, with a reason a person can read.

Matching is on Sudachi's normalized forms of the NFKC text, never on raw substrings: "子ども"
finds the keyword "子供", and "歩道橋" is not "歩道". Keywords and synonyms from departments.yaml
go through the very same normalisation when the :class:`Router` is built (once per process),
so a keyword matches exactly the comments it reads like. A keyword of several morphemes
("不法投棄" is 不法 + 投棄) matches their sequence, longest first.

Scores: a keyword's first occurrence counts ``keyword_weight``, each repeat ``repeat_weight``;
the post the comment answers adds ``answered_post_weight`` to its department. Every department
within ``share_ratio`` of the top score is given the item (at most ``max_departments``), so an
item about a flooded road near a nursery reaches both. No match at all: the PR section.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from koho.config.feedback import RoutingParams
from koho.config.schema import Department
from koho.feedback.untrusted import bounded
from koho.text.japanese import normalized_forms


@dataclass(frozen=True)
class AnsweredPost:
    """The post a comment replies to: its owning department (the account's or the entry's), or its
    text, whose keywords then tell the department."""

    department: str | None = None
    text: str = ""


class DepartmentScore(NamedTuple):
    """One department an item goes to. (Named tuples: a million items are routed in minutes, and
    a frozen dataclass costs several times more to build.)"""

    department: str
    name: str
    score: float
    #: The configured words that matched, as written in departments.yaml ("保育所（保育園）" for a synonym).
    terms: tuple[str, ...] = ()
    answered_post: bool = False


class Routing(NamedTuple):
    """Where an item goes: one or more departments, best first, and why in Japanese."""

    departments: tuple[DepartmentScore, ...]
    reason: str
    fallback: bool = False

    @property
    def department_ids(self) -> list[str]:
        return [d.department for d in self.departments]

    @property
    def primary(self) -> str:
        return self.departments[0].department


@dataclass(frozen=True)
class _Term:
    department: str
    keyword: str
    label: str


#: Per department, per keyword found: [occurrences, the label of the first spelling seen].
_Found = dict[str, dict[str, list]]


class Router:
    """Built once from departments.yaml; :meth:`route` is then pure and thread-safe."""

    def __init__(self, departments: Iterable[Department], pr_department: str, params: RoutingParams | None = None):
        self.params = params or RoutingParams()
        self.departments: dict[str, Department] = {d.id: d for d in departments}
        if pr_department not in self.departments:
            raise ValueError(f"the PR department '{pr_department}' is not among the departments")
        self.pr_department = pr_department
        self._phrases: dict[tuple[str, ...], list[_Term]] = {}
        for dept in self.departments.values():
            for keyword in dept.keywords:
                self._add(dept, keyword, keyword, keyword)
                for synonym in dept.synonyms.get(keyword, []):
                    self._add(dept, keyword, synonym, f"{synonym}（{keyword}）")
        self._firsts = {phrase[0] for phrase in self._phrases}
        pr = self.departments[pr_department]
        self._fallback = Routing((DepartmentScore(pr.id, pr.name, 0.0),), f"担当課のキーワードなし → {pr.name}", True)
        self._lengths = sorted({len(phrase) for phrase in self._phrases}, reverse=True)

    def _add(self, dept: Department, keyword: str, written: str, label: str) -> None:
        phrase = tuple(normalized_forms(written))
        if not phrase:
            return  # only whitespace: the schema strips it, so nothing to match
        terms = self._phrases.setdefault(phrase, [])
        if any(t.department == dept.id for t in terms):
            return  # two spellings of one word in one department: counted once
        terms.append(_Term(dept.id, keyword, label))

    def matches(self, text: str) -> _Found:
        """Per department, the keywords found in ``text`` and how often."""
        forms = normalized_forms(bounded(text))
        firsts = self._firsts
        if firsts.isdisjoint(forms):
            return {}
        found: _Found = {}
        n = len(forms)
        free = 0  # the first position not yet inside a matched phrase
        for i in [i for i, form in enumerate(forms) if form in firsts]:
            if i < free:
                continue
            for length in self._lengths:
                terms = self._phrases.get(tuple(forms[i : i + length])) if i + length <= n else None
                if terms:
                    for term in terms:
                        keywords = found.setdefault(term.department, {})
                        seen = keywords.get(term.keyword)
                        if seen is None:
                            keywords[term.keyword] = [1, term.label]
                        else:
                            seen[0] += 1
                    free = i + length
                    break
        return found

    def route(self, item: object, answered_post: AnsweredPost | None = None) -> Routing:
        """Route one item (a comment's text, or anything with a ``text`` attribute or key)."""
        found = self.matches(_text_of(item))
        leaning = self._answered_department(answered_post) if answered_post is not None else None
        if not found and leaning is None:
            return self._fallback
        p = self.params
        first, repeat = p.keyword_weight, p.repeat_weight
        scores: dict[str, float] = {}
        for dept, keywords in found.items():
            total = 0.0
            for seen in keywords.values():
                total += first + repeat * (seen[0] - 1)
            scores[dept] = total
        if leaning:
            scores[leaning] = scores.get(leaning, 0.0) + p.answered_post_weight
        if len(scores) == 1:
            chosen = list(scores)
        else:
            floor = max(scores.values()) * p.share_ratio
            chosen = sorted((d for d, s in scores.items() if s >= floor), key=lambda d: (-scores[d], d))
            del chosen[p.max_departments :]
        results = []
        reasons = []
        for dept in chosen:
            keywords = found.get(dept)
            terms = tuple(seen[1] for seen in keywords.values()) if keywords else ()
            name = self.departments[dept].name
            results.append(DepartmentScore(dept, name, scores[dept], terms, dept == leaning))
            reasons.append(_reason(terms, dept == leaning, name))
        return Routing(tuple(results), "／".join(reasons))

    def _answered_department(self, post: AnsweredPost | None) -> str | None:
        if post is None:
            return None
        if post.department in self.departments:
            return post.department
        if not post.text:
            return None
        found = self.matches(post.text)
        if not found:
            return None
        return max(found, key=lambda d: (sum(seen[0] for seen in found[d].values()), d))


def _reason(terms: tuple[str, ...], answered_post: bool, name: str) -> str:
    words = "".join([f"「{term}」" for term in terms])
    if answered_post:
        words = f"{words}＋返信先の投稿" if words else "返信先の投稿"
    return f"{words} → {name}"


def _text_of(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        return bounded(item.get("text"))
    return bounded(getattr(item, "text", ""))
