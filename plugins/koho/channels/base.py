"""What a channel adapter offers the sender: the same publish / retract shape as a platform hook.

A channel is written by Koho itself (files for the web server, a mail system's drop folder, an
open-data portal's upload...), so it has no connection and no account in accounts.yaml: its
deliveries go to the pseudo-account :meth:`ChannelAdapter.ledger_account` describes. What sets
it apart from a platform is said by its :class:`~koho.platforms.types.Capabilities` (typically
``counts_towards_caps=False``, ``needs_fitting=False``, ``registry_account=False``), never by
its name, so shared code asks the capabilities and not "is this the website?".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from koho.platforms.errors import NotSupported
from koho.platforms.types import Capabilities, PublishedPost

if TYPE_CHECKING:
    from koho.config.loader import KohoConfig
    from koho.delivery.publishers import Publication


class ChannelAdapter(ABC):
    """One channel. ``name`` is its entry in :data:`koho.channels.registry.CHANNELS`."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(self, config: KohoConfig | None = None) -> None:
        self._config = config

    @property
    def config(self) -> KohoConfig:
        """The configuration it publishes with (read when first needed: retracting needs none)."""
        if self._config is None:
            from koho.config import load_config

            self._config = load_config()
        return self._config

    @classmethod
    @abstractmethod
    def unavailable(cls, config: KohoConfig) -> str | None:
        """Why the channel cannot be published to with this configuration; None when it can."""

    @classmethod
    def ledger_account(cls, config: KohoConfig) -> dict[str, Any] | None:
        """The pseudo-account's ledger row, or None when the channel is not configured."""
        if cls.unavailable(config) or config.policy is None:
            return None
        return {
            "id": cls.name,
            "platform": cls.name,
            "handle": cls.handle(config),
            "display_name": cls.display_name,
            "kind": "general",
            "department": config.policy.pr_department,
            "status": "active",
            "connection_id": None,
            "settings": {},
        }

    @classmethod
    def handle(cls, config: KohoConfig) -> str:
        """What the pseudo-account's handle shows (where the channel publishes)."""
        return cls.name

    @abstractmethod
    def publish_once(
        self,
        publication: Publication,
        *,
        idempotency_key: str,
        maybe_sent_before: bool = False,
        since: datetime | None = None,
    ) -> PublishedPost:
        """Publish the delivery; publishing the same key again must not publish it twice."""

    def delete(self, remote_id: str) -> None:
        raise NotSupported(f"{self.name} cannot retract what it published", platform=self.name)

    def removal_by_hand(self, where: str, account_id: str) -> str:
        """What a person does to take the publication down where :meth:`delete` cannot."""
        return f"remove {where} from the {self.display_name} by hand"

    def full_text_url(self, entry_id: str) -> str | None:
        """Where the channel publishes the entry's full text (shortened posts link there), if it does."""
        return None
