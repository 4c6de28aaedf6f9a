"""The feedback section of policy.yaml and departments' synonyms: validated, located errors."""

from __future__ import annotations

from koho.config import load_config
from tests.unit.config.test_config_loading import DEPARTMENTS, POLICY, write_config


def test_shipped_config_has_synonyms_and_feedback_rules(demo_config) -> None:
    childcare = demo_config.departments_by_id["childcare"]

    assert "保育所" in childcare.synonyms["保育園"]
    assert demo_config.policy.feedback.marks.words.abuse
    assert demo_config.policy.feedback.storms.baseline_buckets == 7 * 24 * 6


def test_a_policy_without_feedback_section_gets_the_defaults(tmp_path) -> None:
    config = load_config(write_config(tmp_path))

    assert config.problems == []
    assert config.policy.feedback.storms.window_buckets == 6


def test_a_synonym_of_no_keyword_is_located(tmp_path) -> None:
    departments = DEPARTMENTS + "    synonyms:\n      歩道: [歩道橋]\n"  # line 10 on, under 'roads'
    config = load_config(write_config(tmp_path, departments_yaml=departments))

    [problem] = [p for p in config.problems if p.where.file == "departments.yaml"]
    assert problem.where.field == "departments[1].synonyms"
    assert problem.where.line == 10
    assert "'歩道'" in problem.message and "not one of this department's keywords" in problem.message
    assert [d.id for d in config.departments] == ["pr"]


def test_a_bad_storm_parameter_is_located(tmp_path) -> None:
    policy = POLICY + "feedback:\n  storms:\n    negative_share: 1.5\n"  # negative_share on line 22
    config = load_config(write_config(tmp_path, policy_yaml=policy))

    [problem] = config.problems
    assert problem.where.field == "feedback.storms.negative_share"
    assert problem.where.line == 22


def test_an_unknown_mark_list_is_refused(tmp_path) -> None:
    policy = POLICY + "feedback:\n  marks:\n    words:\n      praise: [すごい]\n"
    config = load_config(write_config(tmp_path, policy_yaml=policy))

    [problem] = config.problems
    assert problem.where.field == "feedback.marks.words.praise"
    assert "unknown field" in problem.message
