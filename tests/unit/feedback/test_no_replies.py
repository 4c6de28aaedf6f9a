"""Koho never replies to residents by itself: the feedback package reaches no platform."""

from __future__ import annotations

import ast
from pathlib import Path

import koho.feedback

WRITERS = ("koho.platforms", "koho.delivery", "koho.channels", "koho.emergency", "requests", "httpx")
#: What the package may take from a platform module: pure functions of its protocol, no client.
READ_ONLY = {"koho.platforms.line": {"verify_webhook_signature"}}


def test_feedback_modules_import_nothing_that_writes_to_a_platform() -> None:
    folder = Path(koho.feedback.__file__).parent
    imported: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if module in READ_ONLY and {alias.name for alias in node.names} <= READ_ONLY[module]:
                    continue  # a pure function of a platform's protocol, no client
                names = {module}
            else:
                continue
            imported.setdefault(path.name, set()).update(names)

    assert {"routing.py", "marks.py", "privacy.py", "storms.py"} <= set(imported)
    offending = {f: sorted(n for n in names if n.startswith(WRITERS)) for f, names in imported.items()}
    assert {f: n for f, n in offending.items() if n} == {}
