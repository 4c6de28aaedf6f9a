"""The ledger package is the one way into Koho's database: no query is built or run elsewhere.

Read from the syntax tree of every module under plugins/ and dags/ outside ``koho.ledger``, so
that a ``dict.update(...)`` or an HTTP ``session.get(url)`` is not mistaken for SQL, and a
query written on one line or ten is found alike.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from koho.ledger.models import Base

ROOT = Path(__file__).resolve().parents[3]
SCANNED = ("plugins", "dags")
LEDGER = ROOT / "plugins" / "koho" / "ledger"
#: What code outside the ledger may take from SQLAlchemy: the Session type, for type hints.
ALLOWED_IMPORTS = {("sqlalchemy.orm", "Session")}
#: Session methods that run SQL whatever their arguments.
RUNS_SQL = {"execute", "scalars", "scalar", "query", "connection"}
#: Session methods that load or write ORM objects when given a model (``session.get(Model, id)``).
ORM_ACCESS = {"get", "add", "add_all", "merge", "delete", "refresh"}
MODEL_NAMES = {mapper.class_.__name__ for mapper in Base.registry.mappers}


def ledger_access(source: str, filename: str = "<module>") -> list[str]:
    """Each place in ``source`` that queries or writes the database itself, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    models = _imported_models(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        what = _import_problem(node) or _call_problem(node, models) or _table_problem(node)
        if what:
            found.append(f"{filename}:{node.lineno}: {what}")
    return found


def _imported_models(tree: ast.AST) -> set[str]:
    """Local names bound to ledger models (``from koho.ledger.models import Delivery as D`` -> D)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "koho.ledger.models":
            names |= {alias.asname or alias.name for alias in node.names if alias.name in MODEL_NAMES}
    return names


def _import_problem(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        bad = [a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
        return f"imports {', '.join(bad)}" if bad else None
    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
        bad = [a.name for a in node.names if (node.module, a.name) not in ALLOWED_IMPORTS]
        return f"imports {', '.join(bad)} from {node.module}" if bad else None
    return None


def _call_problem(node: ast.AST, models: set[str]) -> str | None:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    method, receiver = node.func.attr, _name_of(node.func.value)
    if method in RUNS_SQL and "session" in receiver.lower():
        return f"runs SQL with {receiver}.{method}()"
    first = node.args[0] if node.args else None
    if method in ORM_ACCESS and isinstance(first, ast.Name) and first.id in models:
        return f"loads or writes {first.id} with {receiver}.{method}()"
    if method in ORM_ACCESS and isinstance(first, ast.Call) and _name_of(first.func) in models:
        return f"writes a new {_name_of(first.func)} with {receiver}.{method}()"
    return None


def _table_problem(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and node.attr == "__table__":
        return f"uses {_name_of(node.value)}.__table__ (Core SQL on a ledger table)"
    return None


def _name_of(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def modules_outside_the_ledger() -> list[Path]:
    files = [p for top in SCANNED for p in (ROOT / top).rglob("*.py")]
    return sorted(p for p in files if LEDGER not in p.parents)


def test_no_module_outside_the_ledger_touches_the_database() -> None:
    modules = modules_outside_the_ledger()
    assert len(modules) > 50, "the scan found too few modules: check SCANNED"
    found = [hit for path in modules for hit in ledger_access(path.read_text("utf-8"), str(path.relative_to(ROOT)))]
    assert found == [], "SQL outside koho.ledger: add a named function to the aggregate module instead\n" + "\n".join(
        found
    )


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy import select",
        "import sqlalchemy as sa",
        "def f():\n    from sqlalchemy import func, select\n",
        "from sqlalchemy.orm import Session, aliased",
        "rows = session.execute(query).all()",
        "rows = self.session.scalars(q)",
        "n = ledger_session.scalar(q)",
        "from koho.ledger.models import CalendarEntry as E\nrow = s.get(E, 'id')",
        "from koho.ledger.models import Alert\ns.add(Alert(kind='review'))",
        "from koho.ledger.models import Delivery\nDelivery.__table__.update().values(status='x')",
        "table = Delivery.__table__",
    ],
)
def test_the_check_sees_database_access(source: str) -> None:
    assert ledger_access(source), source


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy.orm import Session\ndef f(session: Session) -> None: ...",
        "settings.update(a=1)\nout.update(status='deleted')",
        "async def f(session, url):\n    async with session.get(url) as r:\n        return r",
        "from koho.ledger.models import Delivery\nd: Delivery = deliveries.get_delivery(session, 1)",
        "from koho.ledger import deliveries\nrows = deliveries.for_entry(session, 'e1')",
        "cache.get('Delivery')\nresult = super().execute(context)",
    ],
)
def test_the_check_leaves_other_code_alone(source: str) -> None:
    assert ledger_access(source) == []
