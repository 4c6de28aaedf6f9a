"""Target groups resolve to the right accounts; explicit ids to unusable accounts are reported."""

from __future__ import annotations

import pytest

from koho.calendar.targets import resolve_targets
from koho.errors import Where


def ids(accounts) -> list[str]:
    return [a.id for a in accounts]


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (["all"], ["city-x", "city-line", "city-instagram", "kosodate-line", "bousai-x", "kanko-instagram"]),
        (["すべて"], ["city-x", "city-line", "city-instagram", "kosodate-line", "bousai-x", "kanko-instagram"]),
        (["general"], ["city-x", "city-line", "city-instagram"]),
        (["special"], ["kosodate-line", "bousai-x", "kanko-instagram"]),
        (["topic:child_rearing"], ["kosodate-line"]),
        (["Topic:Tourism"], ["kanko-instagram"]),
        (["platform:instagram"], ["city-instagram", "kanko-instagram"]),
        (["platform:line", "city-x"], ["city-x", "city-line", "kosodate-line"]),
        (["city-x", "city-x", "general"], ["city-x", "city-line", "city-instagram"]),
        (["ＣＩＴＹ-Ｘ"], ["city-x"]),
    ],
)
def test_groups_and_ids(config, targets, expected):
    accounts, problems = resolve_targets(targets, config)
    assert problems == []
    assert ids(accounts) == expected


def test_groups_leave_out_retired_suspended_and_read_only_accounts(config):
    accounts, problems = resolve_targets(["all"], config)
    assert not {"old-x", "paused-facebook", "city-youtube"} & set(ids(accounts))
    assert problems == []


def test_explicit_accounts_that_cannot_post(config):
    accounts, problems = resolve_targets(
        ["old-x", "paused-facebook", "city-youtube", "city-x"],
        config,
        where=lambda i: Where(file="f.yaml", line=10 + i, field=f"targets[{i}]"),
    )
    assert ids(accounts) == ["city-x"]
    found = {(p.where.account, p.where.line, p.severity) for p in problems}
    assert found == {("old-x", 10, "error"), ("paused-facebook", 11, "warning"), ("city-youtube", 12, "error")}


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("nobody", "unknown account or group 'nobody'"),
        ("city-lin", "did you mean 'city-line'"),
        ("topic:sports", "known topics: child_rearing, disaster, tourism"),
        ("platform:tiktok", "platforms in the registry"),
        ("platform:youtube", "does not post to youtube"),
    ],
)
def test_unknown_targets_are_entry_level_errors(config, target, fragment):
    accounts, [problem] = resolve_targets([target, "city-x"], config)
    assert ids(accounts) == ["city-x"]
    assert fragment in problem.message
    assert problem.where.account is None and problem.where.field == "targets[0]"


def test_a_group_with_no_postable_account_is_a_warning(config):
    accounts, [problem] = resolve_targets(["platform:facebook"], config)
    assert accounts == [] and problem.severity == "warning" and "no active account" in problem.message
