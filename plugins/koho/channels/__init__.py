"""Traditional channels (policy P11): the city website and the printed PR newsletter.

Social platforms are reached through their hooks in :mod:`koho.platforms`; channels are files
Koho writes itself (static pages and a feed for the web server, a monthly workbook for the
newsletter's editors), so they need no connection. A channel that takes deliveries (the website)
is an adapter in :mod:`koho.channels.registry`, which the sender reaches like a platform hook
(:mod:`koho.delivery.publishers`); the newsletter is an export of what went out
(:mod:`koho.channels.newsletter_export`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ChannelError", "is_web_url"]


def __getattr__(name: str) -> Any:
    """Imported on first use, so that the DAG files reading :mod:`koho.channels.registry` while
    parsed (the forms' choices) do not import the configuration loader with it."""
    if name in __all__:
        from koho.channels import _common

        return getattr(_common, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
