"""The feedback benchmark runs and routes its generated comments right (its speed is judged in bench/)."""

from __future__ import annotations

import argparse

from bench import BENCHMARKS, feedback


def test_generated_comments_are_deterministic(demo_config) -> None:
    first = list(feedback.comments(50, demo_config.departments, seed=3))

    assert first == list(feedback.comments(50, demo_config.departments, seed=3))
    assert first != list(feedback.comments(50, demo_config.departments, seed=4))
    assert any(dept is None for _, dept in first) and any(dept for _, dept in first)


def test_benchmark_runs_small_and_routes_every_keyword_comment_to_its_department() -> None:
    assert BENCHMARKS["feedback"] == "bench.feedback"
    result = feedback.run(argparse.Namespace(comments=1_500, quick=True))

    assert result.figures["comments"] == 1_500
    assert result.figures["keyword comments routed to their department"] == 1.0
    assert {t.name for t in result.targets} == {
        "routing / bare tokenizer throughput (CPU)",
        "keyword comments routed to their department",
    }
