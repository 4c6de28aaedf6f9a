"""Alerts through the notifier: deduplicated when raised, one mail per recipient, and a crash
between the mail and the ``notified`` mark does not mail the same alerts again."""

from __future__ import annotations

import pytest

from koho.ledger import alerts as ledger_alerts
from koho.notify import AlertSpec, notify_pending, record_alerts

TO = ["kiki@city.example.jp", "koho@city.example.jp"]


def spec(n: int) -> AlertSpec:
    return AlertSpec(
        kind="token_invalid",
        dedup_key=f"token_invalid:city-x:{n}",
        subject=f"city-x: credentials do not work ({n})",
        severity="critical",
        account_id=None,
        detail={"reason": "401 <b>expired</b>"},
    )


def test_alerts_are_recorded_once_and_mailed_to_each_recipient_once(ledger, smtp):
    with ledger.session() as session:
        assert record_alerts(session, [spec(1), spec(2)]) == 2
        assert record_alerts(session, [spec(1)]) == 0  # deduplicated

    assert notify_pending(ledger, to=TO, city_name="テスト市") == 2
    assert notify_pending(ledger, to=TO, city_name="テスト市") == 0

    assert [m["To"] for m in smtp.messages] == TO
    assert str(smtp.messages[0]["Subject"]) == "[Koho] テスト市: 2 alert(s), 2 critical"
    html = smtp.messages[0].get_body(("html",)).get_content()
    assert "city-x: credentials do not work (2)" in html and "&lt;b&gt;expired" in html
    assert "credentials do not work (2)" in smtp.messages[0].get_body(("plain",)).get_content()


def test_a_crash_before_the_notified_mark_does_not_mail_the_alerts_again(ledger, smtp, monkeypatch):
    with ledger.session() as session:
        record_alerts(session, [spec(1)])
    monkeypatch.setattr(ledger_alerts, "mark_notified", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        notify_pending(ledger, to=TO, city_name="テスト市")
    assert len(smtp.messages) == 2
    monkeypatch.undo()
    from tests.conftest import smtp_connection

    smtp_connection(monkeypatch, smtp.port)

    assert notify_pending(ledger, to=TO, city_name="テスト市") == 1  # marked now, mailed before
    assert len(smtp.messages) == 2
    with ledger.session(readonly=True) as session:
        assert ledger_alerts.pending_alerts(session) == []
