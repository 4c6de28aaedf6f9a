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
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class DepartmentScore:
    department: str
    name: str
    score: float
    #: The configured words that matched, as written in departments.yaml ("保育所（保育園）" for a synonym).
    terms: tuple[str, ...] = ()
    answered_post: bool = False


@dataclass(frozen=True)
class Routing:
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


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=dict)  # keyword -> occurrences
    labels: dict[str, str] = field(default_factory=dict)  # keyword -> first label seen


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
        self._lengths = sorted({len(phrase) for phrase in self._phrases}, reverse=True)

    def _add(self, dept: Department, keyword: str, written: str, label: str) -> None:
        phrase = tuple(normalized_forms(written))
        if not phrase:
            return  # only whitespace: the schema strips it, so nothing to match
        terms = self._phrases.setdefault(phrase, [])
        if any(t.department == dept.id for t in terms):
            return  # two spellings of one word in one department: counted once
        terms.append(_Term(dept.id, keyword, label))

    def matches(self, text: str) -> dict[str, _Tally]:
        """Per department, the keywords found in ``text`` and how often."""
        forms = normalized_forms(bounded(text))
        found: dict[str, _Tally] = {}
        i, n = 0, len(forms)
        while i < n:
            if forms[i] not in self._firsts:
                i += 1
                continue
            step = 1
            for length in self._lengths:
                terms = self._phrases.get(tuple(forms[i : i + length])) if i + length <= n else None
                if terms:
                    for term in terms:
                        tally = found.setdefault(term.department, _Tally())
                        tally.counts[term.keyword] = tally.counts.get(term.keyword, 0) + 1
                        tally.labels.setdefault(term.keyword, term.label)
                    step = length
                    break
            i += step
        return found

    def route(self, item: object, answered_post: AnsweredPost | None = None) -> Routing:
        """Route one item (a comment's text, or anything with a ``text`` attribute or key)."""
        found = self.matches(_text_of(item))
        p = self.params
        scores: dict[str, float] = {
            dept: sum(p.keyword_weight + p.repeat_weight * (count - 1) for count in tally.counts.values())
            for dept, tally in found.items()
        }
        leaning = self._answered_department(answered_post)
        if leaning:
            scores[leaning] = scores.get(leaning, 0.0) + p.answered_post_weight
        if not scores:
            pr = self.departments[self.pr_department]
            return Routing(
                (DepartmentScore(pr.id, pr.name, 0.0),),
                f"担当課のキーワードなし → {pr.name}",
                fallback=True,
            )
        top = max(scores.values())
        chosen = sorted((d for d, s in scores.items() if s >= top * p.share_ratio), key=lambda d: (-scores[d], d))[
            : p.max_departments
        ]
        results = []
        for dept_id in chosen:
            tally = found.get(dept_id, _Tally())
            results.append(
                DepartmentScore(
                    dept_id,
                    self.departments[dept_id].name,
                    round(scores[dept_id], 4),
                    tuple(tally.labels[k] for k in tally.counts),
                    answered_post=dept_id == leaning,
                )
            )
        return Routing(tuple(results), "／".join(_reason(r) for r in results))

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
        return max(found, key=lambda d: (sum(found[d].counts.values()), d))


def _reason(result: DepartmentScore) -> str:
    words = "".join(f"「{term}」" for term in result.terms)
    if result.answered_post:
        words = f"{words}＋返信先の投稿" if words else "返信先の投稿"
    return f"{words} → {result.name}"


def _text_of(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        return bounded(item.get("text"))
    return bounded(getattr(item, "text", ""))
