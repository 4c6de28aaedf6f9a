"""The account registry's daily check: load it, mirror it into the ledger, verify every token.

A city notices an expired token when a post fails at 9:00 on a holiday; this check exists so
that the PR section hears about it days earlier, by mail, with the account named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from koho.config.loader import KohoConfig
from koho.errors import Problem
from koho.notify.alerts import AlertSpec
from koho.platforms.errors import AuthExpired, NotSupported, PlatformError
from koho.timeutil import utcnow


def registry_rows(config: KohoConfig) -> list[dict[str, Any]]:
    """The registry as JSON-safe rows (XCom, ledger): caps already merged with the policy's."""
    rows = []
    for account in config.accounts:
        caps = config.caps_for(account)
        rows.append(
            {
                "id": account.id,
                "platform": account.platform,
                "handle": account.handle,
                "display_name": account.name,
                "kind": account.kind,
                "topic": account.topic,
                "department": account.department,
                "status": account.status,
                "connection_id": account.connection_id,
                "settings": {
                    "per_day": caps.per_day,
                    "min_spacing_minutes": caps.min_spacing_minutes,
                    "quiet_hours": str(caps.quiet_hours) if caps.quiet_hours else None,
                    "staff_hours_per_post": account.staff_hours_per_post,
                    "url": str(account.url) if account.url else None,
                    "description": account.description,
                    "started_on": account.started_on.isoformat() if account.started_on else None,
                },
            }
        )
    return rows


@dataclass
class Verification:
    """What verifying one account's credentials found; JSON-safe for XCom (no secrets in it)."""

    account_id: str
    platform: str
    ok: bool
    handle_seen: str | None = None
    token_expires_at: str | None = None  # ISO 8601, UTC
    error: str | None = None
    error_kind: str | None = None  # "auth", "platform", "connection", "mismatch"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same_handle(configured: str, seen: str) -> bool:
    def norm(handle: str) -> str:
        return handle.lstrip("@").split("@")[0].lower()

    return norm(configured) == norm(seen)


def verify_account(row: dict[str, Any], hook_factory: Callable[[str, str], Any]) -> Verification:
    """Ask the platform who the token belongs to. Never raises for a platform's answer: it reports it."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    base = {"account_id": row["id"], "platform": row["platform"]}
    try:
        hook = hook_factory(row["platform"], row["connection_id"])
        info = hook.verify_credentials()
    except AirflowNotFoundException:
        return Verification(
            **base,
            ok=False,
            error_kind="connection",
            error=f"Airflow connection '{row['connection_id']}' is not defined",
        )
    except NotSupported as exc:
        return Verification(**base, ok=True, error=str(exc))
    except AuthExpired as exc:
        return Verification(**base, ok=False, error_kind="auth", error=str(exc))
    except PlatformError as exc:
        return Verification(**base, ok=False, error_kind="platform", error=str(exc))
    expires = info.token_expires_at.isoformat() if info.token_expires_at else None
    if not _same_handle(row["handle"], info.handle):
        return Verification(
            **base,
            ok=False,
            handle_seen=info.handle,
            token_expires_at=expires,
            error_kind="mismatch",
            error=f"the token belongs to '{info.handle}', but the registry says '{row['handle']}'",
        )
    return Verification(**base, ok=True, handle_seen=info.handle, token_expires_at=expires)


def verification_alerts(
    results: Iterable[Verification], *, warning_days: int, now: datetime | None = None
) -> list[AlertSpec]:
    """Alerts for invalid tokens and tokens expiring within ``warning_days``.

    Dedup keys carry the day (invalid) or the expiry date (expiring) so a person is reminded
    once a day about a broken account, and once per token about an upcoming expiry.
    """
    now = now or utcnow()
    alerts = []
    for result in results:
        if not result.ok:
            alerts.append(
                AlertSpec(
                    kind="token_invalid",
                    dedup_key=f"token_invalid:{result.account_id}:{now.date().isoformat()}",
                    subject=f"{result.account_id}: credentials do not work",
                    severity="critical",
                    account_id=result.account_id,
                    detail={"platform": result.platform, "reason": result.error, "kind": result.error_kind},
                )
            )
            continue
        if result.token_expires_at:
            expires = datetime.fromisoformat(result.token_expires_at)
            if expires - now <= timedelta(days=warning_days):
                days = max(0, (expires - now).days)
                alerts.append(
                    AlertSpec(
                        kind="token_expiring",
                        dedup_key=f"token_expiring:{result.account_id}:{expires.date().isoformat()}",
                        subject=f"{result.account_id}: token expires in {days} day(s)",
                        severity="warning",
                        account_id=result.account_id,
                        detail={"platform": result.platform, "expires_at": result.token_expires_at},
                    )
                )
    return alerts


def config_alert(problems: list[Problem]) -> AlertSpec | None:
    if not problems:
        return None
    text = "\n".join(str(p) for p in problems)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return AlertSpec(
        kind="config_error",
        dedup_key=f"config_error:{digest}",
        subject=f"{len(problems)} problem(s) in include/config",
        severity="warning",
        detail={"problems": [str(p) for p in problems]},
    )
