"""koho_doctor is wiring only: one task, daily and on demand, whose body lives in koho.doctor."""

from __future__ import annotations

import ast
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "koho_doctor.py"


def test_parses_into_one_daily_task():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE), safe_mode=False)
    assert bag.import_errors == {}
    dag = bag.dags["koho_doctor"]
    assert [t.task_id for t in dag.tasks] == ["diagnose"]
    assert dag.timetable.expression == "30 6 * * *"  # 06:30 in the DAG's zone, Asia/Tokyo
    assert dag.max_active_runs == 1 and "operations" in dag.tags


def test_the_dag_file_holds_no_logic():
    """Every import of Koho inside a task is of the doctor's task body; nothing else is computed here."""
    tree = ast.parse(DAG_FILE.read_text(encoding="utf-8"))
    imports = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {m for m in imports if m and m.startswith("koho")} == {"koho.dag_defaults", "koho.doctor.tasks"}
