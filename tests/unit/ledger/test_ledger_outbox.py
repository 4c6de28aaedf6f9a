"""The outbox's state machine on SQLite and Postgres: one claim wins, sent stays sent, a failed
mail may be claimed again, a dead claim is taken over only by a later try or after staleness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from koho.ledger import outbox
from koho.ledger.db import Ledger
from koho.ledger.outbox import Claimant
from tests.unit.ledger.test_ledger_deliveries import WORKERS, race

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
MAIL = {
    "message_id": "review:2026Q4",
    "recipient": "koho@city.example.jp",
    "part": 0,
    "parts": 1,
    "subject": "評価レポート",
    "mail_message_id": "<koho.abc@city.example.jp>",
}


TASK_TRY_1 = Claimant("dag/run/task", 1)


def claim(session: Session, who: Claimant = TASK_TRY_1, **kwargs) -> outbox.OutboxClaim:
    return outbox.claim(session, **MAIL, claimant=who, **{"now": T0, **kwargs})


def test_concurrent_claims_of_one_mail_exactly_one_wins(ledger: Ledger) -> None:
    outcomes = race(ledger, lambda s: claim(s, Claimant(None, None)).go)
    assert sorted(outcomes) == [False] * (WORKERS - 1) + [True]


def test_sent_stays_sent_and_failed_may_be_claimed_again(session: Session) -> None:
    first = claim(session)
    assert first.go and first.attempts == 1
    assert outbox.mark_failed(session, first.row_id, 1, "SMTPRecipientsRefused: password=hunter22 rejected", now=T0)
    again = claim(session, now=T0 + timedelta(minutes=1))
    assert again.go and again.attempts == 2 and not again.maybe_sent_before
    assert not outbox.mark_sent(session, again.row_id, 1, now=T0)  # a stale attempt's record is refused
    assert outbox.mark_sent(session, again.row_id, 2, now=T0 + timedelta(minutes=1))

    done = claim(session, Claimant("dag/run/task", 5), now=T0 + timedelta(days=1))
    assert not done.go and done.status == "sent" and "already sent" in (done.reason or "")
    (row,) = outbox.mails_of(session, "review:2026Q4")
    assert row.sent_at == T0 + timedelta(minutes=1) and "hunter22" not in (row.last_error or "")


def test_a_dead_claim_is_taken_over_by_a_later_try_at_once_and_by_others_when_stale(session: Session) -> None:
    assert claim(session).go  # try 1 dies here
    other = claim(session, Claimant("dag/other-run/task", 1), now=T0 + timedelta(minutes=1))
    assert not other.go and other.status == "sending"
    same_try = claim(session, Claimant("dag/run/task", 1), now=T0 + timedelta(minutes=1))
    assert not same_try.go  # a try does not take over its own live claim

    later_try = claim(session, Claimant("dag/run/task", 2), now=T0 + timedelta(minutes=1))
    assert later_try.go and later_try.maybe_sent_before and later_try.attempts == 2

    stale = claim(
        session, Claimant("dag/other-run/task", 1), now=T0 + timedelta(minutes=2) + outbox.DEFAULT_STALE_AFTER
    )
    assert stale.go and stale.maybe_sent_before and stale.attempts == 3


def test_a_dead_claim_of_a_mail_that_must_not_be_resent_is_held(session: Session) -> None:
    assert claim(session).go
    held = claim(session, Claimant("dag/run/task", 2), resend_unknown=False)
    assert not held.go and held.status == "maybe_sent"
    assert not claim(session, Claimant("dag/run/task", 3)).go  # held until a person looks
