"""One posting-calendar entry, as staff write it in YAML, CSV or Excel.

The schema checks what can be judged from the entry alone (shapes, URLs, times, file names).
Whatever needs the account registry, the clock or the other entries (targets, past times, caps,
holidays) is judged in :mod:`koho.calendar.validate`, so this model stays reusable by the ad-hoc
post form. Unknown fields are errors: a misspelt ``aproval:`` must not silently mean "no approval".
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from koho.calendar.timeparse import parse_publish_at

ENTRY_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$"
CHANNELS = ("social", "website", "newsletter")
Channel = Literal["social", "website", "newsletter"]
Status = Literal["planned", "cancelled"]

#: Fields Koho fills in after validation; a calendar file may not set them.
RESOLVED_FIELDS = ("accounts", "excluded_accounts", "source")
#: Validation context marking input that comes from a calendar file (or a form).
FROM_FILE = {"from_file": True}

_HASHTAG = re.compile(r"^\w{1,100}$")
NonEmpty = Annotated[str, Field(min_length=1)]


def check_https(value: str, *, what: str) -> str:
    """``value`` if it is an absolute https URL; a ``ValueError`` saying what is expected otherwise."""
    parts = urlsplit(value)
    if parts.scheme.lower() != "https":
        raise ValueError(f"{what} must be an https:// URL, got '{value}'")
    if not parts.hostname or any(ch.isspace() for ch in value):
        raise ValueError(f"{what} is not a valid URL: '{value}' (expected e.g. https://www.city.example.jp/page)")
    return value


def is_url(value: str) -> bool:
    return "://" in value


class CalendarEntry(BaseModel):
    """A planned post (or website / newsletter item).

    ``publish_at`` is stored as aware UTC; staff write JST. ``accounts`` and
    ``excluded_accounts`` are filled by validation: the accounts the entry goes to, and the
    accounts it does not go to with the reason (retired, suspended, over a cap, text too long...),
    so that one bad account never holds back the others.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    id: Annotated[str, Field(pattern=ENTRY_ID)]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    publish_at: datetime
    targets: list[NonEmpty] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=lambda: ["social"])
    text: Annotated[str, Field(min_length=1)]
    overrides: dict[str, NonEmpty] = Field(default_factory=dict)
    link: str | None = None
    images: list[NonEmpty] = Field(default_factory=list, max_length=10)
    hashtags: list[str] = Field(default_factory=list, max_length=30)
    category: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    approval: bool = False  # a PR approver must approve before it is published
    allow_holiday: bool = False  # silences the holiday warning; a policy that blocks holidays still blocks
    status: Status = "planned"

    # filled by validation
    accounts: list[str] = Field(default_factory=list)
    excluded_accounts: dict[str, str] = Field(default_factory=dict)
    source: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_resolved_fields_from_files(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and info.context and info.context.get("from_file"):
            for name in RESOLVED_FIELDS:
                if name in data:
                    raise ValueError(f"'{name}' is filled in by Koho and cannot be set in a calendar file")
        return data

    @field_validator("publish_at", mode="before")
    @classmethod
    def _publish_at(cls, value: object) -> datetime:
        return parse_publish_at(value)

    @field_validator("targets", "images", "hashtags", "channels", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: object) -> object:
        """A single value where a list is expected is read as a one-item list (``targets: all``)."""
        return [value] if isinstance(value, str) else value

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        return _unique(unicodedata.normalize("NFKC", t).strip() for t in value)

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"at least one channel is needed (one of {', '.join(CHANNELS)})")
        return _unique(value)

    @field_validator("overrides", mode="before")
    @classmethod
    def _override_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            return {unicodedata.normalize("NFKC", str(k)).strip().lower(): v for k, v in value.items()}
        return value

    @field_validator("link")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        return check_https(value, what="link") if value else None

    @field_validator("images")
    @classmethod
    def _images(cls, value: list[str]) -> list[str]:
        for item in value:
            if is_url(item):
                check_https(item, what="an image URL")
            elif item.startswith(("/", "\\")) or "\\" in item or ".." in item.split("/") or ":" in item:
                raise ValueError(
                    f"image '{item}' must be a file name inside include/media (like 'gomi/2027-01.png') "
                    "or an https:// URL"
                )
        return _unique(value)

    @field_validator("hashtags")
    @classmethod
    def _hashtags(cls, value: list[str]) -> list[str]:
        out = []
        for tag in value:
            tag = unicodedata.normalize("NFKC", str(tag)).strip().lstrip("#")
            if not _HASHTAG.match(tag):
                raise ValueError(
                    f"hashtag '{tag}' may only hold letters, digits and '_' (write it without '#', like 'こほ市')"
                )
            out.append(tag)
        return _unique(out)

    def text_for(self, account_id: str, platform: str) -> tuple[str, str]:
        """The text for one account and the field it came from: account override, platform override, base."""
        for key in (account_id, platform):
            if key in self.overrides:
                return self.overrides[key], f"overrides.{key}"
        return self.text, "text"

    @property
    def local_label(self) -> str:
        from koho.timeutil import to_local

        return f"{to_local(self.publish_at):%Y-%m-%d %H:%M} JST"


def _unique(values: Any) -> list:
    seen: dict = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)
