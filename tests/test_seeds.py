"""Tests for evaluation/seeds.py: the hierarchical bootstrap against exact enumeration,
its seed-level calibration, and its use in `compare_evals`."""

import itertools
import math

import numpy as np
import pytest

from benrl.evaluation.headlines import headline
from benrl.evaluation.seeds import (
    INFERENCE_CONDITIONAL,
    INFERENCE_HIERARCHICAL,
    bootstrap_replicates,
    hierarchical_test,
    seed_df,
)
from benrl.evaluation.stats import compare_evals, paired_comparison


def _inflated(m: np.ndarray) -> np.ndarray:
    s = m.shape[0]
    centre = m.mean(axis=0)
    return centre + math.sqrt(s / (s - 1)) * (m - centre) if s > 1 else m


def _exact(a: np.ndarray, b: np.ndarray, paired: bool) -> np.ndarray:
    """Every replicate of the bootstrap by brute force: all ordered seed and item draws.

    Every tuple of draws is equally likely, so the list is the exact bootstrap distribution.
    """
    n = a.shape[1]
    item_draws = list(itertools.product(range(n), repeat=n))
    values = []
    if paired:
        d = _inflated(a - b)
        for rows in itertools.product(range(d.shape[0]), repeat=d.shape[0]):
            for cols in item_draws:
                values.append(np.mean([d[r, c] for r in rows for c in cols]))
        return np.array(values)
    ia, ib = _inflated(a), _inflated(b)
    for ra in itertools.product(range(a.shape[0]), repeat=a.shape[0]):
        for rb in itertools.product(range(b.shape[0]), repeat=b.shape[0]):
            for cols in item_draws:
                left = np.mean([ia[r, c] for r in ra for c in cols])
                right = np.mean([ib[r, c] for r in rb for c in cols])
                values.append(left - right)
    return np.array(values)


@pytest.mark.parametrize(
    ("a", "b", "paired"),
    [
        ([[1, 0, 1], [0, 0, 1]], [[0, 0, 1], [1, 0, 0]], True),
        ([[1, 0.5], [0, 1]], [[0, 0], [1, 0], [0.5, 1]], False),
        ([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 0]], [[0, 0, 1, 0]], False),  # vs one model
    ],
)
def test_bootstrap_matches_exact_enumeration(a, b, paired):
    a, b = np.array(a, float), np.array(b, float)
    exact = _exact(a, b, paired)
    draws = bootstrap_replicates(a, b, paired, 200_000, np.random.default_rng(1))
    # Monte Carlo error of 200k draws: the mean within 5 SE, the SD within 1.5%,
    # and the quartiles where the exact distribution puts them.
    assert draws.mean() == pytest.approx(exact.mean(), abs=5 * exact.std() / math.sqrt(2e5))
    assert draws.std() == pytest.approx(exact.std(), rel=0.015)
    for q in (0.25, 0.5, 0.75):
        x = np.quantile(exact, q) + 1e-9  # the distributions have atoms: compare their CDFs
        assert np.mean(draws <= x) == pytest.approx(np.mean(exact <= x), abs=0.01)


def test_seed_df_paired_and_welch():
    a = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    assert seed_df(a, a, paired=True) == 2.0
    # one arm with a single model: its seeds - 1
    assert seed_df(a, np.zeros((1, 2)), paired=False) == pytest.approx(2.0)
    # Welch-Satterthwaite of equal variances and sizes: 2 (S - 1)
    assert seed_df(a, a[::-1], paired=False) == pytest.approx(4.0)


def test_hierarchical_test_refuses_one_seed_per_arm_and_misaligned_items():
    with pytest.raises(ValueError, match="two seeds"):
        hierarchical_test(np.ones((1, 3)), np.ones((1, 3)), False, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="align"):
        hierarchical_test(np.ones((2, 3)), np.ones((2, 4)), False, 10, np.random.default_rng(0))


def _seed_null(rng: np.random.Generator, seeds: int, n: int, seed_sd: float):
    """Two arms with no real difference: each seed shifts every item's rate of one eval."""
    p = rng.uniform(0.2, 0.8, n)
    u = rng.random(n)  # the shared sampling seed: identical answers where rates are close
    draw = lambda: (u < np.clip(p + rng.normal(0, seed_sd), 0, 1)).astype(float)  # noqa: E731
    return np.array([draw() for _ in range(seeds)]), np.array([draw() for _ in range(seeds)])


