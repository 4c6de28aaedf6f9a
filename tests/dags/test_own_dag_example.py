"""The example of a city's own DAG in docs/examples parses without I/O and is built from Koho's
platform operators as its doc says: one mapped task per account on the collection pool."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture(scope="module")
def example():
    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args, **kwargs):
        raise AssertionError(f"DAG parsing attempted I/O: {args[:2]}")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(sqlite3, "connect", refuse)
    try:
        bag = DagBag(dag_folder=str(EXAMPLES / "own_dag.py"), safe_mode=False)
    finally:
        mp.undo()
    assert bag.import_errors == {}
    return bag.dags["example_own_dag"]


def test_the_example_is_built_from_the_platform_operators(example):
    from koho.platforms import operators

    kinds = {task.task_id: type(task).__name__ for task in example.tasks}
    assert kinds["verify"] == "VerifyCredentialsOperator"
    assert kinds["announce"] == "PublishPostOperator"
    for task_id in ("account_metrics", "comments"):
        task = example.get_task(task_id)
        assert task.operator_class in (operators.FetchAccountMetricsOperator, operators.FetchCommentsOperator)
        assert task.pool == "koho_collect"
        assert task.upstream_task_ids == {"targets"}  # mapped over the accounts it lists
    assert example.get_task("comments").partial_kwargs["push_records"] is False


def test_the_example_follows_the_dag_conventions(example):
    assert "koho" in example.tags and example.catchup is False and example.owner != "airflow"
    assert example.doc_md and "account_id" in example.doc_md
    announce = example.get_task("announce")
    assert "{{ run_id }}" in announce.idempotency_key  # stable across the task's retries
    assert set(announce.template_fields) >= {"text", "idempotency_key", "account_id"}
    assert all(task.retries >= 1 for task in example.tasks)
