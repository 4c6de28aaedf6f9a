"""Keep the benchmarks from rotting: each registered benchmark runs at its ``--quick`` size.

Speed targets live in bench/, not here: a noisy test machine must not fail the suite, so these
tests check that each benchmark runs and reports, and assert only what no machine load can
change (posts stored exactly once, no failures). ``make bench`` is where targets are judged.
"""

from __future__ import annotations

import argparse
from functools import cache

import pytest

from bench import BENCHMARKS
from bench.runner import BenchResult, Target, format_result, load, main, table


@cache
def quick_result(name: str) -> BenchResult:
    """One quick run per benchmark for the whole module (the platforms one waits out real windows)."""
    return load(name).run(argparse.Namespace(names=[name], quick=True, list=False))


#: Benchmarks that start a whole Airflow (emergency, lateness, exactly_once) are kept from rotting
#: by the end-to-end tests that drive the same code (tests/e2e); their quick runs take minutes.
IN_PROCESS = [name for name in BENCHMARKS if name in ("platforms", "parse", "review")]


def test_every_benchmark_is_registered_and_importable() -> None:
    import importlib

    for name, module in BENCHMARKS.items():
        assert callable(importlib.import_module(module).run), name


@pytest.mark.parametrize("name", IN_PROCESS)
def test_benchmark_runs_at_quick_size(name: str) -> None:
    result = quick_result(name)

    assert isinstance(result, BenchResult)
    assert result.name == name
    assert result.figures and result.targets
    assert all(isinstance(t, Target) for t in result.targets)
    assert f"== bench {name}" in format_result(result)


def test_platforms_quick_posts_each_post_exactly_once() -> None:
    from bench import platforms

    result = quick_result("platforms")

    by_name = {t.name: t for t in result.targets}
    for name in (
        "posts stored in the sandbox",
        "duplicate posts",
        "lost posts",
        "failed publishes",
        "max 429s per account per window",
    ):
        assert by_name[name].ok, format_result(result)
    assert result.figures["posts"] == platforms.QUICK.posts
    assert result.figures["floor (s)"] > 0  # some accounts did have to wait for a window


def test_review_quick_judges_every_account_it_wrote() -> None:
    result = quick_result("review")
    assert result.figures["accounts"] == 100
    assert result.figures["snapshot rows"] > 100 * 300  # six stories, the new one has only 40 days
    counts = dict(line.split() for line in result.notes[0].splitlines()[2:])
    assert sum(int(n) for n in counts.values()) == 100
    assert {"KEEP", "IMPROVE", "RETIRE"} <= set(counts)


def test_floor_and_window_helpers() -> None:
    from bench.platforms import Account, max_in_window

    acc = Account("a", "x", "c", posts=[("k", None)] * 91, limit=25, window=10.0)
    assert acc.floor == 30.0  # ceil(91 / 25) - 1 = 3 full windows
    assert Account("b", "facebook", "c", posts=[("k", None)] * 91).floor == 0.0  # never limited
    assert max_in_window([0.0, 0.5, 9.9, 10.0, 25.0], 10.0) == 3
    assert max_in_window([], 10.0) == 0


def test_command_line_lists_and_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    assert "platforms" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["no-such-benchmark"])


def test_table_aligns_numbers() -> None:
    text = table(["name", "value"], [["a", 1.5], ["bb", 1000]])
    assert text.splitlines()[2].endswith("1.500")
    assert text.splitlines()[3].endswith("1,000")