def test_seed_level_p_values_are_calibrated_where_item_level_ones_are_not():
    rng = np.random.default_rng(3)
    hier, item = [], []
    for _ in range(200):
        a, b = _seed_null(rng, 3, 60, 0.06)
        hier.append(hierarchical_test(a, b, True, 100, rng).p_value < 0.05)
        ids = [f"r{i}" for i in range(60)]
        mean_a, mean_b = (
            dict(zip(ids, a.mean(0), strict=True)),
            dict(zip(ids, b.mean(0), strict=True)),
        )
        item.append(paired_comparison(mean_a, mean_b, n_boot=10, n_perm=1000).p_value < 0.05)
    assert np.mean(hier) <= 0.07  # at most alpha, up to Monte Carlo noise
    assert np.mean(item) > 0.2  # the item-level test mistakes seed noise for effects


def _per_seed(rng, seeds_by_arm: dict[str, int], n: int = 30, shift: float = 0.0):
    out = {}
    for arm, k in seeds_by_arm.items():
        bump = shift if arm == "m" else 0.0
        out[arm] = {
            s: {f"r{i}": float(rng.random() < 0.5 + bump) for i in range(n)} for s in range(k)
        }
    return out


def _means(per_seed: dict) -> dict:
    return {
        arm: {rid: float(np.mean([s[rid] for s in seeds.values()])) for rid in seeds[0]}
        for arm, seeds in per_seed.items()
    }


def test_compare_evals_uses_seeds_where_an_arm_has_several():
    rng = np.random.default_rng(5)
    per_seed = {"multi": _per_seed(rng, {"m": 3, "base": 3}), "single": None}
    per_seed["single"] = _per_seed(rng, {"m": 1, "base": 1})
    scores = {name: _means(arms) for name, arms in per_seed.items()}
    rows = {r.eval: r for r in compare_evals(scores, "m", "base", n_boot=300, per_seed=per_seed)}
    multi, single = rows["multi"].comparison, rows["single"].comparison
    assert multi.inference == INFERENCE_HIERARCHICAL and multi.p_method == "hierarchical t"
    assert (multi.n_seeds_a, multi.n_seeds_b, multi.seed_df) == (3, 3, 2.0)
    assert multi.item_p_value is not None and multi.seed_sd_a is not None
    assert multi.ci_low < multi.diff < multi.ci_high
    assert single.inference == INFERENCE_CONDITIONAL and single.item_p_value is None
    plain = {r.eval: r for r in compare_evals(scores, "m", "base", n_boot=300)}
    assert plain["multi"].comparison.p_value == multi.item_p_value  # the item-level test kept


def test_headline_says_what_the_cis_are_conditional_on():
    rng = np.random.default_rng(6)
    per_seed = {"e": _per_seed(rng, {"m": 1, "base": 1})}
    rows = compare_evals({"e": _means(per_seed["e"])}, "m", "base", n_boot=100, per_seed=per_seed)
    assert headline(rows, "m", "base").endswith("; conditional on one training run")
    per_seed = {"e": _per_seed(rng, {"m": 3, "base": 2})}
    rows = compare_evals({"e": _means(per_seed["e"])}, "m", "base", n_boot=100, per_seed=per_seed)
    assert "; hierarchical over training seeds (3 vs 2 seeds)" in headline(rows, "m", "base")


def test_seeds_by_arm_sets_each_arms_training_seeds():
    from pathlib import Path

    from benrl.config import RunConfig
    from benrl.run import Run

    cfg = RunConfig.model_validate(
        {
            "train": {
                "arms": ["baseline", "beneficial", "generic"],
                "seeds": 1,
                "seeds_by_arm": {"baseline": 3, "beneficial": 2},
            },
            "eval": {"models": ["pre", "baseline", "beneficial", "generic"]},
        }
    )
    assert cfg.train.seed_counts() == {"baseline": 3, "beneficial": 2, "generic": 1}
    assert Run(cfg, Path("unused")).model_ids() == [
        "pre",
        "baseline-s0",
        "baseline-s1",
        "baseline-s2",
        "beneficial-s0",
        "beneficial-s1",
        "generic-s0",
    ]
    with pytest.raises(ValueError, match="seeds_by_arm names 'generic', which arms does not"):
        RunConfig.model_validate({"train": {"arms": ["baseline"], "seeds_by_arm": {"generic": 3}}})
