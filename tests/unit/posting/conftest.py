"""Fixtures for the posting forms: a media folder, the form settings, and ``submit`` — the ad-hoc
task's own check-and-record (``koho.posting.adhoc.submit``) on the test ledger. The calendar tests' small registry (``config``, ``blocking_config``) and
the SQLite ``ledger`` come from ``tests/unit/conftest.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from koho.calendar.demo_media import png_bytes
from koho.config import KohoConfig
from koho.config.posting import PostingSettings
from koho.errors import InputError
from koho.ledger import accounts as ledger_accounts
from koho.ledger import deliveries, entries
from koho.ledger.db import Ledger
from koho.ledger.models import CalendarEntry, Delivery
from koho.posting import adhoc
from koho.posting.form import AdhocCheck
from tests.unit.calendar.calendar_helpers import write_media

#: 2026-12-01 10:00 JST, a Tuesday and a working day.
NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
STAFF_USER = "staff-user"


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """ok.png, notimage.png and huge.png (see ``write_media``), plus two.png, a second valid image."""
    folder = write_media(tmp_path_factory.mktemp("media"))
    (folder / "two.png").write_bytes(png_bytes(4, 4, (30, 20, 10)))
    return folder


@pytest.fixture
def settings(posting_settings: PostingSettings) -> PostingSettings:
    return posting_settings


@dataclass
class Submitted:
    check: AdhocCheck
    recorded: dict | None
    error: InputError | None


@pytest.fixture
def submit(config, settings, media, ledger) -> Callable[..., Submitted]:
    """What check_and_record does: validate; record only a valid form (a refused one raises)."""

    def run(
        form: dict[str, Any], *, user: str = STAFF_USER, config_: KohoConfig | None = None, now: datetime = NOW
    ) -> Submitted:
        cfg = config_ or config
        check, recorded = adhoc.submit(
            ledger, form, cfg, settings, now=now, entry_id="adhoc-test-0001", triggered_by=user, media_dir=media
        )
        if check.ok or check.dry_run:
            return Submitted(check, recorded, None)
        try:  # record() itself refuses an invalid form, whatever its caller does
            return Submitted(check, adhoc.record(ledger, check, cfg), None)
        except InputError as exc:
            return Submitted(check, None, exc)

    return run


def counts(ledger: Ledger) -> tuple[int, int]:
    with ledger.session(readonly=True) as session:
        return (
            session.scalar(select(func.count()).select_from(CalendarEntry)),
            session.scalar(select(func.count()).select_from(Delivery)),
        )


def seed_delivery(
    ledger: Ledger,
    config: KohoConfig,
    account_id: str,
    due: datetime,
    *,
    entry_id: str = "cal-1",
    origin: str = "calendar",
) -> None:
    """A post already planned in the ledger (it counts against caps and spacing)."""
    from koho.accounts.sync import registry_rows

    with ledger.session() as session:
        ledger_accounts.upsert_accounts(session, registry_rows(config))
        entries.upsert_entry(
            session,
            {
                "id": entry_id,
                "origin": origin,
                "source": "test",
                "title": "planned",
                "publish_at": due,
                "payload": {},
                "content_hash": entry_id,
            },
        )
        deliveries.plan_delivery(
            session, entry_id=entry_id, account_id=account_id, revision=1, due_at=due, text="既存の投稿"
        )
