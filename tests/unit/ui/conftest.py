"""A SQLite ledger seeded once with a month of deliveries in every state, for the calendar view."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from koho.ledger.db import Ledger, dispose_engine
from koho.ledger.models import Account, CalendarEntry, Delivery

#: 2026-11-10 09:30 in Tokyo.
T_PUBLISHED = datetime(2026, 11, 10, 0, 30, tzinfo=UTC)
#: 2026-11-30 23:30 in Tokyo (14:30 UTC): a November post.
T_LATE_NOV = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
#: 2026-12-01 00:30 in Tokyo, although it is still 30 November in UTC.
T_EARLY_DEC = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)

HOSTILE_TITLE = "<script>alert('x')</script>秋祭り"


def _seed(session) -> None:
    session.add_all(
        [
            Account(id="city_x", platform="x", handle="koho_city", display_name="こほ市", department="pr"),
            Account(
                id="kosodate_fb",
                platform="facebook",
                handle="kohokosodate",
                display_name="こほ市子育て",
                kind="special",
                topic="child_rearing",
                department="kosodate",
            ),
            Account(
                id="old_line",
                platform="line",
                handle="kohoold",
                display_name="旧LINE",
                department="pr",
                status="retired",
            ),
        ]
    )
    entries = {
        "festival": (HOSTILE_TITLE, "calendar", T_PUBLISHED),
        "token": ("子育て支援センターのお知らせ", "calendar", datetime(2026, 11, 12, 3, 0, tzinfo=UTC)),
        "late-nov": ("月末のお知らせ", "calendar", T_LATE_NOV),
        "early-dec": ("師走のお知らせ", "calendar", T_EARLY_DEC),
        "approval": ("承認待ちの投稿", "adhoc", datetime(2026, 11, 20, 1, 0, tzinfo=UTC)),
        "cancelled": ("取りやめた投稿", "calendar", datetime(2026, 11, 21, 1, 0, tzinfo=UTC)),
        "thread": ("長いスレッド", "calendar", datetime(2026, 11, 22, 1, 0, tzinfo=UTC)),
        "quake": ("地震情報", "emergency", datetime(2026, 11, 23, 1, 0, tzinfo=UTC)),
        "unplanned": ("まだ配信計画のない投稿", "calendar", datetime(2026, 11, 25, 1, 0, tzinfo=UTC)),
        "october": ("先月の投稿", "calendar", datetime(2026, 10, 15, 1, 0, tzinfo=UTC)),
    }
    for entry_id, (title, origin, when) in entries.items():
        session.add(
            CalendarEntry(
                id=entry_id,
                origin=origin,
                source="calendar.yaml",
                title=title,
                publish_at=when,
                payload={"text": title},
                content_hash=entry_id,
                status="awaiting_approval" if entry_id == "approval" else "planned",
            )
        )
    session.flush()

    def delivery(entry_id: str, account_id: str, status: str, *, part: int = 0, **extra) -> None:
        due = entries[entry_id][2] + timedelta(minutes=part)
        session.add(
            Delivery(
                entry_id=entry_id,
                account_id=account_id,
                revision=1,
                part_index=part,
                idempotency_key=f"{entry_id}/{account_id}/{part}",
                due_at=due,
                status=status,
                text=entries[entry_id][0],
                planned_created_at=due,
                **extra,
            )
        )

    delivery(
        "festival",
        "city_x",
        "published",
        remote_url="https://x.com/koho_city/status/1",
        published_at=T_PUBLISHED,
        dag_run_id="koho_posting/scheduled__2026-11-10T00:30:00+00:00",
    )
    delivery("festival", "kosodate_fb", "published", remote_url="javascript:alert(1)", published_at=T_PUBLISHED)
    delivery(
        "token",
        "kosodate_fb",
        "failed",
        last_error="token expired <b>reconnect</b> the account",
        dag_run_id="manual__2026-11-12T03:00:00+00:00",
    )
    delivery("late-nov", "city_x", "planned")
    delivery("early-dec", "city_x", "planned")
    delivery("approval", "city_x", "awaiting_approval")
    delivery("cancelled", "city_x", "cancelled")
    delivery("thread", "city_x", "published", remote_url="https://x.com/koho_city/status/2", published_at=T_PUBLISHED)
    delivery("thread", "city_x", "failed", part=1, last_error="duplicate content rejected")
    delivery("quake", "city_x", "sending", dag_run_id="koho_emergency/manual__quake")
    delivery("october", "city_x", "published", remote_url="https://x.com/koho_city/status/0")


@pytest.fixture(scope="session")
def seeded_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    path: Path = tmp_path_factory.mktemp("ui-ledger") / "ledger.db"
    url = f"sqlite:///{path}"
    ledger = Ledger(url)
    ledger.migrate()
    with ledger.session() as session:
        _seed(session)
    yield ledger
    dispose_engine(url)
