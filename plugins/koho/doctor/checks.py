"""The health checks. Each takes what it inspects as arguments (so tests hand it real servers and
databases) and returns findings whose messages tell the operator, in Japanese, what to do.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from koho.config.loader import KohoConfig
from koho.doctor.airflow_api import AirflowApi
from koho.doctor.findings import Finding, Status
from koho.ledger.db import Ledger
from koho.ledger.health import active_account_checks, current_revision, database_now, head_revision

CONNECTIONS = "connections"
TOKENS = "tokens"
POOLS = "pools"
TRIGGERER = "triggerer"
LEDGER = "ledger"
SMTP = "smtp"
CLOCK = "clock"

_FIX_CONNECTION = "管理 → 接続（Admin → Connections）で作成してください"


def _ok(check: str, message: str) -> Finding:
    return Finding(check, Status.OK, message)


def check_connections(
    config: KohoConfig, infrastructure: Iterable[str], exists: Callable[[str], bool]
) -> list[Finding]:
    """Every active account's connection, and the ledger's and mail relay's, must be defined."""
    found: list[Finding] = []
    wanted = [(a.connection_id, f"アカウント「{a.id}」") for a in config.accounts if a.status == "active"]
    wanted += [(conn_id, "Koho") for conn_id in infrastructure]
    for conn_id, owner in wanted:
        if not conn_id:
            found.append(
                Finding(
                    CONNECTIONS,
                    Status.ERROR,
                    f"{owner}に connection_id がありません。accounts.yaml に設定してください。",
                )
            )
        elif not exists(conn_id):
            found.append(
                Finding(CONNECTIONS, Status.ERROR, f"{owner}の接続「{conn_id}」がありません。{_FIX_CONNECTION}。")
            )
    return found or [_ok(CONNECTIONS, f"必要な接続 {len(wanted)} 件はすべて定義されています。")]


def check_tokens(ledger: Ledger, *, now: datetime, warning_days: int) -> list[Finding]:
    """Tokens as ``accounts_sync`` last verified them (the platforms are not called again)."""
    with ledger.engine.connect() as conn:
        accounts = active_account_checks(conn)
    found: list[Finding] = []
    rerun = "トークンを更新して接続を直し、accounts_sync を実行してください。"
    for account in accounts:
        where = f"アカウント「{account.account_id}」（接続「{account.connection_id or '-'}」）"
        if account.last_verified_at is None:
            found.append(Finding(TOKENS, Status.WARNING, f"{where}は未確認です。accounts_sync を実行してください。"))
        elif account.verify_error:
            found.append(Finding(TOKENS, Status.ERROR, f"{where}の認証が通りません。{rerun}"))
        elif account.token_expires_at and account.token_expires_at <= now:
            day = account.token_expires_at.date().isoformat()
            found.append(Finding(TOKENS, Status.ERROR, f"{where}のトークンは {day} に期限切れです。{rerun}"))
        elif account.token_expires_at and account.token_expires_at - now <= timedelta(days=warning_days):
            days = (account.token_expires_at - now).days
            found.append(
                Finding(
                    TOKENS, Status.WARNING, f"{where}のトークンはあと {days} 日で期限切れです。早めに更新してください。"
                )
            )
    return found or [_ok(TOKENS, f"有効なアカウント {len(accounts)} 件のトークンは有効です。")]


def check_ledger(ledger: Ledger) -> list[Finding]:
    """The ledger answers and is migrated to the revision this code expects."""
    with ledger.engine.connect() as conn:
        revision = current_revision(conn)
    head = head_revision()
    if revision == head:
        return [_ok(LEDGER, f"台帳（koho_db）は最新のスキーマ {head} です。")]
    return [
        Finding(
            LEDGER,
            Status.ERROR,
            f"台帳（koho_db）のスキーマが {revision or '未作成'} で、最新の {head} ではありません。"
            "移行してください（docker compose なら airflow-init、make run なら再起動で移行されます）。",
        )
    ]


def expected_pools(pools_file: Path) -> list[str]:
    return sorted(json.loads(pools_file.read_text(encoding="utf-8")))


