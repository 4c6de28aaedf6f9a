"""Something that can publish a delivery, for any account: a platform hook or a channel adapter.

The sender, the planner and the retraction ask this module, by the account's platform name, for a
publisher and its :class:`~koho.platforms.types.Capabilities`; the registry behind it holds both
the platform hooks (:mod:`koho.platforms.registry`) and the channel adapters
(:mod:`koho.channels.registry`), so no caller needs to know which kind an account is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin

from koho.channels.registry import CHANNELS, channel_class
from koho.config import KohoConfig
from koho.config.loader import media_dir
from koho.platforms.registry import hook_class, hook_for
from koho.platforms.types import Capabilities, OutgoingPost, PublishedPost


@dataclass(frozen=True)
class Publication:
    """One delivery as a publisher takes it: its text and the entry it belongs to."""

    entry_id: str
    origin: str
    title: str
    text: str  # the delivery's text: fitted for a platform, the full text for a channel
    payload: Mapping[str, Any]  # the validated entry (``koho.calendar.schema.CalendarEntry`` as JSON)
    due_at: datetime
    part_index: int = 0
    reply_to: str | None = None  # remote id of the post this part answers
    created_at: datetime | None = None  # fixed when planned, so that a retry carries the same value


class Publisher(Protocol):
    capabilities: Capabilities

    def publish_once(
        self, publication: Publication, *, idempotency_key: str, maybe_sent_before: bool, since: datetime | None
    ) -> PublishedPost: ...

    def delete(self, remote_id: str) -> None: ...

    def removal_by_hand(self, where: str, account_id: str) -> str: ...


def capabilities_of(platform: str) -> Capabilities | None:
    """What the platform or channel lets Koho do; None for a name neither registry knows."""
    try:
        return channel_class(platform).capabilities if platform in CHANNELS else hook_class(platform).capabilities
    except KeyError:
        return None


def publisher_for(
    platform: str,
    conn_id: str,
    *,
    config: KohoConfig | None = None,
    hook_factory: Callable[..., Any] = hook_for,
    **options: Any,
) -> Publisher:
    """The account's publisher: its channel's adapter, or its platform's hook (``hook_factory(platform,
    conn_id, **options)``; tests give a fake) wrapped to take a :class:`Publication`."""
    if platform in CHANNELS:
        return channel_class(platform)(config)
    return HookPublisher(platform, hook_factory(platform, conn_id, **options), config)


class HookPublisher:
    """A platform hook taking publications: the delivery becomes an :class:`OutgoingPost`."""

    def __init__(self, platform: str, hook: Any, config: KohoConfig | None) -> None:
        self.platform = platform
        self.hook = hook
        self._config = config
        self.capabilities = capabilities_of(platform) or Capabilities(images=False)  # unknown: text only

    def publish_once(
        self, publication: Publication, *, idempotency_key: str, maybe_sent_before: bool, since: datetime | None
    ) -> PublishedPost:
        images: tuple[str, ...] = ()
        # Where Koho cannot attach images the post goes out with its text and link rather than failing.
        if (
            publication.part_index == 0
            and self.capabilities.images
            and carries_images(publication.payload, self.platform)
        ):
            images = image_urls(publication.payload, self.config, local=self.capabilities.uploads_images)
        post = OutgoingPost(
            text=publication.text,
            image_urls=images,
            reply_to=publication.reply_to,
            created_at=publication.created_at,
        )
        return self.hook.publish_once(
            post, idempotency_key=idempotency_key, maybe_sent_before=maybe_sent_before, since=since
        )

    @property
    def config(self) -> KohoConfig:
        if self._config is None:
            from koho.config import load_config

            self._config = load_config()
        return self._config

    def delete(self, remote_id: str) -> None:
        self.hook.delete(remote_id)

    def removal_by_hand(self, where: str, account_id: str) -> str:
        return f"delete {where} by hand in the {self.platform} app (account {account_id}): its API cannot delete posts"


def image_urls(payload: Mapping[str, Any], config: KohoConfig, *, local: bool = False) -> tuple[str, ...]:
    """The entry's images as a hook takes them: URLs as given; a local image (include/media) as
    its file when the hook uploads the bytes itself (``local``), else as its public URL under the
    website's media/, which the platform fetches."""
    base = str(config.policy.channels.website.base_url) if config.policy else ""
    urls = []
    for image in payload.get("images") or ():
        if "://" in image:
            urls.append(image)
        elif local:
            urls.append(str(media_dir() / image))
        else:
            urls.append(urljoin(base, f"media/{Path(image).name}"))
    return tuple(urls)


def carries_images(payload: Mapping[str, Any], platform: str) -> bool:
    """Whether ``platform``'s posts carry the entry's images: ``payload["image_platforms"]``, when
    present, lists the platforms that do (an emergency's stand-in image is for Instagram only)."""
    platforms = payload.get("image_platforms")
    return platforms is None or platform in platforms
