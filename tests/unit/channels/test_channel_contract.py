"""Every registered channel keeps the contract the sender, the planner, the retraction and the
emergency form rely on: the registry and the adapter agree, its pseudo-account exists only when
the channel is configured, publishing one key twice publishes once, and what it published is
retracted (twice is no error) or gets an instruction naming it. A new channel runs these tests by registering."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from koho.channels.registry import CHANNELS, channel_accounts, channel_class, channels_in
from koho.config import KohoConfig
from koho.delivery.publishers import Publication, capabilities_of, publisher_for
from koho.platforms.errors import NotSupported
from koho.posting.vocabulary import DEFAULT_TARGETS
from tests.unit.calendar.calendar_helpers import write_config

T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@pytest.fixture(params=sorted(CHANNELS))
def name(request) -> str:
    return request.param


@pytest.fixture
def city(tmp_path) -> KohoConfig:
    return write_config(tmp_path / "config", website_dir=tmp_path / "website")


def publication(name: str, entry_id: str = "gomi-2026-12") -> Publication:
    payload = {"id": entry_id, "text": "年末年始のごみ収集日程をお知らせします。", "channels": ["social", name]}
    return Publication(
        entry_id=entry_id,
        origin="calendar",
        title="ごみ収集日程",
        text=payload["text"],
        payload={**payload, "title": "ごみ収集日程"},
        due_at=T0,
        created_at=T0,
    )


def test_the_registry_and_the_adapter_agree(name):
    adapter = channel_class(name)
    assert adapter.name == name
    assert capabilities_of(name) is adapter.capabilities
    assert not adapter.capabilities.registry_account, "a channel's deliveries go to its pseudo-account"
    assert not adapter.capabilities.replies, "a pseudo-account has no post to answer"


def test_its_pseudo_account_exists_only_when_it_is_configured(name, city):
    [row] = channel_accounts(city, [name])
    assert row["id"] == row["platform"] == name
    assert row["status"] == "active" and row["connection_id"] is None
    assert row["department"] == city.policy.pr_department

    bare = KohoConfig(accounts=[], departments=[], policy=None)
    assert channel_class(name).unavailable(bare)
    assert channel_accounts(bare, [name]) == []
    with pytest.raises(NotSupported, match="not configured"):
        publisher_for(name, "", config=bare).publish_once(
            publication(name), idempotency_key="k", maybe_sent_before=False, since=None
        )


def test_publishing_one_key_twice_publishes_once(name, city):
    publisher = publisher_for(name, "", config=city)
    first = publisher.publish_once(publication(name), idempotency_key="key-1", maybe_sent_before=False, since=None)
    again = publisher.publish_once(publication(name), idempotency_key="key-1", maybe_sent_before=True, since=None)
    assert again.remote_id == first.remote_id and again.url == first.url


def test_what_it_published_is_retracted_or_has_a_by_hand_instruction(name, city):
    publisher = publisher_for(name, "", config=city)
    published = publisher.publish_once(publication(name), idempotency_key="key-1", maybe_sent_before=False, since=None)
    if publisher.capabilities.delete:
        publisher.delete(published.remote_id)
        publisher.delete(published.remote_id)  # retracting twice (a retried task) is no error
        again = publisher.publish_once(publication(name), idempotency_key="key-1", maybe_sent_before=False, since=None)
        assert again.remote_id == published.remote_id, "a retracted item can be published again"
    else:
        with pytest.raises(NotSupported):
            publisher.delete(published.remote_id)
        assert "https://example.jp/p/1" in publisher.removal_by_hand("https://example.jp/p/1", name)


def test_entries_and_forms_select_channels_by_name():
    chosen = channels_in(["social", " Website ", "newsletter", "website", "city-x"])
    assert chosen == ["website"], "one delivery per channel, whatever the spelling; social and accounts are not"
    assert [t for t in DEFAULT_TARGETS if t in CHANNELS] == [n for n, i in CHANNELS.items() if i.emergency_default]
