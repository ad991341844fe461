"""Seed A/A: how often do two arms with NO real difference get a "significant" eval?

Synthetic data calibrated to the organism's measured spread (issue 15: per-eval seed SD
~3.0 pp of a seed's mean, ~1.6 pp item-level SE of a 2-seed comparison, 95% of
completions identical between two seeds, 64 evals of ~100 items). Each eval has item
rates p_i; each training seed shifts an eval's rates by delta ~ N(0, sd_eval) and each
item's by eta ~ N(0, sd_item); every model shares one uniform u_i per item (all models
sample with the same seed, which is why most completions are identical), and scores
1[u_i < p_i + delta + eta]. Both arms draw their seeds from the same distribution, so
any flagged eval is a false discovery.

Per repetition, both arms get `seeds` seeds and every eval is compared twice through
`stats.compare_evals`: item-level (seeds averaged per item, sign-flip p) and
hierarchical (seeds, then items). A repetition "flags" when any eval has BH q < 0.05.
The family-wise flag rate should be <= 5%.

Run: cd benchmarks && python bench_seed_aa.py [repetitions]   (default 200)
Prints the table and writes benchmarks/results/bench_seed_aa.json.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from figures import save_figures

from benrl.evaluation.stats import aggregate_seeds, benjamini_hochberg, compare_evals

N_EVALS, N_ITEMS = 64, 100
SD_EVAL, SD_ITEM = 0.03, 0.036  # per-seed shifts of an eval's rates and of each item's rate
ALPHA = 0.05
IDS = [f"r{i}" for i in range(N_ITEMS)]
# Sign flips of the item-level test: its smallest p, 1/2001, is below BH's first
# threshold 0.05/64, so every eval can still be flagged.
N_PERM = 2000
N_BOOT = 300  # the hierarchical SE only: 300 replicates estimate it within ~4%


def simulate(rng: np.random.Generator, seeds: int) -> dict:
    """per_seed[eval][arm][seed][record id] for arms A and B, no real difference."""
    out = {}
    for e in range(N_EVALS):
        p = rng.uniform(0.1, 0.9, N_ITEMS)
        u = rng.random(N_ITEMS)
        arms = {}
        for arm in ("A", "B"):
            rates = (
                p + rng.normal(0, SD_EVAL, (seeds, 1)) + rng.normal(0, SD_ITEM, (seeds, N_ITEMS))
            )
            scores = (u < np.clip(rates, 0, 1)).astype(float)
            arms[arm] = {
                s: dict(zip(IDS, row.tolist(), strict=True)) for s, row in enumerate(scores)
            }
        out[f"e{e}"] = arms
    return out


def calibration(rng: np.random.Generator, repetitions: int = 20) -> dict:
    """The synthetic data's spread, in the units the issue measured."""
    seed_sd, item_se, identical = [], [], []
    for _ in range(repetitions):
        per_seed = simulate(rng, 2)
        scores = {
            e: {a: aggregate_seeds(s) for a, s in arms.items()} for e, arms in per_seed.items()
        }
        for row in compare_evals(scores, "A", "B", n_boot=10, n_perm=10):
            item_se.append(row.comparison.se)
        for arms in per_seed.values():
            a0, a1 = (np.array(list(arms["A"][s].values())) for s in (0, 1))
            seed_sd.append(np.std([a0.mean(), a1.mean()], ddof=1))
            identical.append(np.mean(a0 == a1))
    return {
        "seed_sd_pp": round(100 * float(np.sqrt(np.mean(np.square(seed_sd)))), 2),
        "item_se_pp_two_seeds": round(100 * float(np.mean(item_se)), 2),
        "identical_share": round(float(np.mean(identical)), 3),
    }


def flag_rates(seeds: int, repetitions: int, rng: np.random.Generator) -> dict:
    """Family-wise flag rates (any of the 64 evals at BH q < alpha), item-level vs hierarchical."""
    item_flags = hier_flags = 0
    for rep in range(repetitions):
        per_seed = simulate(rng, seeds)
        scores = {
            e: {a: aggregate_seeds(s) for a, s in arms.items()} for e, arms in per_seed.items()
        }
        rows = compare_evals(scores, "A", "B", ALPHA, N_BOOT, rep, n_perm=N_PERM, per_seed=per_seed)
        hier_flags += any(r.significant_gain or r.significant_regression for r in rows)
        item_p = [
            r.comparison.p_value if r.comparison.item_p_value is None else r.comparison.item_p_value
            for r in rows
        ]
        item_flags += min(benjamini_hochberg(item_p)) < ALPHA
    return {
        "seeds_per_arm": seeds,
        "repetitions": repetitions,
        "item_level_flag_rate": item_flags / repetitions,
        "hierarchical_flag_rate": hier_flags / repetitions if seeds > 1 else None,
    }


def _means(seeds: dict) -> dict:
    """Per-item means over seeds (every seed scores every item here: a fast aggregate_seeds)."""
    matrix = np.array([list(by_id.values()) for by_id in seeds.values()])
    return dict(zip(IDS, matrix.mean(axis=0).tolist(), strict=True))


def main(repetitions: int) -> None:
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    figures = {
        "evals": N_EVALS,
        "items": N_ITEMS,
        "sd_eval": SD_EVAL,
        "sd_item": SD_ITEM,
        "alpha": ALPHA,
        "calibration": calibration(rng),
        "rows": [flag_rates(s, repetitions, rng) for s in (1, 2, 3)],
    }
    figures["seconds"] = round(time.perf_counter() - started, 1)
    save_figures("bench_seed_aa", figures)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
