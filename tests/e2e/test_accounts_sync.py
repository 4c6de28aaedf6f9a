"""accounts_sync end to end: ``airflow dags test`` against the sandbox, the ledger and a real
SMTP server. One account's token is revoked, one expires soon: the PR section gets one mail
naming both, the ledger holds every account, and a second run does not mail again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from koho.ledger.db import Ledger
from koho.ledger.models import Account, Alert
from tests.e2e.conftest import dags_test

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def test_accounts_sync_verifies_alerts_and_mails(demo_city, sandbox):
    env = demo_city["env"]
    # city-mastodon's token is revoked on the platform; city-x's token expires in three days.
    mastodon = next(r for r in demo_city["rows"] if r["id"] == "city-mastodon")
    handle = json.loads(env["AIRFLOW_CONN_KOHO_CITY_MASTODON"])["login"]
    sandbox.admin("POST", f"/accounts/mastodon/{handle}/revoke")
    x_conn = json.loads(env["AIRFLOW_CONN_KOHO_CITY_X"])
    extra = json.loads(x_conn["extra"])
    extra["token_expires_at"] = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    x_conn["extra"] = json.dumps(extra)
    env["AIRFLOW_CONN_KOHO_CITY_X"] = json.dumps(x_conn)

    run = dags_test(env, "accounts_sync")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    # no token in the output, in what the tasks handed each other (XCom) or in the ledger
    xcoms = xcom_values(env, "accounts_sync")
    assert any("city-mastodon" in value for value in xcoms), "the run's XComs were not found"
    ledger_bytes = Path(demo_city["ledger_url"].removeprefix("sqlite:///")).read_bytes()
    for token in demo_city["tokens"].values():
        assert token not in run.stdout and token not in run.stderr
        assert not any(token in value for value in xcoms)
        assert token.encode() not in ledger_bytes

    ledger = Ledger(demo_city["ledger_url"])
    with ledger.session(readonly=True) as session:
        accounts = {a.id: a for a in session.scalars(select(Account))}
        alerts = {a.kind: a for a in session.scalars(select(Alert))}
    assert len(accounts) == 12
    assert accounts["city-mastodon"].verify_error and mastodon["connection_id"]
    assert accounts["city-line"].verify_error is None and accounts["city-line"].last_verified_at
    assert accounts["city-x"].token_expires_at is not None
    assert alerts["token_invalid"].account_id == "city-mastodon"
    assert alerts["token_expiring"].account_id == "city-x"
    assert all(a.notified_at is not None for a in alerts.values())

    box = demo_city["mailbox"]
    assert len(box.messages) == 1
    mail = box.messages[0]
    assert mail["To"] == "koho@city.example.jp"
    assert "2 alert(s)" in mail["Subject"] and "1 critical" in mail["Subject"]
    body = box.bodies()[0]
    assert "city-mastodon" in body and "city-x" in body

    # The same problems found again the same day are not mailed twice.
    again = dags_test(env, "accounts_sync")
    assert again.returncode == 0, again.stdout[-3000:]
    assert len(box.messages) == 1


def xcom_values(env: dict[str, str], dag_id: str) -> list[str]:
    """Every XCom value the DAG's runs stored in the Airflow metadata database, as text."""
    engine = create_engine(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT value FROM xcom WHERE dag_id = :dag_id"), {"dag_id": dag_id})
            return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for (v,) in rows]
    finally:
        engine.dispose()


def test_broken_config_fails_the_run_after_syncing_the_rest(demo_city, tmp_path):
    env = dict(demo_city["env"])
    source = Path(__file__).resolve().parents[2] / "include" / "config"
    broken = tmp_path / "config"
    broken.mkdir()
    for name in ("departments.yaml", "policy.yaml"):
        (broken / name).write_text((source / name).read_text(encoding="utf-8"), encoding="utf-8")
    lines = (source / "accounts.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.strip() == "platform: threads")
    lines[number] = lines[number].replace("threads", "thread")
    (broken / "accounts.yaml").write_text("".join(lines), encoding="utf-8")
    env["KOHO_CONFIG_DIR"] = str(broken)

    run = dags_test(env, "accounts_sync")
    output = run.stdout + run.stderr
    assert f"accounts.yaml:{number + 1}, field 'accounts[7].platform', account 'city-threads'" in output
    with Ledger(demo_city["ledger_url"]).session(readonly=True) as session:
        ids = set(session.scalars(select(Account.id)))
    assert len(ids) == 11 and "city-threads" not in ids
    body = "\n".join(demo_city["mailbox"].bodies())
    assert "accounts.yaml" in body and "city-threads" in body
    assert "failed" in output.lower()
