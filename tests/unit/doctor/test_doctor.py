"""The health check against real components: SMTP servers, SQLite and Postgres ledgers, an HTTP
server speaking Airflow's REST shapes, Airflow connections from ``AIRFLOW_CONN_*`` variables."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from koho.config import KohoConfig
from koho.doctor import Probe, Status, summary
from koho.doctor import checks as c
from koho.doctor.__main__ import main
from koho.doctor.airflow_api import AirflowApi
from koho.doctor.run import DoctorSettings, run_checks
from koho.ledger import repo
from koho.ledger.db import Ledger, dispose_engine, migrate
from sandbox.server import free_port
from tests.conftest import set_connection, smtp_connection
from tests.unit.doctor.airflow_api_stub import AirflowApiStub
from tests.unit.ledger.ledger_factories import account_row

NOW = datetime.now(UTC)  # the whole-run tests measure clock skew, so their clock is the real one
SECRET = "s3cret-token-never-shown"
POOLS_FILE = Path(__file__).resolve().parents[3] / "deploy" / "pools.json"


@pytest.fixture
def api() -> Iterator[AirflowApiStub]:
    with AirflowApiStub(password=SECRET) as stub:
        stub.pools = ["default_pool", *json.loads(POOLS_FILE.read_text())]
        yield stub


def statuses(findings) -> list[tuple[str, Status]]:
    return [(f.check, f.status) for f in findings]


# --- connections ------------------------------------------------------------------------------


def test_missing_connections_are_named_by_account(config: KohoConfig) -> None:
    defined = {"conn_city_x", "koho_db"}
    found = c.check_connections(config, ["koho_db", "koho_smtp"], lambda conn_id: conn_id in defined)
    messages = [f.message for f in found]
    assert all(f.status is Status.ERROR for f in found)
    assert any("アカウント「city-line」の接続「conn_city_line」がありません" in m for m in messages)
    assert any("「koho_smtp」がありません" in m for m in messages)
    assert not any("conn_city_x" in m or "conn_old_x" in m for m in messages)  # defined / retired
    assert len(found) == 7  # six active accounts without a connection, and the relay


def test_all_connections_defined(config: KohoConfig) -> None:
    assert statuses(c.check_connections(config, ["koho_db"], lambda _: True)) == [("connections", Status.OK)]


# --- tokens, from the ledger's last verification -------------------------------------------------


@pytest.fixture
def accounts_ledger(ledger: Ledger) -> Ledger:
    with ledger.session() as s:
        repo.upsert_accounts(s, [account_row(a) for a in ("fine", "broken", "expired", "soon", "never")])
        repo.record_verification(s, "fine", ok=True, token_expires_at=NOW + timedelta(days=90), error=None)
        repo.record_verification(s, "broken", ok=False, token_expires_at=None, error=f"401 for token {SECRET}")
        repo.record_verification(s, "expired", ok=True, token_expires_at=NOW - timedelta(hours=1), error=None)
        repo.record_verification(s, "soon", ok=True, token_expires_at=NOW + timedelta(days=3, hours=1), error=None)
    return ledger


def test_tokens_come_from_the_last_verification(accounts_ledger: Ledger) -> None:
    found = c.check_tokens(accounts_ledger, now=NOW, warning_days=14)
    by_account = {f.message.split("」")[0].split("「")[1]: f for f in found}
    assert set(by_account) == {"broken", "expired", "soon", "never"}
    assert by_account["broken"].status is Status.ERROR and "認証が通りません" in by_account["broken"].message
    assert by_account["expired"].status is Status.ERROR and (
        f"{(NOW - timedelta(hours=1)).date().isoformat()} に期限切れ" in by_account["expired"].message
    )
    assert by_account["soon"].status is Status.WARNING and "あと 3 日" in by_account["soon"].message
    assert by_account["never"].status is Status.WARNING and "accounts_sync" in by_account["never"].message
    assert "接続「koho_broken」" in by_account["broken"].message
    assert not any(SECRET in f.message for f in found)  # the platform's error text is not repeated


# --- ledger -----------------------------------------------------------------------------------

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        from tests.unit.ledger.conftest import PostgresServer, _admin

        try:
            _admin().close()
        except Exception as exc:
            pytest.skip(f"Postgres not reachable: {exc}")
        server = PostgresServer()
        url = server.create_database("doctor")
        request.addfinalizer(server.drop_all)
    yield url
    dispose_engine(url)


def test_a_ledger_not_migrated_is_an_error(unmigrated_url: str) -> None:
    (finding,) = c.check_ledger(Ledger(unmigrated_url))
    assert finding.status is Status.ERROR and "未作成" in finding.message and "移行してください" in finding.message
    migrate(unmigrated_url)
    assert statuses(c.check_ledger(Ledger(unmigrated_url))) == [("ledger", Status.OK)]


def test_database_clock_is_read_on_postgres_only(unmigrated_url: str) -> None:
    skew = c.database_skew(Ledger(unmigrated_url), lambda: datetime.now(UTC))
    if unmigrated_url.startswith("sqlite"):
        assert skew is None  # SQLite has no clock of its own
    else:
        assert abs(skew) < timedelta(seconds=2)
        late = c.database_skew(Ledger(unmigrated_url), lambda: datetime.now(UTC) - timedelta(minutes=2))
        assert timedelta(minutes=1) < late < timedelta(minutes=3)


# --- Airflow: pools, triggerer ---------------------------------------------------------------------


def test_missing_pools_are_named(api: AirflowApiStub) -> None:
    logged_in = AirflowApi(api.url, "admin", SECRET)
    assert statuses(c.check_pools(logged_in, POOLS_FILE)) == [("pools", Status.OK)]
    api.pools = ["default_pool", "koho_publish"]
    (finding,) = c.check_pools(logged_in, POOLS_FILE)
    assert finding.status is Status.ERROR
    assert "koho_collect、koho_emergency がありません" in finding.message and "pools import" in finding.message


def test_pools_without_credentials_is_a_warning(api: AirflowApiStub) -> None:
    (finding,) = c.check_pools(AirflowApi(api.url), POOLS_FILE)
    assert finding.status is Status.WARNING and "koho_airflow_api" in finding.message
    assert not [r for r in api.requests if "pools" in r]


@pytest.mark.parametrize(
    ("triggerer", "expected", "words"),
    [
        ({"status": "healthy", "latest_triggerer_heartbeat": "x"}, Status.OK, "動作しています"),
        (
            {"status": "unhealthy", "latest_triggerer_heartbeat": "2026-12-01T00:00:00+00:00"},
            Status.ERROR,
            "応答がありません",
        ),
        ({"status": None, "latest_triggerer_heartbeat": None}, Status.ERROR, "一度も起動していません"),
    ],
)
def test_triggerer_status_from_the_health_endpoint(api: AirflowApiStub, triggerer, expected, words) -> None:
    api.triggerer = triggerer
    health = AirflowApi(api.url).health(lambda: datetime.now(UTC))
    (finding,) = c.check_triggerer(health.components)
    assert finding.status is expected and words in finding.message


# --- SMTP -------------------------------------------------------------------------------------


def _smtp_conn(port: int, **extra) -> SimpleNamespace:
    return SimpleNamespace(
        conn_id="koho_smtp", host="127.0.0.1", port=port, password=SECRET, extra_dejson={"disable_ssl": True, **extra}
    )


def test_smtp_reachable_sends_nothing(mailbox) -> None:
    box, port = mailbox
    assert statuses(c.check_smtp(_smtp_conn(port), timeout=5)) == [("smtp", Status.OK)]
    assert box.messages == []


def test_smtp_unreachable_names_the_connection() -> None:
    (finding,) = c.check_smtp(_smtp_conn(free_port()), timeout=2)
    assert finding.status is Status.ERROR
    assert "接続「koho_smtp」" in finding.message and "ConnectionRefusedError" in finding.message
    assert SECRET not in finding.message


# --- clock ------------------------------------------------------------------------------------


def test_clock_skew_against_the_threshold() -> None:
    limit = timedelta(seconds=5)
    assert statuses(c.check_clock({"台帳": timedelta(seconds=1.2)}, max_skew=limit)) == [("clock", Status.OK)]
    (finding,) = c.check_clock({"台帳": timedelta(seconds=1.2), "API": timedelta(seconds=-42)}, max_skew=limit)
    assert finding.status is Status.ERROR and "API" in finding.message and "42.0 秒" in finding.message
    assert c.check_clock({}, max_skew=limit)[0].status is Status.WARNING


# --- the whole run, through Airflow connections ---------------------------------------------------


@pytest.fixture
def installation(monkeypatch: pytest.MonkeyPatch, config: KohoConfig, accounts_ledger: Ledger, mailbox, api):
    """Every connection defined, with secrets in them; the ledger, relay and API reachable."""
    _, smtp_port = mailbox
    for account in config.accounts:
        set_connection(monkeypatch, account.connection_id, conn_type="koho_x", host="https://x", password=SECRET)
    set_connection(monkeypatch, "koho_db", conn_type="sqlite", host=accounts_ledger.url.database)
    smtp_connection(monkeypatch, smtp_port)
    set_connection(monkeypatch, "koho_airflow_api", conn_type="http", host=api.url, login="admin", password=SECRET)
    monkeypatch.delenv("KOHO_LEDGER_CONN_ID", raising=False)
    monkeypatch.delenv("KOHO_SMTP_CONN_ID", raising=False)
    settings = DoctorSettings(max_clock_skew=timedelta(seconds=5), smtp_timeout_s=5, pools_file=POOLS_FILE)
    return Probe(config=config, settings=settings, clock=lambda: datetime.now(UTC))


def test_a_healthy_installation_apart_from_its_tokens(installation: Probe) -> None:
    findings = run_checks(installation)
    failing = {check for check, status in statuses(findings) if status is not Status.OK}
    assert failing == {"tokens"}  # the seeded broken, expired, expiring and unverified accounts
    assert {"connections", "ledger", "pools", "triggerer", "smtp", "clock"} <= {f.check for f in findings}


def test_a_wrong_api_server_clock_is_found(installation: Probe, api: AirflowApiStub) -> None:
    api.clock_offset_s = 90
    clock = [f for f in run_checks(installation) if f.check == "clock"]
    assert [f.status for f in clock] == [Status.ERROR] and "Airflow API サーバー" in clock[0].message


def test_a_check_that_cannot_run_is_a_finding_not_a_crash(installation: Probe, monkeypatch) -> None:
    set_connection(monkeypatch, "koho_db", conn_type="mysql", host="db", password=SECRET)
    findings = run_checks(installation)
    ledger = [f for f in findings if f.check == "ledger"]
    assert ledger[0].status is Status.ERROR and "sqlite" in ledger[0].message
    assert SECRET not in summary(findings)


def test_no_secret_in_any_output(installation: Probe, capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    assert main([], probe=installation) == 1  # the broken tokens
    assert main(["--json"], probe=installation) == 1
    out = capsys.readouterr()
    assert "Koho 診断: 異常" in out.out and "conn_city_x" not in out.out  # ids only where there is a problem
    assert SECRET not in out.out + out.err + caplog.text
    lines = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    assert {line["check"] for line in lines} >= {"tokens", "smtp"}


# --- the DAG's task -------------------------------------------------------------------------------


def test_the_task_mails_the_pr_section_once_a_day_and_fails_in_japanese(installation: Probe, mailbox) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from koho.doctor.tasks import run_doctor

    box, _ = mailbox
    with pytest.raises(AirflowFailException, match="Koho 診断: 異常 2 件、注意 2 件") as failure:
        run_doctor(installation)
    assert "アカウント「broken」" in str(failure.value) and SECRET not in str(failure.value)
    assert len(box.messages) == 1
    assert box.messages[0]["To"] == "koho@city.example.jp"
    with pytest.raises(AirflowFailException):
        run_doctor(installation)
    assert len(box.messages) == 1  # the same findings the same day are not mailed again


def test_an_unreadable_pools_file_is_named(api: AirflowApiStub, tmp_path: Path) -> None:
    (finding,) = c.check_pools(AirflowApi(api.url, "admin", SECRET), tmp_path / "pools.json")
    assert finding.status is Status.ERROR and "pools.json を読めません" in finding.message
