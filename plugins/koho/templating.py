"""Jinja environments for what Koho renders as HTML: mails, reports, the public directory.

Autoescaping is on for every HTML template: residents' comments and platform answers are
untrusted input and end up in these pages.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from koho.config.loader import include_dir


@cache
def html_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(include_dir() / "templates")),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml", "j2"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["jst"] = _jst
    return env


def render_html(template: str, **context: Any) -> str:
    return html_environment().get_template(template).render(**context)


def _jst(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Show a UTC datetime in Japan time, as operators read it."""
    from koho.timeutil import to_local

    return "" if value is None else to_local(value).strftime(fmt) + " JST"
