"""Channels are adapters, not branches: no code outside ``koho.channels`` asks "is this the website
(or the newsletter)?". It reads every module's syntax tree and fails on a comparison with a
channel's name, or on a name such as ``WEBSITE`` that stands for one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from koho.channels.registry import CHANNELS, ENTRY_CHECKS

ROOT = Path(__file__).resolve().parents[3]
NAMES = {name.lower() for name in (*CHANNELS, *ENTRY_CHECKS)}
CONSTANTS = {f"{name.upper()}{suffix}" for name in NAMES for suffix in ("", "_TARGET", "_CHANNEL")}


def branches(source: str) -> list[int]:
    """Line numbers where ``source`` compares with a channel's name or names a channel constant."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                values = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                if any(isinstance(v, ast.Constant) and str(v.value).lower() in NAMES for v in values):
                    found.append(node.lineno)
        elif isinstance(node, ast.Name | ast.alias):
            name = node.id if isinstance(node, ast.Name) else node.name
            if name in CONSTANTS:
                found.append(node.lineno)
    return found


def modules() -> list[Path]:
    library = ROOT / "plugins" / "koho"
    return [
        path
        for path in [*library.rglob("*.py"), *(ROOT / "dags").glob("*.py")]
        if "channels" not in path.relative_to(ROOT).parts
    ]


@pytest.mark.parametrize(
    "snippet",
    [
        'if account.platform == "website":\n    pass',
        'ok = "newsletter" in entry.channels',
        'skip = name in ("website", "x")',
        "from koho.delivery.planner import WEBSITE",
        "targets.append(WEBSITE_TARGET)",
    ],
)
def test_the_check_finds_a_channel_branch(snippet):
    assert branches(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        'CHANNELS = ("social", "website", "newsletter")',  # a vocabulary, not a branch
        "exempt = exempt_from_caps()",
        'if account.platform == "x":\n    pass',
        "return requires_access_view(AccessView.WEBSITE)",  # Airflow's own enum member
    ],
)
def test_the_check_leaves_vocabulary_and_other_comparisons_alone(snippet):
    assert not branches(snippet)


def test_no_module_outside_the_channels_package_branches_on_a_channel():
    found = {
        f"{path.relative_to(ROOT)}:{line}" for path in modules() for line in branches(path.read_text(encoding="utf-8"))
    }
    assert not found, "channel-specific branches belong in the channel's adapter: " + ", ".join(sorted(found))
