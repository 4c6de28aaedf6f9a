"""Transitional: the ledger's public functions under their old flat names.

New code imports the aggregate modules (``from koho.ledger import deliveries`` ...); this module
only re-exports them so that code written against ``repo.X`` keeps working until it moves.
"""

from __future__ import annotations

from koho.ledger._base import MAX_ERROR_CHARS
from koho.ledger.accounts import UpsertResult, record_verification, upsert_accounts
from koho.ledger.alerts import mark_notified, pending_alerts, raise_alert, resolve_alert
from koho.ledger.cursors import get_cursor, set_cursor
from koho.ledger.deliveries import (
    DEFAULT_STALE_AFTER,
    IDEMPOTENCY_NAMESPACE,
    CancelResult,
    Claim,
    PlanResult,
    approve_deliveries,
    cancel_deliveries,
    claim_for_sending,
    due_deliveries,
    get_delivery,
    idempotency_key,
    mark_failed,
    mark_needs_attention,
    mark_published,
    plan_delivery,
    renew_claim,
    reschedule_delivery,
    stale_sending,
)
from koho.ledger.entries import EntryResult, refresh_entry_status, set_entry_status, upsert_entry
from koho.ledger.errors import DuplicatePublish, LedgerError, UnknownRecord
from koho.ledger.feedback import add_feedback, feedback_for_digest, mark_digest_sent
from koho.ledger.metrics import add_account_metrics, add_post_metrics

__all__ = [
    "DEFAULT_STALE_AFTER",
    "IDEMPOTENCY_NAMESPACE",
    "MAX_ERROR_CHARS",
    "CancelResult",
    "Claim",
    "DuplicatePublish",
    "EntryResult",
    "LedgerError",
    "PlanResult",
    "UnknownRecord",
    "UpsertResult",
    "add_account_metrics",
    "add_feedback",
    "add_post_metrics",
    "approve_deliveries",
    "cancel_deliveries",
    "claim_for_sending",
    "due_deliveries",
    "feedback_for_digest",
    "get_cursor",
    "get_delivery",
    "idempotency_key",
    "mark_digest_sent",
    "mark_failed",
    "mark_needs_attention",
    "mark_notified",
    "mark_published",
    "pending_alerts",
    "plan_delivery",
    "raise_alert",
    "record_verification",
    "refresh_entry_status",
    "renew_claim",
    "reschedule_delivery",
    "resolve_alert",
    "set_cursor",
    "set_entry_status",
    "stale_sending",
    "upsert_accounts",
    "upsert_entry",
]
