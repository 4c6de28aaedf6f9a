"""Turn a relevant JMA warning into an emergency post draft, worded by a template the city owns.

The wording lives in ``include/templates/posts/emergency/jma_warning.j2`` so that a city can
change it without a release. Rendering is plain text in a sandboxed Jinja environment with
``StrictUndefined``: a renamed variable fails loudly instead of posting a sentence with a
hole in it, and the bulletin's text (headline, area names) is passed as *data* — whatever it
contains, Jinja never evaluates it.

The draft carries the same key as the trigger event (:func:`draft_key`), so recording it in the
ledger under that key is what makes "one warning, one draft" hold across duplicate feed
entries and repeated trigger runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from koho.config.emergency import EmergencySettings
from koho.emergency.jma import AreaWarning, Severity, draft_key

#: JMA times are Japan time by definition; posts say so whatever the server's zone.
JST = ZoneInfo("Asia/Tokyo")
CHANGED_STATUSES = ("特別警報から警報", "特別警報から注意報", "警報から注意報")


@dataclass(frozen=True)
class EmergencyDraft:
    key: str  # draft_key(): the ledger's idempotency key for this warning
    message: str
    severity: Severity  # critical (特別警報) / high (警報) / advisory (注意報, liftings)
    link: str  # the JMA's public page for the area
    source: str  # the bulletin the draft was made from


@cache
def _environment(templates: Path) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(templates)),
        autoescape=False,  # plain text for social media: "&" must stay "&"
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )


def templates_dir() -> Path:
    from koho.config.loader import include_dir

    return include_dir() / "templates"


def issued_at_text(area_warning: AreaWarning) -> str:
    """``7月10日 7時40分`` — how Japanese bulletins and city posts write the time."""
    moment = area_warning.report_time.astimezone(JST)
    return f"{moment.month}月{moment.day}日 {moment.hour}時{moment.minute:02d}分"


def draft_context(area_warning: AreaWarning, settings: EmergencySettings) -> dict[str, Any]:
    """Everything the template may use; the bulletin's text stays plain strings."""
    by_status: dict[str, list[str]] = {}
    for kind in area_warning.kinds:
        group = (
            "changed"
            if kind.status in CHANGED_STATUSES
            else {"発表": "issued", "継続": "continued", "解除": "lifted"}.get(kind.status, "issued")
        )
        by_status.setdefault(group, []).append(kind.name)
    return {
        "city_name": settings.city_name,
        "area_name": area_warning.area_name or settings.area_name,
        "severity": area_warning.severity,
        "issued": by_status.get("issued", []),
        "changed": by_status.get("changed", []),
        "continued": by_status.get("continued", []),
        "lifted": by_status.get("lifted", []),
        "corrected": area_warning.info_type == "訂正",
        "issued_at": issued_at_text(area_warning),
        "headline": area_warning.headline,
        "link": settings.page_link(area_warning.area_code),
    }


def render_message(template: str, context: Mapping[str, Any], templates: Path | None = None) -> str:
    text = _environment(templates or templates_dir()).get_template(template).render(**context)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def draft_post(area_warning: AreaWarning | Mapping[str, Any], settings: EmergencySettings) -> EmergencyDraft:
    """The draft for one area warning (an :class:`AreaWarning` or the dict a trigger event carries)."""
    if not isinstance(area_warning, AreaWarning):
        area_warning = AreaWarning.from_dict(dict(area_warning))
    context = draft_context(area_warning, settings)
    return EmergencyDraft(
        key=draft_key(area_warning),
        message=render_message(settings.template, context),
        severity=area_warning.severity,
        link=context["link"],
        source=area_warning.document_url,
    )
