"""Degradation maths of the stress stage: per-item changes, groups, arm comparisons.

A stress condition (a persona prompt, a fine-tuning dose) is scored on the same items
as its reference; degradation per item = stressed score - reference score. Items are
pooled by group: `health` (evals whose domains are exactly health), `non_health` (every
other alignment eval) and `capability` (standard tasks), so a stress that breaks the
model's skills is not mistaken for one that changes its character; a caller may add
groups defined by their items. Arms are compared by their difference in degradation:
with several training seeds the hierarchical test over seeds, then items
(`evaluation.seeds.hierarchical_test`); with one seed each a bootstrap over items,
conditional on that training run.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

import numpy as np

from benrl import models
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.seeds import INFERENCE_CONDITIONAL, INFERENCE_HIERARCHICAL, hierarchical_test
from benrl.evaluation.stats import bootstrap_ci, standard_error

GROUPS = ("health", "non_health", "capability")

ItemKey = tuple[str, str]  # (eval name, record id)
ItemScores = dict[ItemKey, float]
Groups = Mapping[str, set[ItemKey]]  # extra groups: name -> the items in it


def eval_group(name: str) -> str:
    ev = registered_evals()[name]
    if ev.category == "capability":
        return "capability"
    return "health" if ev.domains == ["health"] else "non_health"


def flatten(scores: Mapping[str, Mapping[str, float]]) -> ItemScores:
    """{eval: {id: score}} -> {(eval, id): score}."""
    return {(name, rid): s for name, by_id in scores.items() for rid, s in by_id.items()}


def degradation(stressed: ItemScores, reference: ItemScores) -> ItemScores:
    """Per item answered in both: stressed score - reference score."""
    return {k: s - reference[k] for k, s in stressed.items() if k in reference}


def in_group(items: ItemScores, group: str, extra: Groups | None = None) -> ItemScores:
    """The items of a group: by eval (`eval_group`), or an item set of `extra`."""
    if extra and group in extra:
        return {k: v for k, v in items.items() if k in extra[group]}
    return {k: v for k, v in items.items() if eval_group(k[0]) == group}


def by_arm(per_model: Mapping[str, ItemScores]) -> dict[str, ItemScores]:
    """Per arm, each item's value averaged over the arm's seeds that have it."""
    collected: dict[str, dict[ItemKey, list[float]]] = {}
    for model_id, items in per_model.items():
        arm = collected.setdefault(models.arm_of(model_id), {})
        for key, value in items.items():
            arm.setdefault(key, []).append(value)
    return {arm: {k: sum(v) / len(v) for k, v in items.items()} for arm, items in collected.items()}


def by_arm_seeds(per_model: Mapping[str, ItemScores]) -> dict[str, dict[int, ItemScores]]:
    """Per arm, per training seed: the model's items (`pre` counts as seed 0)."""
    out: dict[str, dict[int, ItemScores]] = {}
    for model_id, items in per_model.items():
        out.setdefault(models.arm_of(model_id), {})[models.seed_of(model_id)] = dict(items)
    return out


def seed_diff_in_degradation(
    a: Mapping[int, ItemScores], b: Mapping[int, ItemScores], n_boot: int, label: str
) -> dict | None:
    """Like `diff_in_degradation`, with the training seed as a unit (`hierarchical_test`).

    Uses the items every seed of both arms has; seeds are paired when both arms have the
    same seed indices. None when no item is shared.
    """
    seeds = [*a.values(), *b.values()]
    common = [k for k in seeds[0] if all(k in s for s in seeds[1:])]
    if not common:
        return None
    matrix_a = np.array([[a[s][k] for k in common] for s in sorted(a)])
    matrix_b = np.array([[b[s][k] for k in common] for s in sorted(b)])
    rng = np.random.default_rng(zlib.crc32(label.encode()))
    test = hierarchical_test(matrix_a, matrix_b, sorted(a) == sorted(b), n_boot, rng)
    return {
        "diff": test.diff,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "n": len(common),
        "p_value": test.p_value,
        "inference": INFERENCE_HIERARCHICAL,
        "n_seeds": [test.n_seeds_a, test.n_seeds_b],
    }


def mean_se(values: Iterable[float]) -> dict:
    """Mean, standard error (`stats.standard_error`: None below two items) and n."""
    v = np.fromiter(values, dtype=float)
    if v.size == 0:
        return {"mean": None, "se": None, "n": 0}
    return {"mean": float(v.mean()), "se": standard_error(v), "n": int(v.size)}


def diff_in_degradation(a: ItemScores, b: ItemScores, n_boot: int, label: str) -> dict | None:
    """mean(a - b) over the items both have, with a 95% percentile bootstrap CI.

    Items are resampled with replacement, keeping each item's pair together; the
    resampling seed comes from `label`, so a row's CI does not depend on the others.
    None when no item is shared.
    """
    common = [k for k in a if k in b]
    if not common:
        return None
    d = np.array([a[k] - b[k] for k in common])
    low = high = float(d.mean())  # one item: every resample is that item
    if d.size > 1:
        low, high = bootstrap_ci(d, n_boot, np.random.default_rng(zlib.crc32(label.encode())))
    return {"diff": float(d.mean()), "ci_low": low, "ci_high": high, "n": len(common)}


def comparisons(
    per_arm: Mapping[str, ItemScores],
    compare: str,
    n_boot: int,
    label: str,
    per_seed: Mapping[str, Mapping[int, ItemScores]] | None = None,
    extra: Groups | None = None,
) -> list[dict]:
    """`compare` against every other arm, per group: difference in degradation.

    With `per_seed` (`by_arm_seeds`), a pair where an arm has several seeds uses the
    seed-level test; a pair with one seed each is marked conditional on one training run.
    `extra` adds groups defined by their items (as `in_group`).
    """
    rows = []
    if compare not in per_arm:
        return rows
    for other in sorted(a for a in per_arm if a != compare):
        for group in (*GROUPS, *(extra or {})):
            pair = f"{compare} vs {other}"
            where = f"{label}/{pair}/{group}"
            seeds = per_seed and [per_seed[compare], per_seed[other]]
            if seeds and max(len(seeds[0]), len(seeds[1])) > 1:
                result = seed_diff_in_degradation(
                    *({k: in_group(v, group, extra) for k, v in s.items()} for s in seeds),
                    n_boot,
                    where,
                )
            else:
                result = diff_in_degradation(
                    in_group(per_arm[compare], group, extra),
                    in_group(per_arm[other], group, extra),
                    n_boot,
                    where,
                )
                if result and per_seed:
                    result["inference"] = INFERENCE_CONDITIONAL
            if result:
                rows.append({"pair": pair, "against": other, "group": group, **result})
    return rows
