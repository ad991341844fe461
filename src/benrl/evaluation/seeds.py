"""Inference with the training seed as a unit: a hierarchical bootstrap over seeds and items.

Why: a trained model is one draw from its training procedure. Two RL runs of the same
arm that differ only in their seed differ per eval by about twice the item-level SE
(measured on the organism: 3.0 pp seed-to-seed SD vs 1.6 pp SE), so a test that
resamples only items answers "is this one model better than that one model?", not
"does this arm beat that arm?". Averaging seeds per item and then resampling items
makes this worse: more seeds shrink the item SE while the seed-to-seed spread stays.

What: each arm's scores on one eval are a (seeds x items) matrix over the items every
seed of both arms scored. One bootstrap replicate

1. resamples seeds with replacement (one shared draw for both arms when they trained
   the same seed indices, so seed s of one arm stays paired with seed s of the other);
2. resamples items with replacement, once per replicate, shared by every seed and both
   arms: every seed answers the same items (items are crossed with seeds, not nested
   in them), and a shared draw keeps each item paired across arms, which removes the
   item-difficulty variance from the difference (Owen 2007, "the pigeonhole bootstrap").

With few seeds a bootstrap over seeds underestimates their variance by (S - 1) / S,
so each arm's seed deviations are inflated by sqrt(S / (S - 1)) before resampling. The
replicates' SD is the hierarchical SE; the p-value and CI use Student's t with the seed
degrees of freedom (S - 1 when paired, Welch-Satterthwaite otherwise), because a
percentile interval over 3 seeds has too few distinct values to be trusted in the tails
BH looks at. Everything is vectorised: a block of replicates is two matrix products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

# A standard error this close to 0 means every resample gave the same difference.
_SE_TOLERANCE = 1e-12
# Replicates drawn per block, to bound memory on big evals (block x items floats).
_BLOCK_ROWS = 4096

INFERENCE_HIERARCHICAL = "hierarchical over training seeds"
INFERENCE_CONDITIONAL = "conditional on one training run"


@dataclass(frozen=True)
class SeedTest:
    """The hierarchical comparison of two arms on one eval (d = arm a - arm b).

    diff: mean over seeds of the per-seed mean differences. se: SD of the bootstrap
    replicates (seeds, then items). df: the seed degrees of freedom of the t reference.
    ci_low, ci_high: diff +- t(0.975, df) x se. p_value: two-sided, from t = diff / se.
    seed_sd_a, seed_sd_b: SD (ddof=1) of each arm's per-seed means on the compared items,
    None with one seed. paired: seeds paired by index.
    """

    diff: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float
    n_seeds_a: int
    n_seeds_b: int
    seed_sd_a: float | None
    seed_sd_b: float | None
    paired: bool
    n_boot: int


def hierarchical_test(
    a: np.ndarray, b: np.ndarray, paired: bool, n_boot: int, rng: np.random.Generator
) -> SeedTest:
    """Compare arm a (seeds x items) with arm b (seeds x items) on the same item columns.

    `paired` pairs row s of a with row s of b (they must have as many rows). At least
    one arm needs two seeds: with one seed each there is no seed variance to estimate.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise ValueError(f"hierarchical_test: shapes {a.shape} and {b.shape} do not align")
    if paired and a.shape[0] != b.shape[0]:
        raise ValueError("hierarchical_test: paired arms need the same number of seeds")
    if max(a.shape[0], b.shape[0]) < 2:
        raise ValueError("hierarchical_test: needs two seeds in at least one arm")
    diff = float(a.mean() - b.mean())
    replicates = bootstrap_replicates(a, b, paired, n_boot, rng)
    se = float(np.std(replicates, ddof=1)) if n_boot > 1 else 0.0
    df = seed_df(a, b, paired)
    if se <= _SE_TOLERANCE:
        p = 1.0 if abs(diff) <= _SE_TOLERANCE else 0.0
        low = high = diff
    else:
        p = float(2 * sps.t.sf(abs(diff) / se, df))
        half = float(sps.t.ppf(0.975, df)) * se
        low, high = diff - half, diff + half
    return SeedTest(
        diff=diff,
        se=se,
        df=df,
        ci_low=low,
        ci_high=high,
        p_value=min(1.0, p),
        n_seeds_a=a.shape[0],
        n_seeds_b=b.shape[0],
        seed_sd_a=_seed_sd(a),
        seed_sd_b=_seed_sd(b),
        paired=paired,
        n_boot=n_boot,
    )


def bootstrap_replicates(
    a: np.ndarray, b: np.ndarray, paired: bool, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """`n_boot` resampled mean differences: seeds (shared draw when paired), then items.

    A replicate's seed draw is a vector of seed weights (draw counts / S), so the
    resampled per-item values are w_a @ a - w_b @ b; the item draw then averages those
    values over n items drawn with replacement.
    """
    if paired:
        a, b = _inflate(a - b), np.zeros((1, b.shape[1]))  # resample the paired differences
    else:
        a, b = _inflate(a), _inflate(b)
    n_items = a.shape[1]
    out = np.empty(n_boot)
    for start in range(0, n_boot, _BLOCK_ROWS):
        rows = min(_BLOCK_ROWS, n_boot - start)
        per_item = _seed_weights(rng, rows, a.shape[0]) @ a
        per_item -= _seed_weights(rng, rows, b.shape[0]) @ b  # (rows, items)
        items = rng.integers(0, n_items, size=(rows, n_items))
        out[start : start + rows] = np.take_along_axis(per_item, items, axis=1).mean(axis=1)
    return out


def _seed_weights(rng: np.random.Generator, rows: int, seeds: int) -> np.ndarray:
    """(rows, seeds) weights: how often each seed was drawn in `seeds` draws, / seeds."""
    drawn = rng.integers(0, seeds, size=(rows, seeds))
    return (drawn[:, :, None] == np.arange(seeds)).sum(axis=1) / seeds


def seed_df(a: np.ndarray, b: np.ndarray, paired: bool) -> float:
    """Degrees of freedom of the seed-level t reference.

    Paired: S - 1. Otherwise Welch-Satterthwaite on the per-seed means of the arms that
    have two or more seeds (an arm with one seed adds no variance estimate); at least 1.
    """
    if paired:
        return float(a.shape[0] - 1)
    arms = [m for m in (a, b) if m.shape[0] > 1]
    parts = [(m.mean(axis=1).var(ddof=1) / m.shape[0], m.shape[0] - 1) for m in arms]
    total = sum(v for v, _ in parts)
    denominator = sum(v * v / k for v, k in parts)
    if denominator <= 0:  # no seed spread at all: fall back to the larger arm's seeds - 1
        return float(max(k for _, k in parts))
    return max(1.0, total * total / denominator)


def _inflate(m: np.ndarray) -> np.ndarray:
    """Scale the rows' deviations from their mean by sqrt(S / (S - 1)) (S = rows >= 2).

    The bootstrap variance of a mean over S resampled rows is (S - 1) / S times the
    unbiased one; this undoes that bias for the seed level.
    """
    s = m.shape[0]
    if s < 2:
        return m
    centre = m.mean(axis=0, keepdims=True)
    return centre + math.sqrt(s / (s - 1)) * (m - centre)


def _seed_sd(m: np.ndarray) -> float | None:
    return float(m.mean(axis=1).std(ddof=1)) if m.shape[0] > 1 else None
