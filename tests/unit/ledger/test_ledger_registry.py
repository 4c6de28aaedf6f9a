"""Accounts, verification, calendar entries and alerts in the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from koho import secrets
from koho.ledger import accounts, alerts, entries
from koho.ledger.db import Ledger
from koho.ledger.errors import LedgerError, UnknownRecord
from koho.ledger.models import Account, Alert, CalendarEntry, EntryStatus
from tests.unit.ledger.ledger_factories import T0, account_row, entry_row

# --- accounts ---------------------------------------------------------------------------------


def test_upsert_creates_updates_and_leaves_alone(ledger: Ledger) -> None:
    with ledger.session() as s:
        result = accounts.upsert_accounts(s, [account_row("a"), account_row("b")], now=T0)
    assert (result.created, result.updated, result.unchanged) == (("a", "b"), (), ())

    later = T0 + timedelta(days=1)
    with ledger.session() as s:
        result = accounts.upsert_accounts(
            s,
            [account_row("a"), account_row("b", display_name="New name", settings={"daily_cap": 3})],
            now=later,
        )
    assert (result.created, result.updated, result.unchanged) == ((), ("b",), ("a",))
    with ledger.session(readonly=True) as s:
        a, b = s.get(Account, "a"), s.get(Account, "b")
        assert a.updated_at == T0 and b.updated_at == later and b.created_at == T0
        assert (b.display_name, b.settings, b.status, b.kind) == ("New name", {"daily_cap": 3}, "active", "general")


def test_upsert_ignores_representation_only_differences(session: Session) -> None:
    accounts.upsert_accounts(session, [account_row("a", settings={"quiet": (22, 7)})])
    result = accounts.upsert_accounts(session, [account_row("a", settings={"quiet": [22, 7]})])
    assert result.unchanged == ("a",)


def test_missing_accounts_are_kept_unless_retiring(ledger: Ledger) -> None:
    with ledger.session() as s:
        accounts.upsert_accounts(s, [account_row("a"), account_row("b")])
    with ledger.session() as s:
        assert accounts.upsert_accounts(s, [account_row("a")]).retired == ()
        assert s.get(Account, "b").status == "active"
    with ledger.session() as s:
        assert accounts.upsert_accounts(s, [account_row("a")], retire_missing=True).retired == ("b",)
        assert s.get(Account, "b").status == "retired"
    with ledger.session() as s:  # back in the registry: active again
        result = accounts.upsert_accounts(s, [account_row("a"), account_row("b")], retire_missing=True)
        assert result.updated == ("b",) and result.retired == ()
        assert s.get(Account, "b").status == "active"


def test_empty_registry_never_retires_everything(session: Session) -> None:
    accounts.upsert_accounts(session, [account_row("a")])
    with pytest.raises(LedgerError, match="refusing to retire every account"):
        accounts.upsert_accounts(session, [], retire_missing=True)


def test_invalid_rows_are_reported_and_the_rest_proceeds(session: Session) -> None:
    accounts.upsert_accounts(session, [account_row("broken")])
    result = accounts.upsert_accounts(
        session,
        [
            account_row("ok"),
            account_row("broken", kind="secret"),
            {"id": "half", "platform": "x"},
            account_row("weird", settings={"when": object()}),
        ],
        retire_missing=True,
    )
    assert result.created == ("ok",)
    messages = [str(p) for p in result.problems]
    assert any("account 'broken'" in m and "'kind'" in m for m in messages)
    assert any("account 'half'" in m and "'handle' is required" in m for m in messages)
    assert any("account 'weird'" in m and "not JSON" in m for m in messages)
    # "broken" is in the registry (just invalid): it must not be retired.
    assert result.retired == ()
    assert session.get(Account, "broken").status == "active"


def test_record_verification(session: Session) -> None:
    accounts.upsert_accounts(session, [account_row("a")])
    expires = T0 + timedelta(days=60)
    account = accounts.record_verification(session, "a", ok=True, token_expires_at=expires, now=T0)
    assert (account.last_verified_at, account.token_expires_at, account.verify_error) == (T0, expires, None)

    secrets.register("tok-very-secret-123")
    later = T0 + timedelta(hours=1)
    account = accounts.record_verification(session, "a", ok=False, error="401 for token tok-very-secret-123", now=later)
    assert account.last_verified_at == later
    assert account.token_expires_at == expires  # the last known expiry is kept
    assert "tok-very-secret-123" not in account.verify_error and "401" in account.verify_error

    with pytest.raises(UnknownRecord):
        accounts.record_verification(session, "nobody", ok=True)


# --- calendar entries -------------------------------------------------------------------------


def test_entry_revision_grows_with_the_content(session: Session) -> None:
    first = entries.upsert_entry(session, entry_row("e1"))
    assert (first.created, first.entry.revision, first.entry.status) == (True, 1, "planned")

    same = entries.upsert_entry(session, entry_row("e1"))
    assert (same.created, same.revised, same.changed) == (False, False, False)

    moved = entries.upsert_entry(session, entry_row("e1", source_line=40))
    assert (moved.revised, moved.changed, moved.entry.revision, moved.entry.source_line) == (False, True, 1, 40)

    edited = entries.upsert_entry(session, entry_row("e1", content_hash="h2", title="桜まつり（延期）"))
    assert (edited.revised, edited.entry.revision, edited.entry.title) == (True, 2, "桜まつり（延期）")


def test_entry_changed_after_publish_needs_a_person(session: Session) -> None:
    entries.upsert_entry(session, entry_row("e1", approval_required=True))
    assert session.get_one(CalendarEntry, "e1").status == "awaiting_approval"
    entries.set_entry_status(session, "e1", EntryStatus.PUBLISHED)
    result = entries.upsert_entry(session, entry_row("e1", approval_required=True, content_hash="h2"))
    assert result.entry.status == "changed_after_publish" and result.entry.revision == 2


def test_entry_input_errors(session: Session) -> None:
    with pytest.raises(LedgerError, match="lacks"):
        entries.upsert_entry(session, {"id": "e1"})
    with pytest.raises(LedgerError, match="origin"):
        entries.upsert_entry(session, entry_row("e1", origin="rumour"))


# --- alerts -----------------------------------------------------------------------------------


def test_alerts_are_raised_once(ledger: Ledger) -> None:
    with ledger.session() as s:
        accounts.upsert_accounts(s, [account_row("a")])
        alert = alerts.raise_alert(
            s, "token_expiring", "token_expiring:a:2026-05-01", "Token expires soon", {"days": 7}, "warning", "a"
        )
        assert alert is not None and alert.id and alert.kind == "token_expiring" and alert.detail == {"days": 7}
    with ledger.session() as s:
        again = alerts.raise_alert(
            s, "token_expiring", "token_expiring:a:2026-05-01", "Token expires soon", {}, "warning", "a"
        )
        assert again is None
        assert [a.dedup_key for a in s.scalars(select(Alert))] == ["token_expiring:a:2026-05-01"]


def test_pending_alerts_and_notification(session: Session) -> None:
    first = alerts.raise_alert(session, "flaming", "flaming:a:1", "Comment storm", severity="critical", now=T0)
    second = alerts.raise_alert(
        session, "config_error", "config:1", "accounts.yaml line 3", now=T0 + timedelta(seconds=1)
    )
    third = alerts.raise_alert(session, "review", "review:2026Q1", "Quarterly review ready", severity="info")
    assert [a.id for a in alerts.pending_alerts(session)] == [first.id, second.id, third.id]
    assert [a.id for a in alerts.pending_alerts(session, kinds=["flaming", "review"])] == [first.id, third.id]

    assert alerts.mark_notified(session, [first.id, second.id], now=T0) == 2
    assert first.notified_at == T0  # objects already loaded are brought up to date
    assert alerts.mark_notified(session, [first.id]) == 0
    assert alerts.mark_notified(session, []) == 0
    assert [a.id for a in alerts.pending_alerts(session)] == [third.id]

    assert alerts.resolve_alert(session, "review:2026Q1") is True
    assert alerts.resolve_alert(session, "review:2026Q1") is False
    assert alerts.pending_alerts(session) == []
    assert alerts.raise_alert(session, "review", "review:2026Q1", "again") is None  # resolved still dedups


def test_alert_text_is_redacted_and_values_checked(session: Session) -> None:
    secrets.register("tok-alert-secret-456")
    alert = alerts.raise_alert(
        session, "token_invalid", "k1", "Bearer tok-alert-secret-456 refused", {"body": ["tok-alert-secret-456"]}
    )
    assert "tok-alert-secret-456" not in alert.subject
    assert alert.detail == {"body": ["***"]}
    with pytest.raises(LedgerError, match="alert kind"):
        alerts.raise_alert(session, "gossip", "k2", "?")
    with pytest.raises(LedgerError, match="alert severity"):
        alerts.raise_alert(session, "review", "k3", "?", severity="meh")
