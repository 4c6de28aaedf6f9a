"""The one error family Koho raises, and the location type every input error carries.

Operators read error messages in the Airflow task log and in mails, so every error about input
says *where* (file, line, field, account) and *what* was expected, in one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Where:
    """A place in some input: a file and line, a sheet cell, a form field or an account."""

    file: str | None = None
    line: int | None = None
    field: str | None = None
    account: str | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        elif self.line:
            parts.append(f"line {self.line}")
        if self.field:
            parts.append(f"field '{self.field}'")
        if self.account:
            parts.append(f"account '{self.account}'")
        return ", ".join(parts) or "(unknown place)"


class KohoError(Exception):
    """Base of every error Koho raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one piece of input."""

    where: Where
    message: str
    severity: str = "error"  # "error" stops that item; "warning" is reported and the item proceeds

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class HasProblems:
    """For results that carry ``problems``: the errors (each stops its item) and the warnings."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


class InputError(KohoError):
    """Input (config, calendar, form) was rejected; ``problems`` lists every place and reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(InputError):
    """A configuration file under include/config is broken."""
