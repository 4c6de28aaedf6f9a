"""Channel name -> adapter class: the channels Koho writes itself, delivered like platforms.

A channel is a delivery target without a platform account: its deliveries go to a pseudo-account
named after it (id and platform are the channel's name), planned, claimed and sent exactly once
like any post, and the sender reaches it through :func:`koho.delivery.publishers.publisher_for`
like a platform hook. A calendar entry selects a channel by listing its name in ``channels``; the
emergency form, by naming it among the targets. Adding a channel is one adapter module (a
:class:`koho.channels.base.ChannelAdapter`) and one entry here.

Adapters are imported lazily, so that the DAG files that only need the names and labels (the
trigger forms) never import a channel's rendering code.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from koho.channels.base import ChannelAdapter
    from koho.config.loader import KohoConfig


@dataclass(frozen=True)
class ChannelInfo:
    """What the forms need to know about a channel, without importing its adapter."""

    name: str  # the entries' channel name, the form's target, the pseudo-account's id and platform
    adapter: str  # "module:Class"
    form_label: str  # how the emergency form offers it
    emergency_default: bool = False  # an emergency broadcast reaches it unless the form names its targets


CHANNELS: dict[str, ChannelInfo] = {
    "website": ChannelInfo(
        name="website",
        adapter="koho.channels.website:WebsiteAdapter",
        form_label="市ホームページ（緊急バナー・お知らせ）(website)",
        emergency_default=True,
    ),
}


#: Channels that check a calendar entry choosing them, beyond the calendar's own rules:
#: channel name -> "module:function" taking (entry, config) and returning :class:`EntryNote`\ s.
#: The newsletter is an export of what was published, not a delivery target, so it has a check
#: here and no adapter above.
ENTRY_CHECKS: dict[str, str] = {
    "newsletter": "koho.channels.newsletter:entry_notes",
}


@dataclass(frozen=True)
class EntryNote:
    """A channel's word on an entry: the entry's field it is about, what, and how serious."""

    field: str
    message: str
    severity: str = "warning"


def entry_notes(entry: Any, config: KohoConfig) -> list[EntryNote]:
    """What the channels an entry chooses say about it (see :data:`ENTRY_CHECKS`)."""
    notes: list[EntryNote] = []
    for name in getattr(entry, "channels", None) or ():
        target = ENTRY_CHECKS.get(str(name).strip().lower())
        if target:
            module, _, attr = target.partition(":")
            notes += getattr(importlib.import_module(module), attr)(entry, config)
    return notes


@cache
def channel_class(name: str) -> type[ChannelAdapter]:
    try:
        target = CHANNELS[name].adapter
    except KeyError:
        raise KeyError(f"unknown channel '{name}'; expected one of {', '.join(CHANNELS)}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def channels_in(names: Iterable[str]) -> list[str]:
    """The delivery channels among ``names`` (an entry's channels, a form's targets), in order, once
    each; names are compared case-insensitively and without surrounding spaces."""
    found: list[str] = []
    for name in names:
        key = str(name).strip().lower()
        if key in CHANNELS and key not in found:
            found.append(key)
    return found


def channel_accounts(config: KohoConfig, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The ledger rows of the channels' pseudo-accounts (``names`` only, when given), for the channels
    the configuration enables; a channel that is not configured gets none (and nothing is planned
    for it: the planner reports it as not in the registry)."""
    wanted = CHANNELS if names is None else channels_in(names)
    rows = []
    for name in wanted:
        row = channel_class(name).ledger_account(config)
        if row is not None:
            rows.append(row)
    return rows


def exempt_from_caps() -> tuple[str, ...]:
    """The pseudo-accounts whose deliveries do not count towards caps, spacing and quiet hours."""
    return tuple(name for name in CHANNELS if not channel_class(name).capabilities.counts_towards_caps)
