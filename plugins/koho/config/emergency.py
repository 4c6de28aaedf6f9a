"""The disaster-information watcher's settings: ``include/config/emergency.yaml``.

Which JMA feed, which municipality (area codes) and which warning kinds the city broadcasts,
and how long a crisis officer has to approve a draft. Validated like the rest of the
configuration: an error names file, line and field; unknown fields are errors.
"""

from __future__ import annotations

import logging
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from koho.config.yamlsource import load_yaml
from koho.errors import ConfigError, Problem, Where

log = logging.getLogger(__name__)

#: Feed entry titles (= ``Control/Title``) of the warning bulletins the watcher reads. VPWW53
#: (気象特別警報・警報・注意報) repeats VPWW54 in an older shape; reading both would fetch
#: every bulletin twice for nothing (their draft keys coincide anyway).
DEFAULT_FEED_TITLES = ("気象警報・注意報（Ｈ２７）",)

AreaCode = Annotated[str, Field(pattern=r"^\d{7}$")]
KindName = Annotated[str, Field(min_length=2, max_length=20)]
KindStatus = Literal["発表", "継続", "特別警報から警報", "特別警報から注意報", "警報から注意報", "解除"]


class EmergencySettings(BaseModel):
    """The disaster-information watcher's settings. Unknown fields are errors (typos must not
    silently fall back to a default when lives may depend on the watcher)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    feed_url: str = Field(pattern=r"^https?://\S+$")
    city_name: str = Field(min_length=1, max_length=50)
    area_codes: list[AreaCode] = Field(min_length=1)
    area_name: str = Field(min_length=1, max_length=50)
    kinds: list[KindName] = Field(min_length=1)
    statuses: list[KindStatus] = Field(default_factory=lambda: ["発表"], min_length=1)
    feed_titles: list[str] = Field(default_factory=lambda: list(DEFAULT_FEED_TITLES), min_length=1)
    poll_interval_seconds: float = Field(default=60, ge=1, le=3600)
    approval_timeout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    template: str = Field(default="posts/emergency/jma_warning.j2", pattern=r"^[\w./-]+\.j2$")
    page_url: str = Field(
        default="https://www.jma.go.jp/bosai/warning/#lang=ja&area_type=class20s&area_code={area_code}",
        pattern=r"^https?://\S+$",
    )

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        out = []
        for name in value:
            name = unicodedata.normalize("NFKC", name).strip()
            if not name.endswith(("警報", "注意報")):
                raise ValueError(f"'{name}' is not a JMA warning kind (names end in 警報 or 注意報, e.g. 大雨警報)")
            if name in out:
                raise ValueError(f"'{name}' is listed twice")
            out.append(name)
        return out

    @field_validator("page_url")
    @classmethod
    def _page_url(cls, value: str) -> str:
        if "{area_code}" not in value:
            raise ValueError("page_url must contain {area_code}, e.g. ...&area_code={area_code}")
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if ".." in value.split("/") or value.startswith("/"):
            raise ValueError("template must be a path inside include/templates")
        return value

    def page_link(self, area_code: str) -> str:
        return self.page_url.replace("{area_code}", area_code)


def emergency_config_path() -> Path:
    from koho.config.loader import config_dir

    return config_dir() / "emergency.yaml"


def load_emergency_settings(path: Path | None = None) -> EmergencySettings:
    """Load ``include/config/emergency.yaml``; raise :class:`ConfigError` naming file, line and field."""
    from koho.config.loader import _validate

    path = path or emergency_config_path()
    doc = load_yaml(path)
    if doc.data is None:
        problems = doc.problems or [Problem(Where(file=doc.file), "file is empty; expected the watcher settings")]
        raise ConfigError(problems)
    if not isinstance(doc.data, dict):
        raise ConfigError([*doc.problems, Problem(doc.where(()), "expected a mapping at the top")])
    settings, problems = _validate(EmergencySettings, doc.data, doc, ())
    problems = doc.problems + problems
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def approval_timeout_for_parse(path: Path | None = None) -> timedelta:
    """How long a draft waits for approval, as the DAG file needs it while parsed: a broken or
    unreadable emergency.yaml gives the schema's default, because the DAG must still load; the
    watch task then reports the file's problems."""
    try:
        minutes = load_emergency_settings(path).approval_timeout_minutes
    except (ConfigError, OSError) as exc:
        log.warning("emergency.yaml cannot be used while the DAG is parsed; the default timeout applies: %s", exc)
        minutes = EmergencySettings.model_fields["approval_timeout_minutes"].default
    return timedelta(minutes=minutes)
