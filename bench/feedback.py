"""``feedback``: routing residents' comments keeps up with the bare tokenizer.

**Target:** routing (NFKC, bounded text, Sudachi normalized forms, keyword and synonym matching,
scores, the reason in Japanese) runs at **≥ 0.6× the throughput of the bare tokenizer**
(``tokenize`` of the same texts with the same Sudachi tokenizer, nothing read from the result),
measured in the same run, on this thread's CPU time (wall time is printed too); and every
generated comment that names a department's keywords reaches that department (≥ 0.99: a fast
router that routes wrongly would be no answer).

Comments are generated deterministically (seeded) from the demo city's departments.yaml: one
to three filler sentences residents write, with zero to two keywords or synonyms of one
department woven in (one in ten also mentions another department's word), and sometimes a
question or a request. They are measured in chunks of
1,000, bare and routed alternately in each chunk (the order flips every chunk), so that the
machine's load drifts over both equally.

Sizes: 1,000,000 comments (``--quick``: 20,000). ``python bench/feedback.py --comments N`` for
another size.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator

if __package__ in (None, ""):  # run as a script: python bench/feedback.py
    sys.path[:0] = [str(__import__("pathlib").Path(__file__).resolve().parents[1])]

from bench.runner import BenchResult, Target, setup_paths

FULL = 1_000_000
QUICK = 20_000
CHUNK = 1_000

FILLERS = [
    "いつも市の情報をありがとうございます。",
    "昨日の夕方、近所を歩いていて気づきました。",
    "家族で話していたのですが、",
    "子どもと一緒に出かけたときのことです。",
    "先週の土曜日に見かけました。",
    "毎朝通る場所なので気になっています。",
    "よろしくお願いします。",
    "私の住んでいる地域の話です。",
    "友人からも同じことを聞きました。",
    "前から思っていたことがあります。",
]
ENDINGS = ["", "どうなっていますか？", "対応してください。", "確認をお願いします。", "助かりました。", ""]


def comments(n: int, departments, seed: int = 1) -> Iterator[tuple[str, str | None]]:
    """``(text, department the main keywords came from or None)``, the same for the same ``n`` and seed."""
    rng = random.Random(seed)
    words = [(d.id, [*d.keywords, *(s for syn in d.synonyms.values() for s in syn)]) for d in departments]
    for _ in range(n):
        parts = rng.sample(FILLERS, rng.randint(1, 3))
        dept: str | None = None
        if rng.random() < 0.85:
            dept, terms = rng.choice(words)
            for _ in range(rng.randint(1, 2)):
                term = rng.choice(terms)
                parts.insert(rng.randrange(len(parts) + 1), f"{term}のことで")
            if rng.random() < 0.1:  # a passing mention of another department's word
                _, others = rng.choice([w for w in words if w[0] != dept])
                parts.insert(rng.randrange(len(parts) + 1), f"{rng.choice(others)}も")
        parts.append(rng.choice(ENDINGS))
        yield "".join(parts), dept


def _timed_bare(tokenizer, texts: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds to tokenize ``texts``, nothing read from the result."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for text in texts:
        tokenizer.tokenize(text)
    return time.perf_counter() - wall, time.thread_time() - cpu


def _timed_routing(router, texts: list[str]) -> tuple[float, float, list]:
    wall, cpu = time.perf_counter(), time.thread_time()
    out = [router.route(text) for text in texts]
    return time.perf_counter() - wall, time.thread_time() - cpu, out


def measure(n: int) -> BenchResult:
    from koho.config import load_config
    from koho.feedback.routing import Router
    from koho.text.japanese import tokenizer

    config = load_config()
    assert config.policy is not None, config.problems
    router = Router(config.departments, config.policy.pr_department, config.policy.feedback.routing)
    bare = tokenizer()
    source = comments(n, config.departments)
    bare_s = routed_s = bare_cpu_s = routed_cpu_s = 0.0
    total = right = expected = fallback = shared = chars = 0
    flip = False
    while total < n:
        chunk = [next(source) for _ in range(min(CHUNK, n - total))]
        texts = [text for text, _ in chunk]

        if flip:
            wall, cpu, routings = _timed_routing(router, texts)
            bare_wall, bare_cpu = _timed_bare(bare, texts)
        else:
            bare_wall, bare_cpu = _timed_bare(bare, texts)
            wall, cpu, routings = _timed_routing(router, texts)
        bare_s += bare_wall
        bare_cpu_s += bare_cpu
        routed_s += wall
        routed_cpu_s += cpu
        flip = not flip
        for (text, dept), routing in zip(chunk, routings, strict=True):
            chars += len(text)
            fallback += routing.fallback
            shared += len(routing.departments) > 1
            if dept is not None:
                expected += 1
                right += dept in routing.department_ids
        total += len(chunk)

    ratio = bare_cpu_s / routed_cpu_s  # throughputs' ratio: (n / routed) / (n / bare)
    wall_ratio = bare_s / routed_s
    correct = right / expected if expected else 1.0
    figures = {
        "comments": total,
        "mean characters per comment": round(chars / total, 1),
        "bare tokenizer, CPU (s)": round(bare_cpu_s, 2),
        "bare tokenizer, CPU (comments/s)": round(total / bare_cpu_s),
        "routing, CPU (s)": round(routed_cpu_s, 2),
        "routing, CPU (comments/s)": round(total / routed_cpu_s),
        "routing / bare throughput, CPU": round(ratio, 3),
        "bare tokenizer, wall (s)": round(bare_s, 2),
        "routing, wall (s)": round(routed_s, 2),
        "routing / bare throughput, wall": round(wall_ratio, 3),
        "routed to the PR section (no keyword)": fallback,
        "shared with several departments": shared,
        "keyword comments routed to their department": round(correct, 4),
    }
    targets = [
        Target.at_least("routing / bare tokenizer throughput (CPU)", round(ratio, 3), 0.6),
        Target.at_least("keyword comments routed to their department", round(correct, 4), 0.99),
    ]
    notes = [
        "Baseline: Sudachi split mode C, core dictionary, the router's own tokenizer object, "
        "`tokenize(text)` per comment with nothing read from the morphemes; chunks of "
        f"{CHUNK:,}, bare and routed alternately.",
        "The target is on this thread's CPU time (time.thread_time): on a shared machine, wall time also "
        "counts the moments other processes held the cores, which fall on either side by chance; the wall "
        "figures are printed beside it.",
    ]
    return BenchResult("feedback", figures, targets, notes)


def run(args) -> BenchResult:
    size = getattr(args, "comments", None) or (QUICK if getattr(args, "quick", False) else FULL)
    return measure(size)


def main(argv: list[str] | None = None) -> int:
    from bench.runner import print_result

    setup_paths()
    p = argparse.ArgumentParser(prog="python bench/feedback.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--comments", type=int, default=FULL, help=f"how many comments (default {FULL:,})")
    p.add_argument("--quick", action="store_true", help=f"{QUICK:,} comments")
    args = p.parse_args(argv)
    if args.comments < 1:
        p.error("--comments must be at least 1")
    started = time.monotonic()
    result = run(argparse.Namespace(comments=QUICK if args.quick else args.comments, quick=args.quick))
    print_result(result, time.monotonic() - started)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
