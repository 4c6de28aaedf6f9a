"""Read YAML while remembering the line of every value, so errors can say exactly where.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two duplicate keys.
Composing the node tree first keeps both: :class:`YamlDocument` holds the plain data and a
map from each path (``("accounts", 3, "caps", "per_day")``) to its 1-based line.

Whatever the text holds, reading it ends in data or in located problems, never in an
exception, and within bounds: the file size is checked before reading, and building the data
counts values and alias uses (an "alias bomb" of nested ``*a`` references expands to billions
of values from a few lines), stopping at :class:`YamlLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from koho.errors import Problem, Where

Path_ = tuple[str | int, ...]
#: libyaml's parser when PyYAML has it: several times faster, and it bounds nesting depth itself.
COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class YamlLimits:
    """How much one YAML file may be: bytes, values after alias expansion, alias uses."""

    max_bytes: int = 3_000_000
    max_nodes: int = 200_000
    max_aliases: int = 100


@dataclass
class YamlDocument:
    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: the path inside the data each problem is about, where it has one
    problem_paths: dict[Problem, Path_] = field(default_factory=dict)

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

    def add(self, problem: Problem, path: Path_ | None = None) -> None:
        self.problems.append(problem)
        if path is not None:
            self.problem_paths[problem] = tuple(path)


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: Path, *, display_name: str | None = None, limits: YamlLimits | None = None) -> YamlDocument:
    """Parse ``path``; syntax errors, duplicate keys and limits become problems, never exceptions."""
    name = display_name or path.name
    limits = limits or YamlLimits()
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            return YamlDocument(name, None, problems=[too_large(name, size, limits.max_bytes)])
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return YamlDocument(name, None, problems=[Problem(Where(file=name), "file not found")])
    except UnicodeDecodeError as exc:
        return YamlDocument(name, None, problems=[Problem(Where(file=name), f"not UTF-8 text ({exc.reason})")])
    except OSError as exc:
        return YamlDocument(name, None, problems=[Problem(Where(file=name), f"cannot be read ({exc.strerror})")])
    return parse_yaml(text, name, limits=limits)


def too_large(name: str, size: int, limit: int) -> Problem:
    return Problem(
        Where(file=name),
        f"file is {size:,} bytes; at most {limit:,} are read (policy.yaml limits.max_file_bytes); "
        "split it into several files",
    )


class _Stop(Exception):
    """Building stopped at a limit; the problem is already recorded."""


def parse_yaml(text: str, name: str, *, limits: YamlLimits | None = None) -> YamlDocument:
    doc = YamlDocument(name, None)
    limits = limits or YamlLimits()
    if len(text) > limits.max_bytes:
        doc.add(too_large(name, len(text.encode("utf-8")), limits.max_bytes))
        return doc
    try:
        node = yaml.compose(text, Loader=COMPOSER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or str(exc)
        doc.add(Problem(Where(file=name, line=line), f"YAML syntax error: {reason}"))
        return doc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        doc.add(
            Problem(
                Where(file=name, line=line),
                f"the character U+{exc.character:04X} is not allowed in a YAML file (a control character); remove it"
                if isinstance(exc.character, int)
                else f"YAML cannot read the text: {exc}",
            )
        )
        return doc
    except yaml.YAMLError as exc:
        doc.add(Problem(Where(file=name), f"YAML syntax error: {exc}"))
        return doc
    except RecursionError:
        doc.add(Problem(Where(file=name), "values are nested too deeply to be read"))
        return doc
    if node is None:
        return doc
    loader = yaml.SafeLoader("")
    try:
        doc.data = _Builder(doc, loader, limits).build(node, ())
    except _Stop:
        doc.data = None
    except RecursionError:
        doc.data = None
        doc.add(Problem(Where(file=name), "values are nested too deeply to be read"))
    finally:
        loader.dispose()
    return doc


class _Builder:
    """Node tree -> plain data, with lines, duplicate keys, unknown tags and limits as problems."""

    def __init__(self, doc: YamlDocument, loader: yaml.SafeLoader, limits: YamlLimits):
        self.doc, self.loader, self.limits = doc, loader, limits
        self.nodes = 0
        self.aliases = 0
        self.seen: set[int] = set()
        self.open: set[int] = set()

    def build(self, node: yaml.Node, path: Path_) -> Any:
        doc = self.doc
        line = node.start_mark.line + 1
        self._count(node, path, line)
        doc.lines[path] = line
        if id(node) in self.open:
            doc.add(Problem(doc.where(path), "an alias refers to the value it is part of (a loop)"), path)
            raise _Stop
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._scalar(node, path)
        finally:
            self.open.discard(id(node))

    def _count(self, node: yaml.Node, path: Path_, line: int) -> None:
        self.nodes += 1
        if id(node) in self.seen:
            self.aliases += 1
            if self.aliases > self.limits.max_aliases:
                self.doc.add(
                    Problem(
                        Where(file=self.doc.file, line=line, field=dotted(path) or None),
                        f"more than {self.limits.max_aliases} alias uses (*name); write the values out",
                    )
                )
                raise _Stop
        self.seen.add(id(node))
        if self.nodes > self.limits.max_nodes:
            self.doc.add(
                Problem(
                    Where(file=self.doc.file, line=line),
                    f"the file expands to more than {self.limits.max_nodes:,} values (aliases included); "
                    "at most that many are read: split the file",
                )
            )
            raise _Stop

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        doc = self.doc
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                doc.add(
                    Problem(
                        Where(file=doc.file, line=key_line, field=dotted(path) or None), "a key must be a plain name"
                    ),
                    path,
                )
                continue
            key = self._scalar(key_node, path)
            if key in out:
                doc.add(
                    Problem(
                        Where(file=doc.file, line=key_line, field=dotted((*path, key))),
                        "duplicate key: it is already defined above; neither value is used until one is removed",
                    ),
                    (*path, key),
                )
            out[key] = self.build(value_node, (*path, key))
            doc.lines[(*path, key)] = key_line
        return out

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except ValueError:
            # e.g. a timestamp-looking '2024-13-01': keep the text and let the schema say what it expected
            return node.value
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            self.doc.add(
                Problem(
                    Where(file=self.doc.file, line=node.start_mark.line + 1, field=dotted(path) or None),
                    f"cannot read the value: {reason}; write it as plain text (in quotes)",
                ),
                path,
            )
            return node.value
