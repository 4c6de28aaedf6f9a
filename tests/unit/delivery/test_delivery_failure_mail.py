"""A failed delivery reaches people: an alert and a mail to the PR section with the reason and
what to do, through the SMTP provider to a real SMTP server — and only once per delivery."""

from __future__ import annotations

from sqlalchemy import select

from koho.delivery.tasks import report_outcomes
from koho.ledger.models import Alert, Delivery
from tests.conftest import smtp_connection
from tests.unit.delivery.delivery_helpers import add_entry, plan
from tests.unit.delivery.test_delivery_sender import TEXT, sender

PR = ["koho@city.example.jp"]


def test_a_failed_delivery_is_mailed_once_with_its_reason_and_advice(ledger, sandbox, city, mailbox, monkeypatch):
    box, port = mailbox
    smtp_connection(monkeypatch, port)
    city("city-x", "x")
    city("city-mastodon", "mastodon")
    add_entry(ledger, "gomi", accounts=["city-x", "city-mastodon"], text=TEXT)
    plan(ledger, "gomi")
    sandbox.fault("x", "duplicate", operation="publish")
    with ledger.session(readonly=True) as session:
        ids = {d.account_id: d.id for d in session.scalars(select(Delivery).where(Delivery.entry_id == "gomi"))}
    outcomes = [sender(ledger).send(ids[a]).as_dict() for a in ("city-x", "city-mastodon")]
    assert [o["status"] for o in outcomes] == ["failed", "published"]

    summary = report_outcomes(ledger, outcomes, to=PR, city_name="こほ市")

    assert summary["published"] == 1 and summary["failed"] == 1 and summary["mailed"] == 1
    [message] = box.messages
    assert message["To"] == PR[0] and "1 critical" in str(message["Subject"])
    body = box.bodies()[0]
    assert "city-x" in body and "gomi" in body and "city-mastodon" not in body
    with ledger.session(readonly=True) as session:
        reason = session.get(Delivery, ids["city-x"]).last_error
    assert "already posted" in reason and "check the account" in reason  # the platform's reason + advice
    assert "check the account" in body
    with ledger.session(readonly=True) as session:
        [alert] = session.scalars(select(Alert).where(Alert.kind == "delivery_failed"))
        assert alert.severity == "critical" and alert.account_id == "city-x" and alert.notified_at is not None

    again = report_outcomes(ledger, outcomes, to=PR, city_name="こほ市")  # the next publishing run

    assert again["mailed"] == 0 and len(box.messages) == 1
