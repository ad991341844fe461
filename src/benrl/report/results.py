"""The report's result computations: everything results.json holds except the paper's figures.

Reads the scored samples of every evaluated model, keeps each training seed apart,
compares arms pairwise by record id (`stats.compare_evals`: with several seeds the
hierarchical test over seeds then items, with one the paired item bootstrap and
sign-flip p-values marked conditional on one training run; Benjamini-Hochberg across
evals) and derives the transfer table, the probe x cluster matrix, the seed spread and
the stage times. Kept apart from the rendering (markdown.py,
html.py) so the numbers can be computed and tested without writing a report.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from benrl.analysis.directions_stage import directions_results
from benrl.analysis.stress import stress_results
from benrl.config import RunConfig
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import load_scores
from benrl.evaluation.stats import (
    EvalComparison,
    aggregate_seeds,
    compare_evals,
    headline,
    seed_spread,
)
from benrl.models import arm_of, seed_of
from benrl.run import STAGES
from benrl.training.arms import arm_spec


def load_arm_scores(run_dir: Path, model_ids: list[str]) -> tuple[dict, dict]:
    """scores[eval][arm][record id] (seed-averaged) and refusals[eval][arm][record id]."""
    per_seed, refusals = load_seed_scores(run_dir, model_ids)
    return seed_means(per_seed), refusals


def load_seed_scores(run_dir: Path, model_ids: list[str]) -> tuple[dict, dict]:
    """per_seed[eval][arm][seed][record id] and refusals[eval][arm][record id].

    An item counts as refused by an arm when any of its seeds refused it.
    """
    per_arm: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    refusals: dict[str, dict[str, dict[str, bool]]] = {}
    for model_id in model_ids:
        arm, seed = arm_of(model_id), seed_of(model_id)
        scores, refused = load_scores(run_dir / "evals" / model_id)
        for name, by_id in scores.items():
            per_arm.setdefault(name, {}).setdefault(arm, {})[seed] = by_id
            flags = refusals.setdefault(name, {}).setdefault(arm, {})
            for rid, flag in refused[name].items():
                flags[rid] = flags.get(rid, False) or flag
    return per_arm, refusals


def seed_means(per_seed: dict) -> dict:
    """scores[eval][arm][record id]: each item's mean over the arm's seeds."""
    return {
        name: {arm: aggregate_seeds(seeds) for arm, seeds in arms.items()}
        for name, arms in per_seed.items()
    }


def arm_order(model_ids: list[str]) -> list[str]:
    """The arms of the evaluated models, in the order their first model appears."""
    return sorted(
        {arm_of(m) for m in model_ids},
        key=lambda a: model_ids.index(next(m for m in model_ids if arm_of(m) == a)),
    )


def comparison_pairs(arms: list[str], cfg: RunConfig) -> list[tuple[str, str]]:
    """(model, against) pairs: every trained arm vs baseline, and the main arm vs pre.

    Without a baseline arm, every arm is compared with the first one.
    """
    pairs = [(a, "baseline") for a in arms if a not in ("baseline", "pre")]
    if "pre" in arms and cfg.eval.compare in arms:
        pairs.append((cfg.eval.compare, "pre"))
    if "baseline" not in arms:
        pairs = [(a, arms[0]) for a in arms[1:]]
    return pairs


def comparisons_for(
    scores: dict,
    refusals: dict,
    model: str,
    against: str,
    cfg: RunConfig,
    exclude_refusals: bool = False,
    per_seed: dict | None = None,
) -> list[EvalComparison]:
    """`model` vs `against` on every eval both have; seed-level inference with `per_seed`."""
    usable = {n: arms for n, arms in scores.items() if model in arms and against in arms}
    return compare_evals(
        usable,
        model,
        against,
        alpha=cfg.eval.alpha,
        n_boot=cfg.eval.bootstrap,
        seed=cfg.seed,
        refusals=refusals,
        exclude_refusals=exclude_refusals,
        per_seed=per_seed,
    )


def all_comparisons(
    scores: dict,
    refusals: dict,
    pairs: list[tuple[str, str]],
    cfg: RunConfig,
    per_seed: dict | None = None,
) -> dict[str, dict]:
    """Per "<model>_vs_<against>": the headline (with and without refusals) and every eval.

    With `per_seed` (`load_seed_scores`), arms with several seeds are compared with the
    training seed as a unit (`stats.compare_evals`).
    """
    comparisons = {}
    for model, against in pairs:
        comps = comparisons_for(scores, refusals, model, against, cfg, per_seed=per_seed)
        no_ref = comparisons_for(
            scores, refusals, model, against, cfg, exclude_refusals=True, per_seed=per_seed
        )
        comparisons[f"{model}_vs_{against}"] = {
            "headline": headline(comps, model, against, cfg.eval.alpha),
            "headline_excluding_refusals": refusal_free_headline(comps, no_ref, cfg.eval.alpha),
            "evals": [asdict(c) for c in comps],
        }
    return comparisons


def main_comparison(comparisons: dict[str, dict], cfg: RunConfig) -> dict:
    """The configured comparison (eval.compare vs eval.against), else the first one."""
    main_key = f"{cfg.eval.compare}_vs_{cfg.eval.against}"
    return comparisons.get(main_key) or next(iter(comparisons.values()))


def refusal_free_headline(
    comps: list[EvalComparison], no_ref: list[EvalComparison], alpha: float
) -> str:
    """The headline with refusals excluded; evals where every item was refused are named."""
    model, against = comps[0].model, comps[0].against
    kept = {c.eval for c in no_ref}
    left_out = [c.eval for c in comps if c.eval not in kept]
    line = headline(no_ref, model, against, alpha) if no_ref else f"{model} vs {against}: none"
    if left_out:
        line += f" ({len(left_out)} evals left out, every paired item refused: "
        line += ", ".join(left_out) + ")"
    return line


def transfer_table(results: dict) -> list[dict]:
    """Per arm vs baseline: counts on evals whose domains the arm never trained on."""
    evals = registered_evals()
    all_domains = {d for ev in evals.values() for d in ev.domains}
    rows = []
    for key, comp in results["comparisons"].items():
        model, _, against = key.partition("_vs_")
        if against != "baseline":
            continue
        seen = arm_spec(model).trained_domains(all_domains)
        unseen = [
            e
            for e in comp["evals"]
            if evals.get(e["eval"])
            and evals[e["eval"]].domains
            and not set(evals[e["eval"]].domains) & seen
        ]
        rows.append(_transfer_row(model, seen, unseen))
    return rows


def _transfer_row(model: str, seen: set[str], unseen: list[dict]) -> dict:
    return {
        "arm": model,
        "trained_domains": sorted(seen),
        "unseen_evals": len(unseen),
        "ahead": sum(e["comparison"]["diff"] > 0 for e in unseen),
        "significant_gains": sum(e["significant_gain"] for e in unseen),
        "significant_regressions": sum(e["significant_regression"] for e in unseen),
        "mean_diff_pp": round(100 * sum(e["comparison"]["diff"] for e in unseen) / len(unseen), 2)
        if unseen
        else None,
    }


def trait_domain_matrix(comp: dict) -> dict[str, dict[str, float]]:
    """Probe x domain cluster: difference in pp (from the evals that slice both)."""
    evals = registered_evals()
    matrix: dict[str, dict[str, float]] = {}
    for e in comp["evals"]:
        ev = evals.get(e["eval"])
        if ev and ev.probe and ev.cluster:
            matrix.setdefault(ev.probe, {})[ev.cluster] = round(100 * e["comparison"]["diff"], 1)
    return matrix


def seed_table(run_dir: Path, model_ids: list[str]) -> dict[str, dict]:
    """Per arm: the mean over all evals for each seed, and their spread."""
    per_arm: dict[str, dict[int, dict[str, float]]] = {}
    for model_id in model_ids:
        if model_id == "pre":
            continue
        arm, seed = arm_of(model_id), seed_of(model_id)
        scores, _ = load_scores(run_dir / "evals" / model_id)
        flat = {f"{e}/{i}": v for e, by_id in scores.items() for i, v in by_id.items()}
        per_arm.setdefault(arm, {})[int(seed)] = flat
    return {arm: asdict(seed_spread(seeds)) for arm, seeds in per_arm.items()}


def run_summaries(run_dir: Path, model_ids: list[str]) -> dict:
    """What the other stages recorded: seeds, training, organism card, stress, directions, times.

    The keys are in the order results.json lists them; stage times are read last.
    """
    return {
        "seeds": seed_table(run_dir, model_ids),
        "training": _read_json(run_dir / "arms" / "summary.json"),
        "organism_card": _read_json(run_dir / "organism" / "card.json"),
        "stress": stress_results(run_dir) if (run_dir / "stress").exists() else {},
        "directions": directions_results(run_dir),
        "stage_seconds": stage_seconds(run_dir),
    }


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def stage_seconds(run_dir: Path) -> dict[str, float]:
    seconds = {}
    for manifest in sorted(run_dir.glob("**/manifest.json")):
        data = json.loads(manifest.read_text())
        seconds[data["stage"]] = data.get("seconds")
    return seconds


def stage_totals(seconds: dict[str, float | None]) -> dict[str, float]:
    """Seconds per pipeline stage (its parts' manifests summed) and their total.

    Glue between parts (loading records, writing summaries) is not in any manifest, so
    the total is a little below the wall time the run printed. The report stage is left
    out: it is still running when this is written.
    """
    stage_of_folder = {"arms": "train", "evals": "eval"}  # other folders are named as stages
    totals = dict.fromkeys(STAGES, 0.0)
    for part, value in seconds.items():
        folder = part.split("/")[0]
        stage = stage_of_folder.get(folder, folder)
        totals[stage] = totals.get(stage, 0.0) + (value or 0.0)
    totals = {k: v for k, v in totals.items() if v and k != "report"}
    totals["total"] = sum(totals.values())
    return totals
