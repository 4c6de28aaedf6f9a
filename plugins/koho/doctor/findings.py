"""What one check found, and the Japanese summary an operator reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


_MARK = {Status.OK: "✓", Status.WARNING: "△", Status.ERROR: "✗"}


@dataclass(frozen=True)
class Finding:
    """``check`` is the check's id; ``message`` says in Japanese what is wrong and what to do."""

    check: str
    status: Status
    message: str

    def as_dict(self) -> dict[str, str]:
        return {**asdict(self), "status": self.status.value}


def problems(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.status is not Status.OK]


def summary(findings: Iterable[Finding]) -> str:
    """One headline with the counts, then one line per finding, problems first."""
    found = list(findings)
    errors = sum(f.status is Status.ERROR for f in found)
    warnings = sum(f.status is Status.WARNING for f in found)
    if errors or warnings:
        head = f"Koho 診断: 異常 {errors} 件、注意 {warnings} 件。各行の指示に従って対処してください。"
    else:
        head = f"Koho 診断: すべて正常です（{len(found)} 項目）。"
    order = {Status.ERROR: 0, Status.WARNING: 1, Status.OK: 2}
    lines = [f"{_MARK[f.status]} [{f.check}] {f.message}" for f in sorted(found, key=lambda f: order[f.status])]
    return "\n".join([head, *lines])
