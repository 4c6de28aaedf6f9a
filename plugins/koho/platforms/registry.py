"""Platform name -> hook class, imported lazily so DAG parsing never pays for unused platforms."""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from koho.platforms.base import PlatformHook

#: platform name -> "module:Class". Adding a platform is one module and one line here.
HOOKS: dict[str, str] = {
    "x": "koho.platforms.x:XHook",
    "facebook": "koho.platforms.facebook:FacebookHook",
    "instagram": "koho.platforms.instagram:InstagramHook",
    "threads": "koho.platforms.threads:ThreadsHook",
    "line": "koho.platforms.line:LineHook",
    "youtube": "koho.platforms.youtube:YouTubeHook",
    "bluesky": "koho.platforms.bluesky:BlueskyHook",
    "mastodon": "koho.platforms.mastodon:MastodonHook",
}

PLATFORMS: tuple[str, ...] = tuple(HOOKS)


@cache
def hook_class(platform: str) -> type[PlatformHook]:
    try:
        target = HOOKS[platform]
    except KeyError:
        raise KeyError(f"unknown platform '{platform}'; expected one of {', '.join(HOOKS)}") from None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def hook_for(platform: str, conn_id: str, **kwargs) -> PlatformHook:
    return hook_class(platform)(conn_id, **kwargs)
