"""The schema of Koho's configuration: accounts, departments and policy.

Everything an operator may want to change without a release lives here as data: the account
registry, caps, quiet hours, routing keywords, the texts the public pages show, review rules
and platform limits. Unknown fields are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    ValidationInfo,
    field_validator,
    model_validator,
)

from koho.config.feedback import FeedbackPolicy
from koho.platforms.registry import PLATFORMS

SLUG = r"^[a-z0-9][a-z0-9_-]{1,62}$"
Slug = Annotated[str, Field(pattern=SLUG)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class QuietHours(Strict):
    """A daily window (local time) in which nothing but emergencies is posted; may wrap midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, value: str) -> QuietHours:
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
        if not match:
            raise ValueError("quiet hours must look like '22:00-07:00'")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
            raise ValueError("quiet hours use 24-hour times from 00:00 to 24:00")
        return cls(start=time(h1, m1), end=time(0, 0) if h2 == 24 else time(h2, m2))

    def contains(self, moment: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


class WriteBudgetConfig(Strict):
    """At most ``posts`` publish attempts per sliding ``per_seconds`` window, counted by Koho itself.

    Set below the platform's own limit so Koho never draws a 429 in normal operation, including on
    platforms that announce no limits in their responses (LINE) and before the first response of a
    task has told the hook the real numbers. A retry counts as an attempt: it reaches the platform
    too. The window is at most a day: platforms' posting windows are no longer (Instagram: 24 h).
    Every process posting to the account shares the window (koho.collection.budgets), which counts
    whole seconds: a fraction is rounded up.
    """

    posts: int = Field(ge=1, le=10_000)
    per_seconds: float = Field(gt=0, le=24 * 3600)


ReadMethod = Literal["post_metrics", "account_metrics", "comments_since", "search_accounts"]


class ReadQuotaConfig(Strict):
    """A platform's read quota, which collection spends and reports: at most ``units`` per ``per_seconds``.

    Each API request a read makes costs ``costs[method]`` units (``default_cost`` for methods not
    listed): YouTube charges 1 unit per list request and 100 per search. ``shared_by: app`` when the
    quota belongs to the API project rather than to each account (YouTube's 10,000 daily units,
    X's paid reads); ``usd_per_unit`` prices paid reads, so a run says what it cost.
    """

    units: int = Field(ge=1, le=10_000_000)
    per_seconds: int = Field(ge=1, le=31 * 24 * 3600)
    costs: dict[ReadMethod, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    default_cost: int = Field(default=1, ge=0)
    shared_by: Literal["account", "app"] = "account"
    usd_per_unit: float | None = Field(default=None, ge=0)

    def cost_of(self, method: str) -> int:
        """Units one API request of ``method`` costs."""
        return self.costs.get(method, self.default_cost)  # type: ignore[call-overload]


class Caps(Strict):
    """Volume rules for one account (policy: avoid needless volume, save staff time)."""

    per_day: int | None = Field(default=None, ge=1, le=500)
    min_spacing_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    quiet_hours: QuietHours | None = None
    #: The client-side posting budget; unset: the policy's default for the platform, if any.
    write_budget: WriteBudgetConfig | None = None

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _quiet(cls, value: object) -> object:
        return QuietHours.parse(value) if isinstance(value, str) else value

    def merged_over(self, default: Caps) -> Caps:
        """These caps, with anything unset taken from ``default`` (the policy's)."""
        return Caps(
            per_day=self.per_day if self.per_day is not None else default.per_day,
            min_spacing_minutes=(
                self.min_spacing_minutes if self.min_spacing_minutes is not None else default.min_spacing_minutes
            ),
            quiet_hours=self.quiet_hours if self.quiet_hours is not None else default.quiet_hours,
            write_budget=self.write_budget,  # defaults are per platform: KohoConfig.caps_for
        )


class PolicyCaps(Caps):
    """The policy's default caps: like an account's, but a default budget is set per platform."""

    @field_validator("write_budget", mode="before")
    @classmethod
    def _no_global_budget(cls, value: object) -> object:
        if value is not None:
            # Platforms' limits differ by orders of magnitude: one number for all would be wrong for most.
            raise ValueError("a default write_budget is set per platform, under 'write_budgets' (e.g. line:)")
        return value


Platform = Literal["x", "facebook", "instagram", "threads", "line", "youtube", "bluesky", "mastodon"]
assert set(Platform.__args__) == set(PLATFORMS), "schema and platform registry disagree"  # type: ignore[attr-defined]


class AccountConfig(Strict):
    """One official account (policy: the general city account and special-topic accounts)."""

    id: Slug
    name: str = Field(min_length=1, max_length=100)
    platform: Platform
    handle: str = Field(min_length=1, max_length=100, pattern=r"^@?[A-Za-z0-9_.\-]+(@[A-Za-z0-9.\-]+)?$")
    kind: Literal["general", "special"]
    topic: Slug | None = None
    department: Slug
    status: Literal["active", "suspended", "retired"] = "active"
    connection_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,250}$")]
    url: HttpUrl | None = None
    caps: Caps = Caps()
    staff_hours_per_post: float = Field(default=0.25, ge=0, le=40)
    started_on: date | None = None
    description: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _topic_for_special(self) -> AccountConfig:
        if self.kind == "special" and not self.topic:
            raise ValueError("a special-topic account needs a 'topic' (e.g. child_rearing, disaster, tourism)")
        if self.kind == "general" and self.topic:
            raise ValueError("the general city account has no 'topic'; use kind: special for topic accounts")
        return self


Keyword = Annotated[str, Field(min_length=1, max_length=50)]


class Department(Strict):
    id: Slug
    name: str = Field(min_length=1, max_length=100)
    email: EmailStr
    keywords: list[Keyword] = Field(default_factory=list)
    #: Other spellings of a keyword (``保育園: [保育所, こども園]``): they route as the keyword does,
    #: and the reason a person reads names the synonym that matched ("「保育所（保育園）」").
    synonyms: dict[Keyword, list[Keyword]] = Field(default_factory=dict)

    @field_validator("synonyms")
    @classmethod
    def _synonyms_of_keywords(cls, value: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        keywords = info.data.get("keywords") or []
        for keyword in value:
            if keyword not in keywords:
                raise ValueError(f"synonyms are given for '{keyword}', which is not one of this department's keywords")
        return value


class Texts(Strict):
    """Texts shown to the public. Written by the city in its own words; the demo ships samples."""

    sample: bool = False
    directory_title: str = Field(min_length=1)
    directory_intro: str = Field(min_length=1)
    disclaimer: str = Field(min_length=1)
    feedback_note: str = Field(min_length=1)


class EngagementBands(Strict):
    """Engagement-rate bands in percent; public practice calls 1-5 % good for a city account."""

    low_below: float = Field(default=1.0, ge=0, le=100)
    high_above: float = Field(default=5.0, ge=0, le=100)

    @model_validator(mode="after")
    def _order(self) -> EngagementBands:
        if self.low_below > self.high_above:
            raise ValueError("low_below must not be above high_above")
        return self


class ReviewPolicy(Strict):
    """How accounts are judged KEEP, IMPROVE or RETIRE; a verdict is a recommendation to a person.

    Defaults follow public practice: an account not updated for three months is assessed for
    closing (``dormant_days``); an account younger than ``new_account_days`` is not judged yet.
    """

    reach: float = Field(default=0.4, ge=0)
    engagement: float = Field(default=0.4, ge=0)
    cost: float = Field(default=0.2, ge=0)
    improve_below: float = Field(default=0.5, ge=0, le=1)
    retire_below: float = Field(default=0.25, ge=0, le=1)
    dormant_days: int = Field(default=90, ge=1, le=3650)
    new_account_days: int = Field(default=90, ge=0, le=3650)
    engagement_bands: EngagementBands = EngagementBands()
    #: Periods of falling engagement rate in a row that count as a decline.
    falling_periods: int = Field(default=3, ge=2, le=12)
    #: Staff hours per 1,000 reach (or engagements, where reach is not offered) above which an
    #: account is costly; above ``retire_cost_per_1000`` with a low engagement rate it is retired.
    improve_cost_per_1000: float = Field(default=5.0, gt=0)
    retire_cost_per_1000: float = Field(default=10.0, gt=0)
    #: The same per 1,000 engagements: an engagement is worth some tens of reach, so the scale differs.
    improve_cost_per_1000_engagements: float = Field(default=50.0, gt=0)
    retire_cost_per_1000_engagements: float = Field(default=100.0, gt=0)
    #: Fixed staff hours a month per account (checks, replies, reporting), on top of posting.
    fixed_monthly_hours: float = Field(default=2.0, ge=0, le=744)
    fixed_monthly_hours_by_account: dict[Slug, Annotated[float, Field(ge=0, le=744)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _order(self) -> ReviewPolicy:
        if self.retire_below > self.improve_below:
            raise ValueError("retire_below must not be above improve_below")
        if self.retire_cost_per_1000 < self.improve_cost_per_1000:
            raise ValueError("retire_cost_per_1000 must not be below improve_cost_per_1000")
        if self.retire_cost_per_1000_engagements < self.improve_cost_per_1000_engagements:
            raise ValueError("retire_cost_per_1000_engagements must not be below improve_cost_per_1000_engagements")
        return self

    def cost_limits(self, offers_reach: bool) -> tuple[float, float]:
        """(improve above, retire above) in staff hours per 1,000 reach, else per 1,000 engagements."""
        if offers_reach:
            return self.improve_cost_per_1000, self.retire_cost_per_1000
        return self.improve_cost_per_1000_engagements, self.retire_cost_per_1000_engagements

    def fixed_hours_for(self, account_id: str) -> float:
        return self.fixed_monthly_hours_by_account.get(account_id, self.fixed_monthly_hours)


class WebsiteChannel(Strict):
    output_dir: str = "var/website"
    base_url: HttpUrl
    feed_title: str = Field(min_length=1)


class NewsletterChannel(Strict):
    output_dir: str = "var/newsletter"
    max_item_chars: int = Field(default=400, ge=20)


class InputLimits(Strict):
    """Bounds on what one input file or text may make Koho do: past them, a clear error, not a
    run that takes minutes and ends out of memory. The defaults are far above any real calendar
    (a busy city plans a few hundred posts a month) and far below what hurts a worker."""

    max_file_bytes: int = Field(default=3_000_000, ge=10_000)
    max_workbook_bytes: int = Field(default=30_000_000, ge=100_000)  # uncompressed, all parts together
    max_sheet_rows: int = Field(default=20_000, ge=10)
    max_sheet_columns: int = Field(default=100, ge=20)
    max_yaml_nodes: int = Field(default=200_000, ge=100)  # values after expanding aliases
    max_yaml_aliases: int = Field(default=100, ge=0)
    max_entries_per_file: int = Field(default=2_000, ge=1)
    max_problems_per_file: int = Field(default=200, ge=10)  # listed; every refused entry still says why
    max_text_chars: int = Field(default=8_000, ge=100)  # before fitting; above LINE's 5000, far below a flood
    max_thread_parts: int = Field(default=8, ge=1)
    warn_thread_parts: int = Field(default=4, ge=1)


class Channels(Strict):
    website: WebsiteChannel
    newsletter: NewsletterChannel = NewsletterChannel()


class MailPolicy(Strict):
    """Limits of the mails Koho sends; a bigger message is split, never dropped."""

    max_message_mb: float = Field(default=10, ge=0.1, le=50)

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * 1_000_000)


class Policy(Strict):
    city_name: str = Field(min_length=1)
    timezone: str = "Asia/Tokyo"
    pr_department: Slug
    crisis_emails: list[EmailStr] = Field(default_factory=list)
    caps: PolicyCaps
    holidays: Literal["allow", "warn", "block"] = "warn"
    token_expiry_warning_days: int = Field(default=14, ge=1, le=365)
    platform_limits: dict[Platform, int] = Field(default_factory=dict)
    #: Default posting budgets per platform, for accounts whose caps set none: where a platform
    #: announces no limits (LINE), this is what keeps Koho under them.
    write_budgets: dict[Platform, WriteBudgetConfig] = Field(default_factory=dict)
    #: Read quotas per platform, spent and reported by collection (koho.collection).
    read_quotas: dict[Platform, ReadQuotaConfig] = Field(default_factory=dict)
    texts: Texts
    review: ReviewPolicy = ReviewPolicy()
    channels: Channels
    mail: MailPolicy = MailPolicy()
    #: Domains that are the city's own, besides the website's: links must not imitate them.
    own_domains: list[Annotated[str, Field(min_length=3, max_length=253)]] = Field(default_factory=list)
    limits: InputLimits = InputLimits()
    feedback: FeedbackPolicy = FeedbackPolicy()

    def genuine_domains(self) -> list[str]:
        """The city's own domains: ``own_domains`` and the website's host."""
        from urllib.parse import urlsplit

        host = urlsplit(str(self.channels.website.base_url)).hostname or ""
        bare = host.removeprefix("www.")
        return list(dict.fromkeys(d.lower().strip(".") for d in (*self.own_domains, host, bare) if d))

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}' (expected an IANA name like Asia/Tokyo)") from None
        return value

    @field_validator("platform_limits")
    @classmethod
    def _limits(cls, value: dict[str, int]) -> dict[str, int]:
        for platform, limit in value.items():
            if limit < 1:
                raise ValueError(f"platform limit for {platform} must be a positive length")
        return value
