"""The calendar's small DAGs end to end with ``airflow dags test`` (a real Airflow, the sandbox, a
real SMTP server): ``calendar_retract`` deletes a published post where the platform can and says
what to delete by hand where it cannot; ``newsletter_export`` writes last month's export and
tells the editors where it is."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from harness.airflow_stack import create_roles_and_users, relaxed_config
from koho.ledger import repo
from koho.ledger.db import Ledger
from koho.ledger.models import CalendarEntry
from tests.e2e.conftest import dags_test

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def roles(airflow_home, tmp_path_factory):
    """Koho's FAB roles (the DAGs' access_control names them), when Airflow runs the FAB auth manager."""
    if "FabAuthManager" in airflow_home.get("AIRFLOW__CORE__AUTH_MANAGER", ""):
        create_roles_and_users(airflow_home, tmp_path_factory.mktemp("auth") / "users.json")


@pytest.fixture
def city(demo_city, roles, tmp_path, monkeypatch):
    """The demo city with output folders in tmp_path and this process seeing its connections."""
    config = relaxed_config(tmp_path / "config")
    env = dict(demo_city["env"], KOHO_CONFIG_DIR=str(config))
    for key, value in env.items():
        if key.startswith("AIRFLOW_CONN_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("KOHO_CONFIG_DIR", str(config))
    ledger = Ledger(demo_city["ledger_url"])
    ledger.migrate()
    with ledger.session() as session:
        repo.upsert_accounts(session, demo_city["rows"])
    return {**demo_city, "env": env, "ledger": ledger, "out": tmp_path}


def _published_entry(
    ledger: Ledger, entry_id: str, accounts: list[str], *, channels=("social",), when: datetime | None = None
) -> None:
    """An entry published through the real sender (the sandbox holds the posts)."""
    from koho.delivery.planner import plan_entry
    from koho.delivery.sender import Sender
    from koho.ledger.models import Account

    when = when or datetime.now(UTC)
    text = f"{entry_id}: こほ市からのお知らせです。"
    with ledger.session() as session:
        entry = repo.upsert_entry(
            session,
            {
                "id": entry_id,
                "origin": "calendar",
                "source": "cal.yaml",
                "source_line": 1,
                "title": f"{entry_id} の記事",
                "publish_at": when,
                "content_hash": text,
                "payload": {
                    "id": entry_id,
                    "text": text,
                    "accounts": accounts,
                    "channels": list(channels),
                    "category": "くらし",
                },
            },
        ).entry
        ids = plan_entry(session, entry, {a.id: a for a in session.scalars(select(Account))}).deliveries
    sender = Sender(ledger)
    assert [sender.send(i).status for i in ids] == ["published"] * len(ids)
    if when.month != datetime.now(UTC).month:  # back-date the publication into the month exported
        with ledger.session() as session:
            for delivery_id in ids:
                repo.get_delivery(session, delivery_id).published_at = when


def test_retract_deletes_the_post_and_lists_what_to_delete_by_hand(city, sandbox):
    ledger = city["ledger"]
    _published_entry(ledger, "mistake", ["city-x", "city-line"])
    assert len(sandbox.posts("x")) == 1 and len(sandbox.posts("line")) == 1

    refused = dags_test(city["env"], "calendar_retract", conf={"entry_id": "mistake", "confirm": False})
    assert "not confirmed" in refused.stdout + refused.stderr
    assert len(sandbox.posts("x")) == 1

    run = dags_test(city["env"], "calendar_retract", conf={"entry_id": "mistake", "accounts": [], "confirm": True})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    assert sandbox.posts("x") == [] and len(sandbox.posts("line")) == 1  # LINE cannot delete a sent message
    with ledger.session(readonly=True) as session:
        assert session.get(CalendarEntry, "mistake").status == "cancelled"
    [mail] = [b for b in city["mailbox"].bodies() if "mistake" in b]
    assert "DELETE BY HAND" in mail and "city-line" in mail


def test_newsletter_export_writes_last_month_and_mails_the_editors(city):
    ledger = city["ledger"]
    _published_entry(
        ledger, "kiji-1", ["city-x"], channels=("social", "newsletter"), when=datetime(2026, 10, 20, 1, 0, tzinfo=UTC)
    )
    with ledger.session() as session:
        repo.upsert_entry(
            session,
            {
                "id": "kami-only",
                "origin": "calendar",
                "source": "cal.yaml",
                "source_line": 9,
                "title": "紙面だけの記事",
                "publish_at": datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
                "content_hash": "k",
                "payload": {"id": "kami-only", "text": "広報紙だけに載せる記事です。", "channels": ["newsletter"]},
            },
        )

    run = dags_test(city["env"], "newsletter_export", conf={"year": 2026, "month": 10})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]

    folder = Path(city["out"]) / "newsletter"
    xlsx = folder / "koho-newsletter-2026-10.xlsx"
    assert xlsx.exists() and (folder / "koho-newsletter-2026-10.csv").exists()
    text = (folder / "koho-newsletter-2026-10.csv").read_text(encoding="utf-8-sig")
    assert "kiji-1" in text and "広報紙だけに載せる記事です。" in text
    [mail] = [m for m in city["mailbox"].messages if "2026年10月" in str(m["Subject"])]
    assert mail["To"] == "koho@city.example.jp" and str(xlsx) in mail.get_body(("html",)).get_content()
