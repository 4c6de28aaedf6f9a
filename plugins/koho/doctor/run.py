"""Run every check with what this installation has; a check that cannot run becomes a finding.

Settings come from the environment (deploy/airflow.env, shared by ``make run`` and compose).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from koho.config.loader import KohoConfig
from koho.doctor import checks
from koho.doctor.airflow_api import AirflowApi
from koho.doctor.findings import Finding, Status
from koho.errors import KohoError
from koho.ledger.db import CONN_ID_ENV, DEFAULT_CONN_ID, Ledger, url_from_connection
from koho.notify.sender import smtp_conn_id
from koho.timeutil import utcnow

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]
DATE_HEADER_RESOLUTION = timedelta(seconds=1)  # HTTP dates drop the fraction: assume its middle


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        log.error("%s=%r is not a number: using %s", name, raw, default)
        return default


@dataclass(frozen=True)
class DoctorSettings:
    max_clock_skew: timedelta = timedelta(seconds=5)
    smtp_timeout_s: float = 10.0
    api_conn_id: str = "koho_airflow_api"
    api_base_url: str | None = None  # used when the API connection is absent (health needs no login)
    pools_file: Path = ROOT / "deploy" / "pools.json"

    @classmethod
    def from_env(cls) -> DoctorSettings:
        return cls(
            max_clock_skew=timedelta(seconds=_env_float("KOHO_DOCTOR_MAX_CLOCK_SKEW_SECONDS", 5.0)),
            smtp_timeout_s=_env_float("KOHO_DOCTOR_SMTP_TIMEOUT_SECONDS", 10.0),
            api_conn_id=os.environ.get("KOHO_AIRFLOW_API_CONN_ID", "koho_airflow_api"),
            api_base_url=os.environ.get("KOHO_AIRFLOW_API_URL") or os.environ.get("AIRFLOW__API__BASE_URL"),
            pools_file=Path(os.environ.get("KOHO_POOLS_FILE") or ROOT / "deploy" / "pools.json"),
        )


def airflow_get_connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


@dataclass
class Probe:
    """What the checks look at; tests build one with real servers and databases."""

    config: KohoConfig
    settings: DoctorSettings = field(default_factory=DoctorSettings.from_env)
    get_connection: Callable[[str], Any] = airflow_get_connection
    clock: Callable[[], datetime] = utcnow

    def connection(self, conn_id: str) -> Any | None:
        try:
            return self.get_connection(conn_id)
        except Exception:  # missing, or a secrets backend error: either way not usable
            return None

    def ledger_conn_id(self) -> str:
        return os.environ.get(CONN_ID_ENV) or DEFAULT_CONN_ID

    def ledger(self) -> Ledger:
        conn = self.connection(self.ledger_conn_id())
        if conn is None:
            raise KohoError(f"台帳の接続「{self.ledger_conn_id()}」がありません")
        return Ledger(url_from_connection(conn))

    def api(self) -> AirflowApi | None:
        conn = self.connection(self.settings.api_conn_id)
        if conn is not None and conn.host:
            host = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
            base = f"{host}:{conn.port}" if conn.port else host
            return AirflowApi(base, conn.login or None, conn.password or None)
        return AirflowApi(self.settings.api_base_url) if self.settings.api_base_url else None


def _guard(check: str, run: Callable[[], list[Finding]]) -> list[Finding]:
    """A check that raises becomes an error finding (type only: a message may carry a URL)."""
    try:
        return run()
    except KohoError as exc:
        return [Finding(check, Status.ERROR, f"確認できませんでした: {exc}")]
    except Exception as exc:
        log.warning("doctor check %s failed: %s", check, type(exc).__name__)
        return [
            Finding(
                check, Status.ERROR, f"確認できませんでした（{type(exc).__name__}）。接続先と設定を確認してください。"
            )
        ]


def run_checks(probe: Probe) -> list[Finding]:
    """Every check, in the order an operator fixes things: connections, ledger, Airflow, mail, clock."""
    settings = probe.settings
    infrastructure = [probe.ledger_conn_id(), smtp_conn_id()]
    findings = _guard(
        checks.CONNECTIONS,
        lambda: checks.check_connections(probe.config, infrastructure, lambda c: probe.connection(c) is not None),
    )
    findings += _guard(checks.LEDGER, lambda: checks.check_ledger(probe.ledger()))
    warning_days = probe.config.policy.token_expiry_warning_days if probe.config.policy else 14
    findings += _guard(
        checks.TOKENS, lambda: checks.check_tokens(probe.ledger(), now=probe.clock(), warning_days=warning_days)
    )
    api = probe.api()
    findings += _guard(checks.POOLS, lambda: checks.check_pools(api, settings.pools_file))
    readings: dict[str, timedelta] = {}

    def triggerer() -> list[Finding]:
        if api is None:
            return [
                Finding(
                    checks.TRIGGERER,
                    Status.WARNING,
                    "Airflow API の URL（AIRFLOW__API__BASE_URL）が分からず確認できません。",
                )
            ]
        health = api.health(probe.clock)
        if health.server_date is not None:
            midpoint = health.sent_at + (health.received_at - health.sent_at) / 2
            readings["Airflow API サーバー"] = health.server_date + DATE_HEADER_RESOLUTION / 2 - midpoint
        return checks.check_triggerer(health.components)

    findings += _guard(checks.TRIGGERER, triggerer)

    def smtp() -> list[Finding]:
        conn = probe.connection(smtp_conn_id())
        if conn is None:
            return []  # already reported by the connections check
        return checks.check_smtp(conn, timeout=settings.smtp_timeout_s)

    findings += _guard(checks.SMTP, smtp)

    def clock() -> list[Finding]:
        try:
            skew = checks.database_skew(probe.ledger(), probe.clock)
        except Exception as exc:  # the ledger check already says why
            log.info("no ledger clock to compare: %s", type(exc).__name__)
            skew = None
        if skew is not None:
            readings["台帳データベース"] = skew
        return checks.check_clock(readings, max_skew=settings.max_clock_skew)

    findings += _guard(checks.CLOCK, clock)
    return findings
