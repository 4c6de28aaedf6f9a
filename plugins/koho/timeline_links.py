"""Links to a stand-in platform's timeline: where a published post, or a post not sent yet, is shown.

A connection whose extra names a ``timeline_url`` posts to a stand-in (the sandbox) that renders
what it received. The calendar view links published items there and the ad-hoc dry run links
each account's preview; a real platform's connection has no such extra, and nothing links.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from cachetools import TTLCache, cached

from koho.channels import is_web_url

log = logging.getLogger(__name__)

TIMELINE_EXTRA = "timeline_url"
#: How long the calendar view trusts what it read from the connections (they change rarely).
CACHE_SECONDS = 60


def timeline_of(extra: Mapping[str, Any] | str | None) -> str | None:
    """The timeline URL a connection's extra names, if it is a web address."""
    if isinstance(extra, str):
        try:
            extra = json.loads(extra or "{}")
        except ValueError:
            return None
    value = (extra or {}).get(TIMELINE_EXTRA) if isinstance(extra, Mapping) else None
    return str(value).rstrip("/") if value and is_web_url(str(value)) else None


def post_link(timeline: str, platform: str, remote_id: str) -> str:
    """The timeline's page for a published post, by the remote id Koho recorded."""
    return f"{timeline}/post?{urlencode({'platform': platform, 'id': remote_id})}"


def preview_link(
    timeline: str,
    *,
    platform: str,
    parts: Sequence[str],
    handle: str = "",
    name: str = "",
    images: Sequence[str] = (),
    link: str | None = None,
    account: str = "",
) -> str:
    """The timeline's rendering of a post not sent: the fitted parts (a thread), images and link."""
    params: list[tuple[str, str]] = [("platform", platform), ("handle", handle), ("name", name), ("account", account)]
    params += [("part", part) for part in parts] + [("image", image) for image in images]
    if link:
        params.append(("link", link))
    return f"{timeline}/preview?{urlencode(params)}"


def _read_extra(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).extra_dejson


def timelines(connection_ids: Iterable[str], read: Callable[[str], Any] = _read_extra) -> dict[str, str]:
    """{connection id: timeline URL} for the connections that name one; unreadable ones are skipped."""
    out = {}
    for conn_id in sorted(set(connection_ids)):
        try:
            timeline = timeline_of(read(conn_id))
        except Exception as exc:  # a missing connection only means no link; say which, never its content
            log.debug("connection %s could not be read for its timeline (%s)", conn_id, type(exc).__name__)
            continue
        if timeline:
            out[conn_id] = timeline
    return out


@cached(TTLCache(maxsize=16, ttl=CACHE_SECONDS))
def cached_timelines(connection_ids: tuple[str, ...]) -> dict[str, str]:
    """:func:`timelines` of the Airflow connections, kept a minute (the calendar view asks per page)."""
    return timelines(connection_ids)
