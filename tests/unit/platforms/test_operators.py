"""The platform operators outside Airflow: the read operators move the ledger cursor, report what
they read and spent, keep comments out of XCom on request, and map errors onto retries."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from koho.config.schema import ReadQuotaConfig
from koho.ledger import repo
from koho.ledger.models import Account
from koho.platforms import operators
from koho.platforms.errors import RateLimited
from tests.conftest import set_connection


@pytest.fixture
def city(sandbox, connect, ledger, monkeypatch):
    """A sandbox Mastodon account with its connection, its ledger row and ``koho_db`` pointing at the ledger."""
    remote = sandbox.add_account("mastodon", "koho_city", followers=42)
    conn_id = connect("mastodon", remote, conn_id="koho_city_mastodon")
    set_connection(monkeypatch, "koho_db", conn_type="sqlite", host=ledger.url.database)
    with ledger.session() as session:
        session.add(
            Account(
                id="city-mastodon",
                platform="mastodon",
                handle="koho_city",
                display_name="こほ市",
                department="kouhou",
                connection_id=conn_id,
            )
        )
    return {"platform": "mastodon", "conn_id": conn_id, "account_id": "city-mastodon"}


def test_comments_operator_reads_from_the_ledger_cursor_and_keeps_comments_out_of_xcom(sandbox, ledger, city):
    sandbox.comment("mastodon", "koho_city", "shimin_1", "ゴミの日はいつですか")
    first = operators.FetchCommentsOperator(task_id="c", push_records=False, **city).execute({})
    assert first["read"] == 1 and first["complete"] and "records" not in first
    assert "ゴミの日" not in str(first)
    with ledger.session(readonly=True) as session:
        assert repo.get_cursor(session, "city-mastodon", "comments") == first["cursor"]

    sandbox.comment("mastodon", "koho_city", "shimin_2", "ありがとう")
    second = operators.FetchCommentsOperator(task_id="c", **city).execute({})
    assert [r["text"] for r in second["records"]] == ["ありがとう"]


def test_a_subclass_stores_what_it_read_with_the_cursor(sandbox, ledger, city):
    kept = []

    class KeepComments(operators.FetchCommentsOperator):
        def store(self, session, account, records):
            kept.extend((account.id, c.author) for c in records)

    sandbox.comment("mastodon", "koho_city", "shimin_1", "一")
    KeepComments(task_id="c", push_records=False, **city).execute({})
    assert kept == [("city-mastodon", "shimin_1")]


def test_account_metrics_without_an_account_id_need_no_ledger(sandbox, city):
    result = operators.FetchAccountMetricsOperator(task_id="m", platform="mastodon", conn_id=city["conn_id"]).execute(
        {}
    )
    assert result["records"][0]["followers"] == 42 and result["cursor"] is None


def test_a_used_up_quota_is_a_rate_limit_airflow_retries(sandbox, city, monkeypatch):
    monkeypatch.setattr(operators, "read_quota", lambda platform: ReadQuotaConfig(units=1, per_seconds=3600))
    operators.FetchAccountMetricsOperator(task_id="m", **city).execute({})
    with pytest.raises(RateLimited, match="read quota used up"):
        operators.FetchAccountMetricsOperator(task_id="m", **city).execute({})


def test_an_expired_token_fails_without_retries(sandbox, connect, city):
    remote = sandbox.add_account("mastodon", "koho_kanko")
    conn_id = connect("mastodon", {**remote, "token": "revoked"}, conn_id="koho_kanko_mastodon")
    with pytest.raises(AirflowFailException, match="koho_kanko"):
        operators.FetchCommentsOperator(task_id="c", platform="mastodon", conn_id=conn_id).execute({})


def test_publish_with_an_account_id_draws_on_the_accounts_budget(sandbox, city):
    """city-mastodon sets no budget in the shipped accounts.yaml: the hook has none. city-line has LINE's."""
    op = operators.PublishPostOperator(task_id="p", text="お知らせ", idempotency_key="k-1", **city)
    assert op.hook.write_budget is None
    line = operators.PublishPostOperator(
        task_id="p", platform="line", conn_id="koho_city_line", account_id="city-line", text="t", idempotency_key="k"
    )
    assert line.hook._budget is not None and line.hook._budget.calls == 50
    run = SimpleNamespace(run_after=datetime(2026, 12, 4, 9, 0, tzinfo=UTC))
    result = op.execute({"ti": SimpleNamespace(try_number=1), "dag_run": run})
    assert result["remote_id"] and len(sandbox.posts("mastodon")) == 1


def test_every_operator_takes_the_same_account_arguments():
    """One ``{platform, conn_id, account_id}`` list maps any of them (expand_kwargs)."""
    target = {"platform": "x", "conn_id": "koho_city_x", "account_id": "city-x"}
    for cls in (operators.VerifyCredentialsOperator, operators.FetchAccountMetricsOperator):
        assert cls(task_id="t", **target).account_id == "city-x"
    with pytest.raises(ValueError, match="unknown platform 'myspace'"):
        operators.VerifyCredentialsOperator(task_id="t", platform="myspace", conn_id="c")
