"""Task bodies of ``accounts_sync``: glue between Airflow's task context and the account logic."""

from __future__ import annotations

import logging
from datetime import datetime

from airflow.sdk.exceptions import AirflowFailException

from koho.accounts.sync import config_alert, registry_rows, verification_alerts, verify_account
from koho.config import load_config
from koho.ledger import accounts as ledger_accounts
from koho.ledger.db import Ledger
from koho.notify import city_name, notify_pending, record_alerts
from koho.platforms.registry import hook_for

log = logging.getLogger(__name__)


def load_registry() -> dict:
    config = load_config()
    for problem in config.problems:
        log.error("config problem: %s", problem)
    policy = config.policy
    return {
        "accounts": registry_rows(config),
        "problems": [str(p) for p in config.problems],
        "warning_days": policy.token_expiry_warning_days if policy else 14,
        "pr_email": config.pr_email(),
        "city_name": city_name(config),
    }


def upsert_accounts(registry: dict) -> list[dict]:
    ledger = Ledger.from_airflow()
    ledger.migrate()
    with ledger.session() as session:
        result = ledger_accounts.upsert_accounts(session, registry["accounts"])
    log.info("registry mirrored into the ledger: %s", result)
    return [row for row in registry["accounts"] if row["status"] == "active"]


def verify_credentials(account: dict) -> dict:
    result = verify_account(account, hook_for)
    ledger = Ledger.from_airflow()
    with ledger.session() as session:
        expires = datetime.fromisoformat(result.token_expires_at) if result.token_expires_at else None
        ledger_accounts.record_verification(
            session, account["id"], ok=result.ok, token_expires_at=expires, error=result.error
        )
    if result.ok:
        log.info("%s: credentials valid (token expires: %s)", account["id"], result.token_expires_at or "never said")
    else:
        log.warning("%s: %s", account["id"], result.error)
    return result.as_dict()


def report(registry: dict, results: list[dict] | None) -> dict:
    from koho.accounts.sync import Verification
    from koho.errors import Problem, Where

    verifications = [Verification(**r) for r in (results or []) if r]
    specs = verification_alerts(verifications, warning_days=registry["warning_days"])
    problems = [Problem(Where(), text) for text in registry["problems"]]
    if (spec := config_alert(problems)) is not None:
        specs.append(spec)
    ledger = Ledger.from_airflow()
    with ledger.session() as session:
        new = record_alerts(session, specs)
    mailed = 0
    if registry.get("pr_email"):
        mailed = notify_pending(
            ledger,
            to=[registry["pr_email"]],
            city_name=registry["city_name"],
            kinds=["token_invalid", "token_expiring", "config_error"],
        )
    else:
        log.error("no PR section mail address (policy.pr_department in departments.yaml); alerts stay in the ledger")
    summary = {
        "verified": sum(1 for v in verifications if v.ok),
        "failed": [v.account_id for v in verifications if not v.ok],
        "new_alerts": new,
        "mailed": mailed,
        "config_problems": len(problems),
    }
    log.info("accounts_sync summary: %s", summary)
    if problems:
        raise AirflowFailException(
            f"{len(problems)} configuration problem(s); valid accounts were synced:\n" + "\n".join(registry["problems"])
        )
    return summary
