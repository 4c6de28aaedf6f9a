"""The example of a city's own DAG in docs/examples parses without I/O and is built from Koho's
platform operators as its doc says: one mapped task per account on the collection pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dags.dag_parsing import parse_without_io

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture(scope="module")
def example():
    bag = parse_without_io(EXAMPLES / "own_dag.py")
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
