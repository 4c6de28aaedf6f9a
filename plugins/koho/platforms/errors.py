"""The error taxonomy shared by every platform.

Retries, waiting and reconciliation are driven by these classes, never by matching message
strings in DAGs. Each platform hook maps its own error bodies (problem JSON, Graph API error
codes, XRPC error names, ...) onto exactly one of them in ``classify_error``.

Messages never contain tokens: hooks build them from the platform's error text, which the
base hook passes through :func:`koho.secrets.redact` first.
"""

from __future__ import annotations

from datetime import UTC, datetime

from koho.errors import KohoError


class PlatformError(KohoError):
    """A platform refused or failed a request."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        platform: str,
        account: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        self.platform = platform
        self.account = account
        self.status = status
        self.code = code
        where = f"{platform}" + (f" account '{account}'" if account else "")
        detail = f" (HTTP {status}" + (f", {code}" if code else "") + ")" if status else ""
        super().__init__(f"{where}: {message}{detail}")
        self.reason = message


class RateLimited(PlatformError):
    """The platform said to slow down; ``reset_at`` is when its window reopens (UTC)."""

    retryable = True

    def __init__(self, message: str, *, reset_at: datetime | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.reset_at = reset_at

    def seconds_to_wait(self, now: datetime | None = None) -> float | None:
        if self.reset_at is None:
            return None
        now = now or datetime.now(UTC)
        return max(0.0, (self.reset_at - now).total_seconds())


class TransientError(PlatformError):
    """A failure that did not apply the request (e.g. a 5xx on a read); trying again is safe."""

    retryable = True


class AuthExpired(PlatformError):
    """The token is expired or revoked; a person must renew the connection (or the hook refreshes)."""


class PermanentlyRejected(PlatformError):
    """The platform will never accept this request as it is.

    ``kind`` says why so that people get an actionable reason: ``duplicate``, ``too_long``,
    ``bad_media``, ``forbidden``, ``not_found`` or ``invalid``.
    """

    def __init__(self, message: str, *, kind: str = "invalid", **kw) -> None:
        super().__init__(message, **kw)
        self.kind = kind


class UnknownOutcome(PlatformError):
    """A write timed out or failed after being sent: it may have been applied.

    Never publish again on this error without reconciling first (see
    :meth:`koho.platforms.base.PlatformHook.publish_once`). ``in_flight`` says the platform never
    answered (a timeout, a dropped connection): the request may still be applied after this
    error, so reading the account at once proves nothing. A 5xx answer is not in flight.
    """

    retryable = True

    def __init__(self, message: str, *, in_flight: bool = False, **kw) -> None:
        super().__init__(message, **kw)
        self.in_flight = in_flight


class NotSupported(PlatformError):
    """The platform's API does not offer this operation (e.g. deleting a LINE message)."""
