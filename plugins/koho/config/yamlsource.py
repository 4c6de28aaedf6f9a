"""Read YAML while remembering the line of every value, so errors can say exactly where.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two duplicate keys.
Composing the node tree first keeps both: :class:`YamlDocument` holds the plain data and a
map from each path (``("accounts", 3, "caps", "per_day")``) to its 1-based line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from koho.errors import Problem, Where

Path_ = tuple[str | int, ...]


@dataclass
class YamlDocument:
    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def where(self, path: Path_, *, account: str | None = None) -> Where:
        return Where(file=self.file, line=self.line_of(path), field=dotted(path) or None, account=account)


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: Path, *, display_name: str | None = None) -> YamlDocument:
    """Parse ``path``; syntax errors and duplicate keys become problems, never exceptions."""
    name = display_name or path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return YamlDocument(name, None, problems=[Problem(Where(file=name), "file not found")])
    except UnicodeDecodeError as exc:
        return YamlDocument(name, None, problems=[Problem(Where(file=name), f"not UTF-8 text ({exc.reason})")])
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> YamlDocument:
    doc = YamlDocument(name, None)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or str(exc)
        doc.problems.append(Problem(Where(file=name, line=line), f"YAML syntax error: {reason}"))
        return doc
    if node is None:
        return doc
    loader = yaml.SafeLoader("")
    try:
        doc.data = _build(node, (), doc, loader)
    finally:
        loader.dispose()
    return doc


def _build(node: yaml.Node, path: Path_, doc: YamlDocument, loader: yaml.SafeLoader) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                doc.problems.append(
                    Problem(
                        Where(file=doc.file, line=key_node.start_mark.line + 1, field=dotted((*path, key))),
                        "duplicate key: it is already defined above (YAML would silently keep only the last)",
                    )
                )
            out[key] = _build(value_node, (*path, key), doc, loader)
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc, loader) for i, item in enumerate(node.value)]
    try:
        return loader.construct_object(node, deep=True)
    except ValueError:
        # e.g. a timestamp-looking '2024-13-01': keep the text and let the schema say what it expected
        return node.value
