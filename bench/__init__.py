"""Koho's benchmarks: ``python -m bench [name ...] [--quick]`` (``make bench`` runs them all).

Adding a benchmark is one module ``bench/<name>.py`` exposing ``run(args) -> BenchResult`` and
one line here. See bench/README.md for what each target means and how to read the ratios.
"""

from bench.runner import BenchResult, Target, print_result, table

#: name -> module path; ``python -m bench`` with no names runs them in this order.
BENCHMARKS: dict[str, str] = {
    "platforms": "bench.platforms",
    "emergency": "bench.emergency",
    "lateness": "bench.lateness",
    "parse": "bench.parse",
    "review": "bench.review",
    "feedback": "bench.feedback",
}

__all__ = ["BENCHMARKS", "BenchResult", "Target", "print_result", "table"]
