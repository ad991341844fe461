"""How far the headline can be trusted: a seed A/A, a per-probe summary, the effective evals.

1. Seed A/A: the reference arm's (baseline's) training seeds are split into two halves
   and compared as if they were two arms, through the same `compare_evals` the report
   uses. Any eval it flags is a false discovery: run-to-run noise the statistics took
   for an effect. The report prints the count beside the headline, with the item-level
   test's count on the same split for contrast.
2. Per probe: the organism's evals slice each behaviour probe by domain cluster, and
   slices of one probe move together, so "ahead on X of 64" counts correlated units.
   The per-probe summary pools each probe's clusters (items keyed by eval) and tests
   the pooled difference, again through `compare_evals` (BH across probes).
3. Effective number of evals: N / (1 + (k - 1) x ICC), the design effect of evals
   clustered in probes, with the ICC of the per-eval differences within probes
   (one-way ANOVA estimator, clipped to [0, 1]; k the mean evals per probe).
"""

from __future__ import annotations

import numpy as np

from benrl.config import RunConfig
from benrl.evaluation.headlines import headline, pooled_comparison
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.stats import (
    EvalComparison,
    aggregate_seeds,
    benjamini_hochberg,
    compare_evals,
)

AA_HALVES = ("half 1", "half 2")


def seed_aa(per_seed: dict, cfg: RunConfig, arm: str | None = None) -> dict:
    """Split `arm`'s seeds (default eval.against) in halves and compare them on every eval.

    Returns the halves, the evals flagged by the report's test (`flagged`) and by the
    item-level test on seed-averaged items (`flagged_item_level`), and a one-line
    summary (`line`). With fewer than two seeds there is nothing to split.
    """
    arm = arm or cfg.eval.against
    seeds = sorted({s for arms in per_seed.values() for s in arms.get(arm, {})})
    result: dict = {"arm": arm, "seeds": seeds}
    if len(seeds) < 2:
        line = f"seed A/A: needs two or more {arm} seeds (this run has {len(seeds)})"
        return {**result, "available": False, "line": line}
    halves = (seeds[: len(seeds) // 2], seeds[len(seeds) // 2 :])
    split = {
        name: {
            label: {s: arms[arm][s] for s in half}
            for label, half in zip(AA_HALVES, halves, strict=True)
        }
        for name, arms in per_seed.items()
        if arm in arms and all(s in arms[arm] for s in seeds)
    }
    rows = compare_evals(
        _means(split), *AA_HALVES, cfg.eval.alpha, cfg.eval.bootstrap, cfg.seed, per_seed=split
    )
    flagged = [r.eval for r in rows if r.significant_gain or r.significant_regression]
    item_p = [
        r.comparison.p_value if r.comparison.item_p_value is None else r.comparison.item_p_value
        for r in rows
    ]
    item_q = benjamini_hochberg(item_p)
    flagged_items = [r.eval for r, q in zip(rows, item_q, strict=True) if q < cfg.eval.alpha]
    test = rows[0].comparison.inference if rows else "none"
    line = (
        f"seed A/A ({arm} seeds {halves[0]} vs {halves[1]}, {test}): {len(flagged)} of "
        f"{len(rows)} evals flagged (item-level test on the same split: {len(flagged_items)})"
    )
    return {
        **result,
        "available": True,
        "halves": [list(h) for h in halves],
        "n_evals": len(rows),
        "flagged": flagged,
        "flagged_item_level": flagged_items,
        "line": line,
    }


def probe_summary(
    scores: dict,
    per_seed: dict,
    model: str,
    against: str,
    cfg: RunConfig,
) -> dict:
    """`model` vs `against` per probe, pooled over its cluster evals; rows and a headline."""
    probe_of = {n: ev.probe for n, ev in registered_evals().items() if ev.probe}
    pooled: dict[str, dict] = {}
    pooled_seeds: dict[str, dict] = {}
    n_evals: dict[str, int] = {}
    for name, arms in scores.items():
        probe = probe_of.get(name)
        if probe is None or model not in arms or against not in arms:
            continue
        n_evals[probe] = n_evals.get(probe, 0) + 1
        for arm in (model, against):
            keyed = {f"{name}/{rid}": v for rid, v in arms[arm].items()}
            pooled.setdefault(probe, {}).setdefault(arm, {}).update(keyed)
            for seed, by_id in per_seed[name][arm].items():
                keyed = {f"{name}/{rid}": v for rid, v in by_id.items()}
                pooled_seeds.setdefault(probe, {}).setdefault(arm, {}).setdefault(seed, {}).update(
                    keyed
                )
    if not pooled:
        return {"rows": [], "headline": None, "all_evals": None}
    rows = compare_evals(
        pooled, model, against, cfg.eval.alpha, cfg.eval.bootstrap, cfg.seed, per_seed=pooled_seeds
    )
    line = headline(rows, model, against, cfg.eval.alpha).replace(" evals;", " probes;", 1)
    return {
        "headline": f"per probe, pooled over clusters: {line}",
        "rows": [_probe_row(r, n_evals[r.eval]) for r in rows],
        "all_evals": _all_evals(scores, per_seed, model, against, cfg),
    }


def _all_evals(scores: dict, per_seed: dict, model: str, against: str, cfg: RunConfig) -> dict:
    """Every eval's items pooled into one comparison: the mean difference with its CI.

    With equal items per eval this is the headline's mean difference, now with a CI
    and p-value from the same test (the one figure that held across the issue's runs).
    """
    names = [n for n, arms in scores.items() if model in arms and against in arms]
    c = pooled_comparison(
        scores, model, against, names, cfg.eval.bootstrap, cfg.seed, per_seed=per_seed
    )
    return {
        "evals": len(names),
        "n": c.n,
        "diff": c.diff,
        "ci_low": c.ci_low,
        "ci_high": c.ci_high,
        "p_value": c.p_value,
        "inference": c.inference,
        "line": f"all {len(names)} evals pooled: {model} - {against} {100 * c.diff:+.1f} pp "
        f"[{100 * c.ci_low:+.1f}, {100 * c.ci_high:+.1f}], p = {c.p_value:.3g} ({c.inference})",
    }


def _probe_row(r: EvalComparison, n_evals: int) -> dict:
    c = r.comparison
    return {
        "probe": r.eval,
        "evals": n_evals,
        "n": c.n,
        "diff": c.diff,
        "ci_low": c.ci_low,
        "ci_high": c.ci_high,
        "q_value": r.q_value,
        "significant_gain": r.significant_gain,
        "significant_regression": r.significant_regression,
    }


def effective_evals(evals: list[dict]) -> dict:
    """Design-effect estimate of the independent units among the compared evals.

    `evals` are results.json comparison rows; evals without a probe count as one unit
    each. Returns n (evals), icc, evals_per_probe and n_effective.
    """
    probe_of = {n: ev.probe for n, ev in registered_evals().items() if ev.probe}
    groups: dict[str, list[float]] = {}
    singles = 0
    for e in evals:
        probe = probe_of.get(e["eval"])
        if probe is None:
            singles += 1
        else:
            groups.setdefault(probe, []).append(e["comparison"]["diff"])
    icc, k = _icc(list(groups.values()))
    clustered = sum(len(g) for g in groups.values())
    n_eff = singles + (clustered / (1 + (k - 1) * icc) if clustered else 0.0)
    return {
        "n": len(evals),
        "icc": icc,
        "evals_per_probe": k,
        "n_effective": round(n_eff, 1),
    }


def _icc(groups: list[list[float]]) -> tuple[float, float]:
    """One-way ANOVA ICC(1) of values in groups and the (unbalanced) group size k0."""
    groups = [g for g in groups if g]
    n = sum(len(g) for g in groups)
    if len(groups) < 2 or n <= len(groups):
        return 0.0, float(n / len(groups)) if groups else 1.0
    grand = np.mean([x for g in groups for x in g])
    ms_between = sum(len(g) * (np.mean(g) - grand) ** 2 for g in groups) / (len(groups) - 1)
    ms_within = sum(((np.array(g) - np.mean(g)) ** 2).sum() for g in groups) / (n - len(groups))
    k0 = (n - sum(len(g) ** 2 for g in groups) / n) / (len(groups) - 1)
    denominator = ms_between + (k0 - 1) * ms_within
    icc = (ms_between - ms_within) / denominator if denominator > 0 else 0.0
    return float(min(1.0, max(0.0, icc))), float(k0)


def _means(per_seed: dict) -> dict:
    """Per eval and arm: each item's mean over the seeds that scored it."""
    return {
        n: {arm: aggregate_seeds(seeds) for arm, seeds in arms.items()}
        for n, arms in per_seed.items()
    }
