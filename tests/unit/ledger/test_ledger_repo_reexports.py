"""``koho.ledger.repo`` keeps the old flat names working while code moves to the aggregate modules."""

from __future__ import annotations

import importlib
import inspect

from koho.ledger import repo

#: Every name code outside the ledger used from ``repo`` before the split.
OLD_NAMES = (
    "DEFAULT_STALE_AFTER CancelResult Claim DuplicatePublish EntryResult LedgerError PlanResult UnknownRecord "
    "UpsertResult add_account_metrics add_feedback add_post_metrics approve_deliveries cancel_deliveries "
    "claim_for_sending due_deliveries feedback_for_digest get_cursor get_delivery idempotency_key "
    "mark_digest_sent mark_failed mark_needs_attention mark_notified mark_published pending_alerts plan_delivery "
    "raise_alert record_verification refresh_entry_status renew_claim reschedule_delivery resolve_alert set_cursor "
    "set_entry_status stale_sending upsert_accounts upsert_entry"
).split()


def test_every_old_name_is_the_aggregate_modules_own() -> None:
    assert set(OLD_NAMES) <= set(repo.__all__)
    for name in repo.__all__:
        obj = getattr(repo, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):  # a constant: the aggregate module's value
            assert any(getattr(importlib.import_module(m), name, None) == obj for m in _aggregates()), name
            continue
        home = obj.__module__
        assert home.startswith("koho.ledger.") and home != "koho.ledger.repo", (name, home)
        assert getattr(importlib.import_module(home), obj.__name__) is obj


def _aggregates() -> list[str]:
    return [f"koho.ledger.{m}" for m in ("_base", "deliveries", "entries", "accounts", "alerts")]
