"""The benchmark runner: result types, the shared table printer, and the command line.

A benchmark is a module ``bench/<name>.py`` with ``run(args) -> BenchResult``, listed once in
:data:`bench.BENCHMARKS`. ``args`` is the parsed command line (``args.quick`` asks for a reduced
size). The runner prints every result the same way and exits non-zero when a target is missed
or a benchmark crashed.

Machines running benchmarks are shared and noisy, so a benchmark never judges an absolute time:
its targets are ratios against a baseline measured in the same run, or against a theoretical
floor computed from its own configuration. Raw numbers are printed next to the ratios.

This module imports nothing of Koho, so that ``python -m bench`` can set ``sys.path`` first.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def setup_paths() -> None:
    """Make ``koho`` (plugins/) and ``sandbox`` (repo root) importable, and keep Airflow local and quiet."""
    for entry in (ROOT / "plugins", ROOT):
        if str(entry) not in sys.path:
            sys.path.insert(0, str(entry))
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow" / "bench-home"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    # Hooks log one INFO line per request; benchmarks print tables instead (warnings still show).
    os.environ.setdefault("AIRFLOW__LOGGING__NAMESPACE_LEVELS", "airflow.task.hooks=WARNING")


@dataclass(frozen=True)
class Target:
    """One target: the measured ``value``, the ``limit`` it must respect, and whether it did.

    ``op`` only says how to read the limit in the table (``<=``, ``>=``, ``==``).
    """

    name: str
    value: float
    limit: float
    ok: bool
    op: str = "<="

    @classmethod
    def at_most(cls, name: str, value: float, limit: float) -> Target:
        return cls(name, value, limit, value <= limit, "<=")

    @classmethod
    def at_least(cls, name: str, value: float, limit: float) -> Target:
        return cls(name, value, limit, value >= limit, ">=")

    @classmethod
    def exactly(cls, name: str, value: float, expected: float) -> Target:
        return cls(name, value, expected, value == expected, "==")


@dataclass
class BenchResult:
    """What a benchmark hands back: named figures (raw numbers and ratios), targets, and notes.

    ``notes`` are printed under the tables: configuration caveats, per-account tables
    (build them with :func:`table`), causes found while measuring.
    """

    name: str
    figures: dict[str, Any]
    targets: list[Target]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.targets)


def fmt(value: Any) -> str:
    """Numbers the way a reader wants them: integers as is, floats with 3 significant decimals."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return str(value)
        if value != 0 and abs(value) < 0.01:
            return f"{value:.2e}"
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A small plain-text table; numbers right-aligned."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) if rows else False for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True))

    out = [line([str(h) for h in headers]), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(x.rstrip() for x in out)


def format_result(result: BenchResult, seconds: float | None = None) -> str:
    took = f" (took {seconds:.1f}s)" if seconds is not None else ""
    verdict = "PASS" if result.ok else "MISSED"
    parts = [f"== bench {result.name}: {verdict}{took}", ""]
    if result.figures:
        parts += [table(["figure", "value"], list(result.figures.items())), ""]
    if result.targets:
        rows = [[t.name, t.value, f"{t.op} {fmt(t.limit)}", "ok" if t.ok else "MISSED"] for t in result.targets]
        parts += [table(["target", "measured", "limit", ""], rows), ""]
    for note in result.notes:
        parts += [note, ""]
    return "\n".join(parts)


def print_result(result: BenchResult, seconds: float | None = None) -> None:
    print(format_result(result, seconds), flush=True)


def load(name: str) -> Any:
    from bench import BENCHMARKS

    return importlib.import_module(BENCHMARKS[name])


def parser() -> argparse.ArgumentParser:
    from bench import BENCHMARKS

    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Koho benchmarks. Figures are ratios against a baseline measured in the same run "
        "(or a floor computed from the configuration); exits 1 when a target is missed.",
    )
    p.add_argument(
        "names", nargs="*", metavar="name", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})"
    )
    p.add_argument("--quick", action="store_true", help="reduced sizes (smoke runs); targets still apply")
    p.add_argument("--list", action="store_true", help="list the registered benchmarks and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from bench import BENCHMARKS

    setup_paths()
    p = parser()
    args = p.parse_args(argv)
    if args.list:
        for name, module in BENCHMARKS.items():
            print(f"{name}\t{module}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}; registered: {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    summary: list[list[Any]] = []
    for name in names:
        started = time.monotonic()
        try:
            result = load(name).run(args)
        except Exception:
            traceback.print_exc()
            print(f"== bench {name}: CRASHED", flush=True)
            summary.append([name, "CRASHED", time.monotonic() - started])
            continue
        took = time.monotonic() - started
        print_result(result, took)
        summary.append([name, "PASS" if result.ok else "MISSED", took])
    if len(summary) > 1:
        print(table(["benchmark", "result", "seconds"], summary))
    return 0 if all(row[1] == "PASS" for row in summary) else 1
