"""Post templates: Jinja2 over ``include/templates/posts``, Japanese first.

Posts are plain text, so autoescaping is off here (an "&" in a title must stay "&"); HTML
outputs (digests, reports, the directory) use their own, autoescaping environment. Undefined
variables are errors (``StrictUndefined``): a post that silently lost its date is worse than a
task that fails and says which variable is missing.

Lookup: ``posts/<platform>.j2``, else ``posts/default.j2``; emergency posts use
``posts/emergency/<platform>.j2``, else ``posts/emergency/default.j2`` (in practice only the
default: an emergency text must read the same everywhere). Templates only shape the body:
links and hashtags are added by :func:`koho.text.fit`, which knows what fits.

The include folder is ``$KOHO_INCLUDE_DIR`` when set, else ``include/`` at the repository root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from koho.errors import KohoError

TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAYS = "月火水木金土日"


class TemplateError(KohoError):
    """A post template is missing, broken, or was not given a variable it uses."""


def include_dir() -> Path:
    """``$KOHO_INCLUDE_DIR`` or the repository's ``include/`` (plugins/koho/text/ -> repo root)."""
    configured = os.environ.get("KOHO_INCLUDE_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "include"


def _as_datetime(value: Any) -> datetime | date:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(TOKYO)  # shown in Tokyo time, whatever it was stored in
    return value


def jp_date(value: Any) -> str:
    """``2026-11-25`` -> ``11月25日（水）``."""
    value = _as_datetime(value)
    return f"{value.month}月{value.day}日（{WEEKDAYS[value.weekday()]}）"


def jp_time(value: Any) -> str:
    """``14:30`` (24-hour clock, as Japanese notices write it)."""
    value = _as_datetime(value)
    if not isinstance(value, datetime):
        raise TemplateError(f"jp_time needs a date and time, got the date {value.isoformat()}")
    return f"{value.hour}:{value.minute:02d}"


def jp_datetime(value: Any) -> str:
    return f"{jp_date(value)}{jp_time(value)}"


@cache
def environment(templates: Path) -> jinja2.Environment:
    """One environment per templates folder (cached: Jinja caches compiled templates per environment)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        autoescape=False,  # noqa: S701 - plain-text posts, never HTML (see module docstring)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(jp_date=jp_date, jp_time=jp_time, jp_datetime=jp_datetime)
    return env


def template_names(platform: str, *, emergency: bool = False) -> list[str]:
    folder = "posts/emergency" if emergency else "posts"
    return [f"{folder}/{platform}.j2", f"{folder}/default.j2"]


def render_post(platform: str, context: Mapping[str, Any], *, emergency: bool = False) -> str:
    """The post body for ``platform`` from ``context``, surrounding blank lines trimmed."""
    env = environment(include_dir() / "templates")
    names = template_names(platform, emergency=emergency)
    try:
        template = env.select_template(names)
    except jinja2.TemplatesNotFound:
        raise TemplateError(
            f"no post template: looked for {', '.join(names)} in {include_dir() / 'templates'}"
        ) from None
    try:
        rendered = template.render(**context)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{template.name}: {exc.message} (give it in the post's context)") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{template.name}: {exc}") from None
    return "\n".join(line.rstrip() for line in rendered.strip().splitlines())
