"""Run a reader over accounts: cursor from the ledger, read, store, move the cursor; one report each.

One account's failure (an expired token, a rate limit, a quota used up, a bug in a hook) is its own
line in the result and never stops the others. The records and the new cursor are committed in one
ledger transaction, so a run that dies between them reads the same items again next time rather
than losing them (feedback is stored once by platform id).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy.orm import Session

from koho import secrets
from koho.collection.quota import QuotaMeter, QuotaUse
from koho.collection.readers import AccountRef, Batch, Reader
from koho.config.schema import ReadQuotaConfig
from koho.ledger import repo
from koho.ledger.db import Ledger
from koho.platforms.errors import PlatformError
from koho.platforms.registry import hook_for

log = logging.getLogger(__name__)

#: ``store(session, account, records)``: keeps a batch's records in the ledger session that also
#: moves the cursor. The read-side features (metrics, feedback) bring their own.
Store = Callable[[Session, AccountRef, list[Any]], None]
HookFactory = Callable[..., Any]
#: The longest a read waits for a rate-limit window in-process. A reset further away is the
#: account's error for this run (Airflow retries a mapped task later): a long wait would hold the
#: other accounts of a loop, or a ``koho_collect`` pool slot.
MAX_WAIT_SECONDS = 30.0


def collection_hook(platform: str, conn_id: str) -> Any:
    """A hook for reading: the platform's own, with waits capped at :data:`MAX_WAIT_SECONDS`."""
    from koho.platforms.base import RetryPolicy  # imports Airflow's HTTP provider: only when reading

    return hook_for(platform, conn_id, retry=RetryPolicy(max_wait=MAX_WAIT_SECONDS))


@dataclass
class AccountRead:
    """What collection did for one account; JSON-safe (records are not in :meth:`as_dict`)."""

    account_id: str
    platform: str
    stream: str
    read: int = 0
    complete: bool = False
    cursor: str | None = None
    error: str | None = None  # the read failed: nothing stored, cursor unchanged
    stopped: str | None = None  # the read ended early: what was read is stored, the rest comes next run
    skipped: list[str] = field(default_factory=list)
    quota: QuotaUse | None = None
    records: list[Any] = field(default_factory=list, repr=False)
    exception: BaseException | None = field(default=None, repr=False)  # what ``error`` says, for operators

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("records", "exception")}
        data["skipped"] = list(self.skipped)
        data["quota"] = self.quota.as_dict() if self.quota else None
        return data


@dataclass
class CollectionResult:
    stream: str
    accounts: list[AccountRead]

    @property
    def failed(self) -> list[AccountRead]:
        return [a for a in self.accounts if a.error]

    def units_used(self) -> dict[str, int]:
        """Quota units used per platform in this run (a platform-wide quota counts once per read)."""
        used: dict[str, int] = {}
        for account in self.accounts:
            if account.quota:
                used[account.platform] = used.get(account.platform, 0) + account.quota.units
        return used

    def cost_usd(self) -> float:
        """The estimated price of the run's paid reads."""
        return round(sum(a.quota.cost_usd or 0 for a in self.accounts if a.quota), 6)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "accounts": [a.as_dict() for a in self.accounts],
            "units_used": self.units_used(),
            "cost_usd": self.cost_usd(),
            "failed": [a.account_id for a in self.failed],
        }


def collect_account(
    ledger: Ledger | None,
    account: AccountRef,
    reader: Reader,
    *,
    hook: Any,
    quota: ReadQuotaConfig | None = None,
    store: Store | None = None,
    cursor: str | None = None,
) -> AccountRead:
    """Read one account. With a ``ledger`` the cursor comes from it and moves in it (with ``store``);
    without one, ``cursor`` is used and the new one is only returned."""
    result = AccountRead(account.id, account.platform, reader.stream)
    meter = QuotaMeter(account.platform, account.conn_id, quota, account=account.id)
    try:
        if ledger is not None:
            with ledger.session(readonly=True) as session:
                cursor = repo.get_cursor(session, account.id, reader.stream)
        batch: Batch = reader.read(account, hook, cursor, meter)
        if ledger is not None:
            with ledger.session() as session:
                if store is not None:
                    store(session, account, batch.records)
                if batch.cursor is not None:
                    repo.set_cursor(session, account.id, reader.stream, batch.cursor)
    except PlatformError as exc:
        result.error, result.exception = f"account {account.id}: {exc}", exc
    except Exception as exc:  # a bug in one hook or store must not stop the other accounts
        log.exception("collecting %s for account %s failed", reader.stream, account.id)
        result.error = f"account {account.id}: {type(exc).__name__}: {secrets.redact(str(exc))}"
        result.exception = exc
    else:
        result.records, result.read, result.cursor = batch.records, len(batch.records), batch.cursor
        result.complete, result.stopped, result.skipped = batch.complete, batch.stopped, batch.skipped
        if batch.stopped:
            result.stopped = f"account {account.id}: {batch.stopped}"
    result.quota = meter.use()
    return result


def collect(
    ledger: Ledger | None,
    accounts: Iterable[AccountRef],
    reader: Reader,
    *,
    hook_factory: HookFactory = collection_hook,
    quotas: Mapping[str, ReadQuotaConfig] | None = None,
    store: Store | None = None,
) -> CollectionResult:
    """:func:`collect_account` for each account, in turn; the result has one line per account."""
    quotas = quotas or {}
    reads = []
    for account in accounts:
        try:
            hook = hook_factory(account.platform, account.conn_id)
        except Exception as exc:  # an unknown platform or a broken connection is this account's problem
            read = AccountRead(account.id, account.platform, reader.stream)
            read.error = f"account {account.id}: no hook for platform '{account.platform}': {exc}"
            reads.append(read)
            continue
        reads.append(
            collect_account(ledger, account, reader, hook=hook, quota=quotas.get(account.platform), store=store)
        )
    return CollectionResult(reader.stream, reads)
