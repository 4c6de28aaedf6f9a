"""The ``feedback:`` section of policy.yaml: routing weights, marks' word lists, storm parameters.

Residents' comments are routed, marked and watched by rules a city must be able to change
without a release (policy: routing rules are configuration), so every weight, word and
threshold lives here and is validated like the rest of the policy: an error names the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Word = Annotated[str, Field(min_length=1, max_length=50)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class RoutingParams(_Strict):
    """How keyword matches become departments."""

    #: Score of a department's keyword (or one of its synonyms) the first time it occurs.
    keyword_weight: float = Field(default=1.0, gt=0)
    #: Score of each further occurrence of the same keyword: repeating a word is not a new topic.
    repeat_weight: float = Field(default=0.25, ge=0)
    #: Added to the department the answered post is about (its account's or its own keywords').
    answered_post_weight: float = Field(default=0.75, ge=0)
    #: A department is shared the item when its score is at least this share of the top score.
    share_ratio: float = Field(default=0.6, gt=0, le=1)
    #: At most this many departments receive one item.
    max_departments: int = Field(default=3, ge=1, le=20)


class MarkWords(_Strict):
    """Words (NFKC, matched as substrings of the normalised comment) that mark an item."""

    question: list[Word] = Field(default_factory=list)
    request: list[Word] = Field(default_factory=list)
    complaint: list[Word] = Field(default_factory=list)
    thanks: list[Word] = Field(default_factory=list)
    abuse: list[Word] = Field(default_factory=list)
    spam: list[Word] = Field(default_factory=list)


class SpamRules(_Strict):
    """Shapes of spam beside its words: many links, one piece of text repeated."""

    max_urls: int = Field(default=2, ge=0, le=50)
    #: A run of at least this many characters repeated ``repeat_count`` times in a row is spam.
    repeat_min_chars: int = Field(default=3, ge=1, le=40)
    repeat_count: int = Field(default=4, ge=2, le=100)


class MarkRules(_Strict):
    words: MarkWords = MarkWords()
    spam: SpamRules = SpamRules()
    #: Marks that count as negative for storm detection.
    negative: list[Annotated[str, Field(pattern=r"^(complaint|abuse|spam)$")]] = Field(
        default_factory=lambda: ["complaint", "abuse"]
    )


class StormParams(_Strict):
    """Comment-storm (炎上) detection over 10-minute buckets, per account and per post."""

    bucket_minutes: int = Field(default=10, ge=1, le=60)
    #: The window whose rate is compared with the baseline (listening tools use the last hour).
    window_buckets: int = Field(default=6, ge=1, le=144)
    #: The trailing baseline (7 days of 10-minute buckets by default).
    baseline_buckets: int = Field(default=7 * 24 * 6, ge=6, le=60 * 24 * 6)
    #: One-sided Poisson tail: the window's count is a storm when P(X >= count) is below this.
    p_value: float = Field(default=0.001, gt=0, lt=1)
    #: ... and at least this many times the baseline's expected count for the window.
    min_ratio: float = Field(default=2.0, ge=1)
    #: ... and at least this many comments in the window (a new account's first ten are no storm).
    min_count: int = Field(default=20, ge=1)
    #: Expected comments per bucket assumed when the baseline is younger than ``min_baseline_buckets``.
    prior_rate: float = Field(default=0.5, gt=0)
    min_baseline_buckets: int = Field(default=6 * 24, ge=1)
    #: Share of negative/abusive items in the window needed to call it a storm (a busy friendly day is not).
    negative_share: float = Field(default=0.3, gt=0, le=1)
    #: Escalate each time the window's busiest bucket reaches this multiple of the one last announced.
    growth_factor: float = Field(default=2.0, gt=1)
    #: "Calmed down" after this many consecutive buckets without storm conditions.
    calm_buckets: int = Field(default=6, ge=1, le=1000)

    @model_validator(mode="after")
    def _baseline_longer(self) -> StormParams:
        if self.baseline_buckets <= self.window_buckets:
            raise ValueError("baseline_buckets must be longer than window_buckets")
        return self


class FeedbackPolicy(_Strict):
    routing: RoutingParams = RoutingParams()
    marks: MarkRules = MarkRules()
    storms: StormParams = StormParams()
