"""Settings of the ad-hoc and emergency forms: ``include/config/posting.yaml``.

Who counts as the PR section (their ad-hoc posts need no approval), how long an approval may
take, the emergency form's confirmation phrase and the image that lets image-only platforms
(Instagram) carry an emergency text. Validated like the rest of the configuration: an error
names file, line and field. A missing file means the defaults below (nobody skips approval).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from koho.config.yamlsource import load_yaml
from koho.errors import ConfigError, Problem, Where

log = logging.getLogger(__name__)

FILE_NAME = "posting.yaml"


class PostingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    pr_users: list[str] = Field(default_factory=list)
    approval_timeout_minutes: int = Field(default=240, ge=1, le=7 * 24 * 60)
    emergency_confirmation: str = Field(default="緊急配信", min_length=2, max_length=50)
    emergency_image: str | None = Field(default=None, pattern=r"^[\w.\-]+\.(png|jpe?g|gif|webp)$")
    emergency_retry_seconds: float = Field(default=60, ge=0, le=600)
    emergency_retry_max_delay_seconds: float = Field(default=8, ge=0.1, le=60)

    @field_validator("pr_users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        out = []
        for name in value:
            name = str(name).strip()
            if not name:
                raise ValueError("an empty user name in pr_users")
            if name not in out:
                out.append(name)
        return out

    def is_pr(self, user: str | None) -> bool:
        return bool(user) and user in self.pr_users


def settings_path() -> Path:
    from koho.config.loader import config_dir

    return config_dir() / FILE_NAME


def load_posting_settings(path: Path | None = None) -> PostingSettings:
    """The settings, or the defaults when the file does not exist; :class:`ConfigError` if it is broken."""
    from koho.config.loader import _validate

    path = path or settings_path()
    if not path.exists():
        return PostingSettings()
    doc = load_yaml(path)
    if doc.data is None and not doc.problems:
        return PostingSettings()
    if doc.problems:
        raise ConfigError(doc.problems)
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem(Where(file=doc.file), "expected a mapping at the top")])
    settings, problems = _validate(PostingSettings, doc.data, doc, ())
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def settings_for_parse(path: Path | None = None) -> PostingSettings:
    """The settings as a DAG file needs them while it is parsed (approval timeout, confirmation
    phrase): a broken or unreadable posting.yaml gives the defaults, because the DAG must still
    load; the run then reports the file's problems with file, line and field."""
    try:
        return load_posting_settings(path)
    except (ConfigError, OSError) as exc:
        log.warning("posting.yaml cannot be used while the DAG is parsed; its defaults apply: %s", exc)
        return PostingSettings()
