"""Every DAG file imports cleanly, without touching the network or a database, and carries the
metadata operators rely on in the UI (owner, tags, docs, retries, no catch-up)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dags.dag_parsing import parse_without_io

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p.name for p in DAGS.glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    """Parse dags/ with sockets and SQLite connects forbidden: parsing must not do I/O."""
    return parse_without_io(DAGS)


def test_dag_files_exist():
    assert "accounts_sync.py" in DAG_FILES


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("filename", DAG_FILES)
def test_each_file_defines_a_dag(dagbag, filename):
    dags = [d for d in dagbag.dags.values() if Path(d.fileloc).name == filename]
    assert dags, f"{filename} defines no DAG"


def test_dag_metadata(dagbag):
    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        assert "koho" in dag.tags, f"{dag_id}: tag 'koho' missing"
        assert dag.doc_md and len(dag.doc_md) > 80, f"{dag_id}: doc_md missing or too short"
        assert dag.catchup is False, f"{dag_id}: catchup must be off"
        assert dag.owner != "airflow", f"{dag_id}: owner not set"
        for task in dag.tasks:
            assert task.retries >= 1 or task.task_id.startswith("approve"), f"{dag_id}.{task.task_id}: no retries"


POOLS = json.loads((DAGS.parent / "deploy" / "pools.json").read_text(encoding="utf-8"))


def test_every_pool_a_task_names_is_created(dagbag):
    named = {task.pool for dag in dagbag.dags.values() for task in dag.tasks}
    assert named - {"default_pool"} <= set(POOLS), f"pools missing from deploy/pools.json: {named - set(POOLS)}"


def test_a_busy_calendar_leaves_workers_for_an_emergency_broadcast(dagbag):
    """Priority only orders queued tasks: a running calendar task keeps its worker (up to a
    minute and a half while it waits for its slot). The pools that can hold workers for long
    must together leave core.parallelism room for one broadcast's tasks."""
    from scripts.koho_env import read_env_file

    parallelism = int(read_env_file(DAGS.parent / "deploy" / "airflow.env")["AIRFLOW__CORE__PARALLELISM"])
    emergency = list(dagbag.dags["emergency_broadcast"].tasks)
    assert {t.pool for t in emergency} == {"koho_emergency"}
    assert min(t.priority_weight for t in emergency) > max(
        t.priority_weight for d in dagbag.dags.values() if d.dag_id != "emergency_broadcast" for t in d.tasks
    )
    long_held = POOLS["koho_publish"]["slots"] + POOLS["koho_collect"]["slots"]
    assert long_held + len(emergency) <= parallelism
