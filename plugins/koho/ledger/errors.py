"""What the ledger raises when it refuses an operation."""

from __future__ import annotations

from koho.errors import KohoError


class LedgerError(KohoError):
    """The ledger refused an operation (unknown record, impossible transition)."""


class UnknownRecord(LedgerError):
    """An id given to the ledger does not exist."""


class DuplicatePublish(LedgerError):
    """A delivery already recorded as published was reported published again under another id.

    That means the post exists twice on the platform: a person must delete one.
    """

    def __init__(self, delivery_id: int, recorded: str | None, reported: str):
        self.delivery_id = delivery_id
        self.recorded = recorded
        self.reported = reported
        super().__init__(
            f"delivery {delivery_id} is already published as {recorded!r} but was reported "
            f"published again as {reported!r}: the post probably exists twice"
        )


__all__ = ["DuplicatePublish", "LedgerError", "UnknownRecord"]
