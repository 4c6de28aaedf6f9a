"""Load and check include/config: every problem names file, line and field; valid parts still load.

The account registry is validated account by account: one broken account is reported and
skipped, the others load. Departments and policy are smaller and referenced everywhere, so a
problem there is reported and the dependent parts are checked against what did load.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from koho.config.schema import AccountConfig, Caps, Department, Policy, WriteBudgetConfig
from koho.config.yamlsource import YamlDocument, load_yaml
from koho.errors import ConfigError, HasProblems, Problem, Where

M = TypeVar("M", bound=BaseModel)


def include_dir() -> Path:
    """The include/ folder: ``$KOHO_INCLUDE_DIR``, else the one beside plugins/ in the repository."""
    configured = os.environ.get("KOHO_INCLUDE_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "include"


def media_dir() -> Path:
    """Where the images that calendar entries and forms name live: include/media."""
    return include_dir() / "media"


def config_dir() -> Path:
    return Path(os.environ.get("KOHO_CONFIG_DIR") or include_dir() / "config")


@dataclass
class KohoConfig(HasProblems):
    accounts: list[AccountConfig]
    departments: list[Department]
    policy: Policy | None
    problems: list[Problem] = field(default_factory=list)

    def raise_for_problems(self) -> None:
        if self.errors:
            raise ConfigError(self.errors)

    @cached_property
    def accounts_by_id(self) -> dict[str, AccountConfig]:
        return {a.id: a for a in self.accounts}

    @cached_property
    def departments_by_id(self) -> dict[str, Department]:
        return {d.id: d for d in self.departments}

    def active_accounts(self) -> list[AccountConfig]:
        return [a for a in self.accounts if a.status == "active"]

    def caps_for(self, account: AccountConfig) -> Caps:
        """The account's caps with the policy defaults filled in.

        ``write_budget``: the account's own, else the policy's default for its platform
        (``write_budgets``), else none.
        """
        if not self.policy:
            return account.caps
        caps = account.caps.merged_over(self.policy.caps)
        if caps.write_budget is None and account.platform in self.policy.write_budgets:
            caps = caps.model_copy(update={"write_budget": self.policy.write_budgets[account.platform]})
        return caps

    def write_budget_for(self, account_id: str) -> WriteBudgetConfig | None:
        """The posting budget for the account with this id (see :meth:`caps_for`); none for an
        account not in the registry (a ledger row whose config entry was since removed)."""
        account = self.accounts_by_id.get(account_id)
        return self.caps_for(account).write_budget if account else None

    def pr_email(self) -> str | None:
        if not self.policy:
            return None
        dept = self.departments_by_id.get(self.policy.pr_department)
        return str(dept.email) if dept else None


def _validate(model: type[M], data: Any, doc: YamlDocument, path: tuple, account: str | None = None):
    """Validate one item; return (model or None, problems pointing at the offending lines)."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = (*path, *(p for p in err["loc"] if not str(p).startswith("function-after")))
            message = _humane(err)
            problems.append(Problem(doc.where(loc, account=account), message))
        return None, problems


def _humane(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see README 'Configuration')"
    if kind == "literal_error":
        return msg.replace("Input should be", "expected")
    if kind == "string_pattern_mismatch":
        return f"invalid value {err.get('input')!r}: {msg.lower()}"
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    return f"{msg} (got {err.get('input')!r})" if "input" in err and not isinstance(err["input"], dict) else msg


def _items(doc: YamlDocument, key: str) -> Iterable[tuple[int, Any]]:
    """The list under ``key`` in a mapping document, with problems for a wrong top-level shape."""
    if doc.data is None and not doc.problems:
        doc.problems.append(Problem(Where(file=doc.file), f"file is empty; expected a mapping with '{key}:'"))
        return []
    if doc.data is None:
        return []
    if not isinstance(doc.data, dict) or key not in doc.data:
        doc.problems.append(Problem(doc.where(()), f"expected a mapping with a '{key}:' list at the top"))
        return []
    extra = [k for k in doc.data if k != key]
    for k in extra:
        doc.problems.append(Problem(doc.where((k,)), f"unknown top-level key; only '{key}' is allowed here"))
    items = doc.data[key]
    if not isinstance(items, list):
        doc.problems.append(Problem(doc.where((key,)), f"'{key}' must be a list"))
        return []
    return enumerate(items)


def load_departments(doc: YamlDocument) -> tuple[list[Department], list[Problem]]:
    out: list[Department] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, item in _items(doc, "departments"):
        dept, errs = _validate(Department, item, doc, ("departments", i))
        problems += errs
        if dept is None:
            continue
        if dept.id in seen:
            problems.append(
                Problem(
                    doc.where(("departments", i, "id")),
                    f"duplicate department id '{dept.id}' (first defined on line {seen[dept.id]})",
                )
            )
            continue
        seen[dept.id] = doc.line_of(("departments", i, "id")) or 0
        out.append(dept)
    return out, doc.problems + problems


def load_accounts(doc: YamlDocument, departments: Iterable[Department]) -> tuple[list[AccountConfig], list[Problem]]:
    known_departments = {d.id for d in departments}
    out: list[AccountConfig] = []
    problems: list[Problem] = []
    ids: dict[str, int] = {}
    handles: dict[tuple[str, str], int] = {}
    for i, item in _items(doc, "accounts"):
        label = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None
        account, errs = _validate(AccountConfig, item, doc, ("accounts", i), account=label)
        problems += errs
        if account is None:
            continue
        here = ("accounts", i)
        if account.id in ids:
            problems.append(
                Problem(
                    doc.where((*here, "id"), account=account.id),
                    f"duplicate account id (first defined on line {ids[account.id]})",
                )
            )
            continue
        key = (account.platform, account.handle.lstrip("@").lower())
        if key in handles:
            problems.append(
                Problem(
                    doc.where((*here, "handle"), account=account.id),
                    f"the same {account.platform} handle is already registered on line {handles[key]}",
                )
            )
            continue
        if account.department not in known_departments:
            problems.append(
                Problem(
                    doc.where((*here, "department"), account=account.id),
                    f"unknown department '{account.department}' (not in departments.yaml)",
                )
            )
            continue
        ids[account.id] = doc.line_of((*here, "id")) or 0
        handles[key] = doc.line_of((*here, "handle")) or 0
        out.append(account)
    return out, doc.problems + problems


def load_policy(doc: YamlDocument, departments: Iterable[Department]) -> tuple[Policy | None, list[Problem]]:
    if doc.data is None:
        if not doc.problems:
            doc.problems.append(Problem(Where(file=doc.file), "file is empty; expected the policy mapping"))
        return None, doc.problems
    if not isinstance(doc.data, dict):
        return None, [*doc.problems, Problem(doc.where(()), "expected a mapping at the top")]
    policy, problems = _validate(Policy, doc.data, doc, ())
    problems = doc.problems + problems
    if policy and policy.pr_department not in {d.id for d in departments}:
        problems.append(
            Problem(
                doc.where(("pr_department",)), f"unknown department '{policy.pr_department}' (not in departments.yaml)"
            )
        )
    return policy, problems


def load_config(directory: Path | None = None) -> KohoConfig:
    """Load the three config files. Never raises for bad content: problems are collected."""
    directory = directory or config_dir()
    dept_doc = load_yaml(directory / "departments.yaml")
    departments, problems = load_departments(dept_doc)
    policy, policy_problems = load_policy(load_yaml(directory / "policy.yaml"), departments)
    accounts, account_problems = load_accounts(load_yaml(directory / "accounts.yaml"), departments)
    return KohoConfig(accounts, departments, policy, problems + policy_problems + account_problems)
