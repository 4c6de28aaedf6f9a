"""Fixtures shared by several unit test folders: the calendar tests' small registry and a SQLite ledger.

The calendar and posting tests validate against the same registry (see ``calendar_helpers``), and the
posting and delivery tests record into the same kind of throwaway ledger; the ad-hoc and emergency
tests share the posting form's settings; folders that need something
else (the ledger tests run on Postgres too) define their own fixture of the same name.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from koho.config import KohoConfig
from koho.config.posting import PostingSettings
from koho.ledger.db import Ledger, dispose_engine
from tests.unit.calendar.calendar_helpers import write_config

#: The user the posting settings name as the PR section's (their ad-hoc posts need no approval).
PR_USER = "pr-user"


@pytest.fixture(scope="session")
def config(tmp_path_factory: pytest.TempPathFactory) -> KohoConfig:
    return write_config(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="session")
def blocking_config(tmp_path_factory: pytest.TempPathFactory) -> KohoConfig:
    """The same registry with ``holidays: block``, for the policy that refuses posts on holidays."""
    return write_config(tmp_path_factory.mktemp("config-block"), holidays="block")


@pytest.fixture
def ledger(tmp_path) -> Iterator[Ledger]:
    """A migrated SQLite ledger in this test's temporary folder; its engine is disposed afterwards."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    ledger.migrate()
    yield ledger
    dispose_engine(url)


@pytest.fixture
def posting_settings() -> PostingSettings:
    """posting.yaml as the ad-hoc and emergency tests assume it: quick retries, a stand-in image."""
    return PostingSettings(
        pr_users=[PR_USER],
        emergency_confirmation="緊急配信",
        emergency_image="ok.png",
        emergency_retry_seconds=5,
        emergency_retry_max_delay_seconds=0.1,
    )
