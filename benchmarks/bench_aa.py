"""Benchmark and A/A check of benrl.evaluation.stats at the paper's scale.

1. Time `compare_evals` on 60 evals x 100 paired items with 2000 bootstrap resamples
   (and the default 10,000 sign flips), the size of a full benrl report.
2. A/A check: two runs of the same model (per-item Bernoulli, item-specific rates) on
   53 evals; how often does anything come out significant at BH q < 0.05? It should be
   at most 5%. For contrast, the same data with raw p < 0.05 and no correction.

Run: python benchmarks/bench_aa.py [repetitions]
"""

import sys
import time

import numpy as np

from benrl.evaluation.stats import aa_false_discovery, compare_evals, paired_comparison


def _pair(rng: np.random.Generator, n: int, shift: float = 0.0):
    p = rng.uniform(0.05, 0.95, n)
    a = rng.random(n) < np.clip(p + shift, 0, 1)
    b = rng.random(n) < p
    return (
        {f"r{i}": float(x) for i, x in enumerate(a)},
        {f"r{i}": float(x) for i, x in enumerate(b)},
    )


def _make_null(n_evals: int, n_items: int):
    def make(rep: int):
        rng = np.random.default_rng(rep)
        pairs = [_pair(rng, n_items) for _ in range(n_evals)]
        first = {f"e{e}": a for e, (a, _) in enumerate(pairs)}
        second = {f"e{e}": b for e, (_, b) in enumerate(pairs)}
        return first, second

    return make


def bench_compare(n_evals: int = 60, n_items: int = 100, n_boot: int = 2000) -> None:
    rng = np.random.default_rng(0)
    scores = {}
    for e in range(n_evals):
        a, b = _pair(rng, n_items, shift=0.1 if e % 2 else 0.0)
        scores[f"e{e}"] = {"model": a, "baseline": b}
    compare_evals(scores, "model", "baseline", n_boot=n_boot)  # warm-up
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        compare_evals(scores, "model", "baseline", n_boot=n_boot)
        runs.append(time.perf_counter() - start)
    print(
        f"compare_evals {n_evals} evals x {n_items} items x {n_boot} bootstrap: "
        f"median {np.median(runs):.3f} s, min {min(runs):.3f} s over {len(runs)} runs"
    )


def bench_aa(repetitions: int, n_evals: int = 53, n_items: int = 100) -> None:
    make = _make_null(n_evals, n_items)
    start = time.perf_counter()
    result = aa_false_discovery(make, repetitions, alpha=0.05)
    elapsed = time.perf_counter() - start
    print(
        f"A/A, {n_evals} evals x {n_items} items, BH q < 0.05: flagged {result.flagged} of "
        f"{repetitions} repetitions ({result.share:.1%}) in {elapsed:.1f} s"
    )
    raw = 0
    for rep in range(repetitions):
        first, second = make(rep)
        ps = [paired_comparison(first[e], second[e], n_boot=10).p_value for e in first]
        raw += min(ps) < 0.05
    print(f"A/A, same data, raw p < 0.05 without correction: {raw / repetitions:.1%}")


if __name__ == "__main__":
    bench_compare()
    bench_aa(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