def check_pools(api: AirflowApi | None, pools_file: Path) -> list[Finding]:
    """The pools in deploy/pools.json exist in Airflow (else the publishing tasks never start)."""
    try:
        wanted = expected_pools(pools_file)
    except (OSError, ValueError) as exc:
        return [
            Finding(
                POOLS,
                Status.ERROR,
                f"{pools_file} を読めません（{type(exc).__name__}）。KOHO_POOLS_FILE を確認してください。",
            )
        ]
    if api is None or not api.can_log_in:
        return [
            Finding(
                POOLS,
                Status.WARNING,
                "Airflow API の接続（koho_airflow_api: host と login/password）がないためプールを確認できません。"
                "接続を作成するか、`airflow pools list` で " + "、".join(wanted) + " があるか確認してください。",
            )
        ]
    missing = [name for name in wanted if name not in api.pool_names()]
    if missing:
        command = "airflow pools import deploy/pools.json"
        return [
            Finding(POOLS, Status.ERROR, f"プール {'、'.join(missing)} がありません。`{command}` を実行してください。")
        ]
    return [_ok(POOLS, f"プール {'、'.join(wanted)} があります。")]


def check_triggerer(health: dict[str, Any]) -> list[Finding]:
    """Deferred slots and approvals wait on the triggerer: without it nothing is published on time."""
    triggerer = health.get("triggerer") or {}
    status = triggerer.get("status")
    if status == "healthy":
        return [_ok(TRIGGERER, "トリガラー（triggerer）は動作しています。")]
    if status is None:
        reason = "一度も起動していません"
    else:
        beat = triggerer.get("latest_triggerer_heartbeat") or "記録なし"
        reason = f"応答がありません（最後の応答: {beat}）"
    return [
        Finding(
            TRIGGERER,
            Status.ERROR,
            f"トリガラー（triggerer）が{reason}。予約投稿と承認待ちが止まります。"
            "`airflow triggerer` を起動してください。",
        )
    ]


def check_smtp(conn: Any, *, timeout: float) -> list[Finding]:
    """Connect to the relay and greet it (EHLO, NOOP): no login, no mail sent."""
    host, port = conn.host, int(conn.port or 25)
    extra = conn.extra_dejson or {}
    smtp_class = smtplib.SMTP if extra.get("disable_ssl", False) else smtplib.SMTP_SSL
    where = f"メールサーバー（接続「{conn.conn_id}」、{host}:{port}）"
    try:
        with smtp_class(host, port, timeout=timeout) as smtp:
            smtp.ehlo()
            code, _ = smtp.noop()
    except (OSError, smtplib.SMTPException) as exc:
        return [
            Finding(
                SMTP,
                Status.ERROR,
                f"{where}に接続できません（{type(exc).__name__}）。アラートが届きません。"
                "接続の host・port と中継サーバーを確認してください。",
            )
        ]
    if code != 250:
        return [Finding(SMTP, Status.ERROR, f"{where}が NOOP に {code} を返しました。中継サーバーを確認してください。")]
    return [_ok(SMTP, f"{where}に接続できます。")]


def check_clock(readings: dict[str, timedelta], *, max_skew: timedelta) -> list[Finding]:
    """This machine's clock against others' (``readings``: source -> their clock minus ours).

    Posts go out at their second; a clock off by more than ``max_skew`` makes them early or late.
    """
    if not readings:
        return [
            Finding(CLOCK, Status.WARNING, "比較できる時計がありません（台帳が Postgres でなく、API にも届きません）。")
        ]
    found = []
    for source, skew in sorted(readings.items()):
        seconds = skew.total_seconds()
        if abs(skew) > max_skew:
            found.append(
                Finding(
                    CLOCK,
                    Status.ERROR,
                    f"このサーバーの時計が{source}と {abs(seconds):.1f} 秒ずれています"
                    f"（許容 {max_skew.total_seconds():.0f} 秒）。"
                    "NTP（chrony など）で時刻を合わせてください。",
                )
            )
    return found or [_ok(CLOCK, "時計のずれは許容範囲内です（" + "、".join(sorted(readings)) + "）。")]


def database_skew(ledger: Ledger, clock: Callable[[], datetime]) -> timedelta | None:
    """The ledger server's clock minus ours (Postgres only), from the midpoint of the query."""
    with ledger.engine.connect() as conn:
        sent = clock()
        theirs = database_now(conn)
        received = clock()
    if theirs is None:
        return None
    return theirs - (sent + (received - sent) / 2)
