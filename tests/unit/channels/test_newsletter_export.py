"""The monthly newsletter export (the newsletter_export DAG's logic): last month's entries with the
newsletter channel that went out, plus newsletter-only entries, as a workbook and a CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from koho.channels.newsletter_export import export, newsletter_rows, previous_month, run_export
from koho.config import load_config
from koho.ledger import repo
from tests.unit.delivery.delivery_helpers import add_entry, plan


@pytest.fixture(scope="module")
def config():
    return load_config()


def test_the_newsletter_takes_last_months_newsletter_entries(ledger, config, tmp_path):
    assert previous_month(datetime(2027, 2, 28, 21, 0, tzinfo=UTC)) == (2027, 2)  # 06:00 JST on 1 March
    assert previous_month(datetime(2027, 1, 1, 0, 0, tzinfo=UTC)) == (2026, 12)
    with ledger.session() as session:
        repo.upsert_accounts(
            session, [{"id": "city-x", "platform": "x", "handle": "koho", "display_name": "X", "department": "pr"}]
        )
    jan = datetime(2027, 1, 20, 1, 0, tzinfo=UTC)
    add_entry(
        ledger,
        "with-newsletter",
        accounts=["city-x"],
        text="広報紙にも載せます。",
        due=jan,
        channels=["social", "newsletter"],
        category="くらし",
    )
    add_entry(ledger, "social-only", accounts=["city-x"], text="SNSだけです。", due=jan)
    add_entry(ledger, "paper-only", accounts=[], text="広報紙だけの記事です。", due=jan, channels=["newsletter"])
    for entry_id in ("with-newsletter", "social-only"):
        [delivery_id] = plan(ledger, entry_id).deliveries
        with ledger.session() as session:
            repo.claim_for_sending(session, delivery_id, "r1")
            repo.mark_published(
                session, delivery_id, f"id-{entry_id}", f"https://x.com/koho/status/{entry_id}", published_at=jan
            )

    with ledger.session(readonly=True) as session:
        rows = newsletter_rows(session, 2027, 1)
    assert [r["entry_id"] for r in rows] == ["paper-only", "with-newsletter"]

    policy = config.policy.model_copy(
        update={
            "channels": config.policy.channels.model_copy(
                update={
                    "newsletter": config.policy.channels.newsletter.model_copy(
                        update={"output_dir": str(tmp_path / "nl")}
                    )
                }
            )
        }
    )
    local = type(config)(config.accounts, config.departments, policy, [])
    result = export(ledger, local, 2027, 1)
    assert result["items"] == 2 and Path(result["xlsx"]).exists() and Path(result["csv"]).exists()
    assert "広報紙だけの記事です。" in Path(result["csv"]).read_text(encoding="utf-8-sig")


def test_the_task_exports_the_month_before_the_run_or_the_one_asked_and_mails_the_editors(
    ledger, tmp_path, monkeypatch, mailbox
):
    from tests.conftest import smtp_connection
    from tests.unit.calendar.calendar_helpers import write_config

    box, port = mailbox
    smtp_connection(monkeypatch, port)

    city = write_config(tmp_path / "config")
    city = type(city)(
        city.accounts,
        city.departments,
        city.policy.model_copy(
            update={
                "channels": city.policy.channels.model_copy(
                    update={
                        "newsletter": city.policy.channels.newsletter.model_copy(update={"output_dir": str(tmp_path)})
                    }
                )
            }
        ),
        [],
    )
    add_entry(
        ledger,
        "paper",
        accounts=[],
        text="広報紙の記事。",
        due=datetime(2027, 1, 20, 1, 0, tzinfo=UTC),
        channels=["newsletter"],
    )

    ran = run_export({}, datetime(2027, 1, 31, 21, 0, tzinfo=UTC), ledger=ledger, config=city)  # 06:00 JST 1 Feb
    asked = run_export({"year": 2026, "month": 12}, None, ledger=ledger, config=city)

    assert (ran["year"], ran["month"], ran["entries"]) == (2027, 1, ["paper"])
    assert (asked["year"], asked["month"], asked["items"]) == (2026, 12, 0)
    assert ran["mailed"] and asked["mailed"]
    assert [m["To"] for m in box.messages] == ["koho@city.example.jp"] * 2
    assert "2027年1月" in str(box.messages[0]["Subject"])
