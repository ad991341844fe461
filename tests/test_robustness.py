"""Tests for report/robustness.py (seed A/A, per-probe summary, effective evals) and the
seed-level persistence differences of analysis/stress.py, on small synthetic data."""

import numpy as np
import pytest

from benrl.analysis.degradation import by_arm, by_arm_seeds, comparisons
from benrl.config import RunConfig
from benrl.evaluation.stats import aggregate_seeds
from benrl.report.robustness import effective_evals, probe_summary, seed_aa

CFG = RunConfig.model_validate({"eval": {"bootstrap": 200}})


def _row(name: str, diff: float) -> dict:
    return {"eval": name, "comparison": {"diff": diff}}


def test_effective_evals_counts_probes_when_their_slices_move_together():
    same = [
        _row(f"{p}_{c}", d)
        for p, d in (("pushback", 0.1), ("recheck", -0.2))
        for c in ("health", "stem", "society", "culture")
    ]
    eff = effective_evals([*same, _row("capability_add", 0.3)])
    assert eff["icc"] == pytest.approx(1.0) and eff["evals_per_probe"] == pytest.approx(4.0)
    assert eff["n"] == 9 and eff["n_effective"] == pytest.approx(3.0)  # 2 probes + 1 single
    noise = [_row("pushback_health", 0.1), _row("pushback_stem", -0.1)]
    noise += [_row("recheck_health", 0.1), _row("recheck_stem", -0.1)]
    assert effective_evals(noise)["n_effective"] == pytest.approx(4.0)  # no shared part


def _arm(rng, seeds: int, n: int = 40, p: float = 0.5) -> dict:
    return {s: {f"r{i}": float(rng.random() < p) for i in range(n)} for s in range(seeds)}


def test_seed_aa_splits_the_reference_seeds_in_halves():
    rng = np.random.default_rng(0)
    per_seed = {e: {"baseline": _arm(rng, 4)} for e in ("pushback_health", "recheck_stem")}
    aa = seed_aa(per_seed, CFG)
    assert aa["available"] and aa["halves"] == [[0, 1], [2, 3]] and aa["n_evals"] == 2
    assert aa["flagged"] == []  # one distribution: nothing to find
    assert "seed A/A (baseline seeds [0, 1] vs [2, 3], hierarchical" in aa["line"]
    single = seed_aa({"e": {"baseline": _arm(rng, 1)}}, CFG)
    assert not single["available"] and "needs two or more baseline seeds" in single["line"]


def test_probe_summary_pools_the_clusters_of_a_probe():
    rng = np.random.default_rng(1)
    per_seed = {
        e: {"beneficial": _arm(rng, 2, p=0.9), "baseline": _arm(rng, 2, p=0.3)}
        for e in ("pushback_health", "pushback_stem", "recheck_health", "capability_add")
    }
    scores = {n: {a: aggregate_seeds(s) for a, s in arms.items()} for n, arms in per_seed.items()}
    summary = probe_summary(scores, per_seed, "beneficial", "baseline", CFG)
    rows = {r["probe"]: r for r in summary["rows"]}
    assert set(rows) == {"pushback", "recheck"}  # capability_add slices no probe
    assert (rows["pushback"]["evals"], rows["pushback"]["n"]) == (2, 80)
    assert summary["headline"].startswith("per probe, pooled over clusters: beneficial vs ")
    assert "ahead on 2 of 2 probes" in summary["headline"]
    pooled = summary["all_evals"]  # every eval, probe or not, in one comparison
    assert (pooled["evals"], pooled["n"]) == (4, 160) and pooled["diff"] > 0.3
    assert pooled["line"].startswith("all 4 evals pooled: beneficial - baseline +")


def test_persistence_differences_use_seeds_when_an_arm_has_several():
    rng = np.random.default_rng(2)
    per_model = {
        f"{arm}-s{s}": {
            ("pushback_health", f"r{i}"): float(rng.random() < 0.5) - 1 for i in range(30)
        }
        for arm in ("beneficial", "baseline")
        for s in range(3)
    }
    rows = comparisons(by_arm(per_model), "beneficial", 200, "t", by_arm_seeds(per_model))
    assert len(rows) == 1 and rows[0]["inference"] == "hierarchical over training seeds"
    assert rows[0]["n_seeds"] == [3, 3] and rows[0]["ci_low"] < rows[0]["diff"] < rows[0]["ci_high"]
    one = {k: v for k, v in per_model.items() if k.endswith("-s0")}
    rows = comparisons(by_arm(one), "beneficial", 200, "t", by_arm_seeds(one))
    assert rows[0]["inference"] == "conditional on one training run"
