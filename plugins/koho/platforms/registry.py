"""Platform name -> hook class, imported lazily so DAG parsing never pays for unused platforms."""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from koho.platforms.base import PlatformHook

from koho.platforms.catalog import PLATFORMS as CATALOG

#: platform name -> "module:Class". Adding a platform is one module and one catalog entry.
HOOKS: dict[str, str] = {name: info.hook for name, info in CATALOG.items()}

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
