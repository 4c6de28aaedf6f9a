"""The mail outbox: exactly-once sending per (message id, recipient, part).

The caller owns the transaction; nothing here commits. The state machine, one conditional
``UPDATE ... WHERE status = <expected>`` per transition (the database decides who wins a race):

* (none) -> ``sending``: :func:`claim` inserts the row (exactly one caller wins the insert)
* ``failed`` -> ``sending``: :func:`claim` again (the last try surely did not send)
* ``sending`` (dead claimant) -> ``sending`` with ``maybe_sent_before``: :func:`claim`, when the
  claim is older than ``stale_after`` or was made by an earlier try of the same task
* ``sending`` (dead claimant) -> ``maybe_sent``: the same, for messages that must not be resent
* ``sending`` -> ``sent``: :func:`mark_sent`; ``sending`` -> ``failed``: :func:`mark_failed`

A claimant is dead when its claim is stale, or when a later try of the same Airflow task asks:
Airflow never runs two tries of one task instance at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from koho import secrets
from koho.ledger.models import OutboxMail, OutboxStatus, utcnow

#: Longer than any SMTP transaction with the provider's retries (timeouts are seconds).
DEFAULT_STALE_AFTER = timedelta(minutes=10)
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Claimant:
    """Who claims: an Airflow task instance (``dag/run/task``) and its try number."""

    name: str | None = None
    try_number: int | None = None


@dataclass(frozen=True)
class OutboxClaim:
    """The answer to a claim: ``go`` means send now; otherwise ``reason`` says why not."""

    go: bool
    row_id: int
    attempts: int
    status: str
    maybe_sent_before: bool = False
    reason: str | None = None


def claim(
    session: Session,
    *,
    message_id: str,
    recipient: str,
    part: int,
    parts: int,
    subject: str,
    mail_message_id: str,
    claimant: Claimant = Claimant(),
    resend_unknown: bool = True,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    now: datetime | None = None,
) -> OutboxClaim:
    """Take the right to send one mail; exactly one concurrent caller gets ``go``.

    Commit right after claiming (before the SMTP call): the claim is what a retry must see.
    """
    now = now or utcnow()  # a naive 'now' is refused by the UTC column type
    held = {"claimed_by": claimant.name, "claimed_try": claimant.try_number, "claimed_at": now, "updated_at": now}
    try:
        with session.begin_nested():
            session.add(
                OutboxMail(
                    message_id=message_id,
                    recipient=recipient,
                    part=part,
                    parts=parts,
                    subject=subject,
                    mail_message_id=mail_message_id,
                    status=OutboxStatus.SENDING.value,
                    attempts=1,
                    maybe_sent_before=False,
                    created_at=now,
                    **held,
                )
            )
    except IntegrityError:
        pass
    else:
        row = _row(session, message_id, recipient, part)
        return OutboxClaim(True, row.id, row.attempts, row.status)

    table = OutboxMail.__table__
    key = and_(table.c.message_id == message_id, table.c.recipient == recipient, table.c.part == part)
    again = {**held, "status": OutboxStatus.SENDING.value, "attempts": table.c.attempts + 1}
    if session.execute(update(table).where(key, table.c.status == OutboxStatus.FAILED.value).values(**again)).rowcount:
        row = _row(session, message_id, recipient, part)
        return OutboxClaim(True, row.id, row.attempts, row.status)

    dead = or_(table.c.claimed_at.is_(None), table.c.claimed_at < now - stale_after)
    if claimant.name is not None and claimant.try_number is not None:
        dead = or_(dead, and_(table.c.claimed_by == claimant.name, table.c.claimed_try < claimant.try_number))
    unknown = update(table).where(key, table.c.status == OutboxStatus.SENDING.value, dead)
    if resend_unknown:
        if session.execute(unknown.values(**again, maybe_sent_before=True)).rowcount:
            row = _row(session, message_id, recipient, part)
            return OutboxClaim(True, row.id, row.attempts, row.status, maybe_sent_before=True)
    elif session.execute(unknown.values(status=OutboxStatus.MAYBE_SENT.value, updated_at=now)).rowcount:
        row = _row(session, message_id, recipient, part)
        return OutboxClaim(False, row.id, row.attempts, row.status, reason=_refusal(row))

    row = _row(session, message_id, recipient, part)
    return OutboxClaim(False, row.id, row.attempts, row.status, row.maybe_sent_before, _refusal(row))


def mark_sent(session: Session, row_id: int, attempts: int, *, now: datetime | None = None) -> bool:
    """The relay accepted the mail: ``sending`` -> ``sent`` if this attempt's claim still holds."""
    now = now or utcnow()  # a naive 'now' is refused by the UTC column type
    table = OutboxMail.__table__
    statement = update(table).where(
        table.c.id == row_id, table.c.status == OutboxStatus.SENDING.value, table.c.attempts == attempts
    )
    return session.execute(statement.values(status=OutboxStatus.SENT.value, sent_at=now, updated_at=now)).rowcount == 1


def mark_failed(session: Session, row_id: int, attempts: int, error: str, *, now: datetime | None = None) -> bool:
    """The relay refused or could not be reached: the mail surely was not sent; a later try may."""
    now = now or utcnow()  # a naive 'now' is refused by the UTC column type
    table = OutboxMail.__table__
    statement = update(table).where(
        table.c.id == row_id, table.c.status == OutboxStatus.SENDING.value, table.c.attempts == attempts
    )
    error = secrets.redact(error)[:MAX_ERROR_CHARS]
    values = {"status": OutboxStatus.FAILED.value, "last_error": error, "updated_at": now}
    return session.execute(statement.values(**values)).rowcount == 1


def mails_of(session: Session, message_id: str) -> list[OutboxMail]:
    """Every outbox row of a message, by recipient and part (for reports and checks)."""
    query = select(OutboxMail).where(OutboxMail.message_id == message_id)
    return list(session.scalars(query.order_by(OutboxMail.recipient, OutboxMail.part)))


def _row(session: Session, message_id: str, recipient: str, part: int) -> OutboxMail:
    query = select(OutboxMail).where(
        OutboxMail.message_id == message_id, OutboxMail.recipient == recipient, OutboxMail.part == part
    )
    return session.scalars(query.execution_options(populate_existing=True)).one()


def _refusal(row: OutboxMail) -> str:
    if row.status == OutboxStatus.SENT.value:
        return f"already sent at {row.sent_at:%Y-%m-%d %H:%M:%S} UTC"
    if row.status == OutboxStatus.MAYBE_SENT.value:
        return "the last attempt died after handing the mail to the relay, or just before; not resent"
    return f"being sent by {row.claimed_by or 'another worker'} since {row.claimed_at:%H:%M:%S} UTC"
