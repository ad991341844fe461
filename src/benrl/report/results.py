"""The report's result computations: everything results.json holds except the paper's figures.

Reads the scored samples of every evaluated model, keeps each training seed apart,
compares arms pairwise by record id (`stats.compare_evals`: with several seeds the
hierarchical test over seeds then items, with one the paired item bootstrap and
sign-flip p-values marked conditional on one training run; Benjamini-Hochberg across
evals) and derives the transfer table, the probe x cluster matrix, the seed spread and
the stage times. Every eval is placed on the paper's split (`evaluation.split`: out of
distribution, in distribution or capability), and each comparison gets a headline on
the OOD evals and one on the in-distribution evals beside the all-evals one: the paper
reads its result off evals of traits no arm trained on. The training logs give each
arm's training signal (zero-spread GRPO groups, reward first -> last). Kept apart from
the rendering (markdown.py, html.py) so the numbers can be computed and tested without
writing a report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from benrl.analysis.stress import stress_results
from benrl.config import RunConfig
from benrl.evaluation.headlines import headline, pooled_comparison, restrict, tally
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import load_scores
from benrl.evaluation.split import distribution, held_out
from benrl.evaluation.stats import EvalComparison, aggregate_seeds, compare_evals, seed_spread
from benrl.evaluation.suites import register_byo
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


# The paper's contrasts, in report order: the headline; "the reward, not the prompts"
# (generic sees the same prompts with a reward blind to the trait rubric); the drift of
# RL from the untrained model without and with trait data.
PAPER_PAIRS = (
    ("beneficial", "baseline"),
    ("beneficial", "generic"),
    ("baseline", "pre"),
    ("beneficial", "pre"),
)
# The subsets of evals each comparison gets its own headline on (`evaluation.split`).
SPLITS = ("ood", "in_distribution")


def comparison_pairs(arms: list[str], cfg: RunConfig) -> list[tuple[str, str]]:
    """(model, against) pairs: the paper's four (`PAPER_PAIRS`) whose arms were evaluated,
    every other trained arm vs baseline, eval.compare vs pre and eval.compare vs
    eval.against.

    Without a baseline arm, every arm is compared with the first one.
    """
    if "baseline" not in arms:
        return [(a, arms[0]) for a in arms[1:]]
    pairs = [(a, b) for a, b in PAPER_PAIRS if a in arms and b in arms]
    pairs += [(a, "baseline") for a in arms if a not in ("baseline", "pre", "beneficial")]
    configured = [(cfg.eval.compare, "pre"), (cfg.eval.compare, cfg.eval.against)]
    for a, b in configured:
        if a in arms and b in arms and a != b and (a, b) not in pairs:
            pairs.append((a, b))
    return pairs


def eval_distributions(names: Iterable[str], cfg: RunConfig) -> dict[str, str | None]:
    """Per eval: ood, in_distribution or capability for this run's held-out traits
    (`split.distribution`); None for an eval no longer registered."""
    register_byo(cfg)  # the bring-your-own evals are registered when a config names them
    evals = registered_evals()
    held = held_out(cfg)
    return {n: distribution(evals[n], held) if n in evals else None for n in names}


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
    distributions: dict[str, str | None] | None = None,
) -> dict[str, dict]:
    """Per "<model>_vs_<against>": the headline on all evals (with and without refusals),
    one on the OOD and one on the in-distribution evals (`split_summary`), and every
    eval with its distribution and its q-value within that distribution's evals.

    With `per_seed` (`load_seed_scores`), arms with several seeds are compared with the
    training seed as a unit (`stats.compare_evals`).
    """
    distributions = distributions or {}
    comparisons = {}
    for model, against in pairs:
        key = f"{model}_vs_{against}"
        comps = comparisons_for(scores, refusals, model, against, cfg, per_seed=per_seed)
        no_ref = comparisons_for(
            scores, refusals, model, against, cfg, exclude_refusals=True, per_seed=per_seed
        )
        groups = _by_distribution(comps, distributions)
        restricted = {
            split: restrict(comps, names, cfg.eval.alpha) for split, names in groups.items()
        }
        within = {r.eval: r.q_value for rows in restricted.values() for r in rows}
        comparisons[key] = {
            "headline": headline(comps, model, against, cfg.eval.alpha),
            "headline_excluding_refusals": refusal_free_headline(comps, no_ref, cfg.eval.alpha),
            **{
                split: split_summary(restricted.get(split, []), scores, per_seed, cfg)
                for split in SPLITS
            },
            "evals": [
                {
                    **asdict(c),
                    "distribution": distributions.get(c.eval),
                    "q_within_distribution": within.get(c.eval),
                }
                for c in comps
            ],
        }
    return comparisons


def _by_distribution(
    comps: list[EvalComparison], distributions: dict[str, str | None]
) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for c in comps:
        if distributions.get(c.eval):
            groups.setdefault(distributions[c.eval], []).append(c.eval)
    return groups


def split_summary(
    rows: list[EvalComparison], scores: dict, per_seed: dict | None, cfg: RunConfig
) -> dict | None:
    """The headline on one set of evals, `rows` with BH redone across them (`restrict`);
    None without any.

    The counts are `headlines.tally`'s. mean_diff is the mean over these evals; ci_low /
    ci_high and p_value come from one test of their items pooled
    (`headlines.pooled_comparison`: over training seeds, then items, with several seeds).
    """
    if not rows:
        return None
    model, against = rows[0].model, rows[0].against
    names = [r.eval for r in rows]
    pooled = pooled_comparison(
        scores, model, against, names, cfg.eval.bootstrap, cfg.seed, per_seed=per_seed
    )
    return {
        **asdict(tally(rows, cfg.eval.alpha)),
        "ci_low": pooled.ci_low,
        "ci_high": pooled.ci_high,
        "p_value": pooled.p_value,
        "inference": pooled.inference,
        "headline": headline(rows, model, against, cfg.eval.alpha),
    }


def category_effects(
    key: str, comp: dict, scores: dict, per_seed: dict | None, cfg: RunConfig
) -> dict:
    """One comparison's mean difference per eval category, OOD and in distribution apart.

    Rows: distribution, category, evals, diff (the category's items pooled, so the mean
    over its evals), its 95% CI and the test it comes from (`headlines.pooled_comparison`).
    """
    categories = {n: ev.category for n, ev in registered_evals().items()}
    groups: dict[tuple[str, str], list[str]] = {}
    for e in comp["evals"]:
        if e["distribution"] in SPLITS:
            groups.setdefault((e["distribution"], categories[e["eval"]]), []).append(e["eval"])
    model, against = key.split("_vs_", 1)
    rows = []
    for (split, category), names in sorted(groups.items()):
        c = pooled_comparison(
            scores, model, against, names, cfg.eval.bootstrap, cfg.seed, per_seed=per_seed
        )
        rows.append(
            {
                "distribution": split,
                "category": category,
                "evals": len(names),
                "diff": c.diff,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
            }
        )
    inference = c.inference if rows else None
    return {
        "comparison": key,
        "ci": f"95% CI of the pooled items' test ({inference})",
        "rows": rows,
    }


def main_key(comparisons: dict[str, dict], compare: str, against: str) -> str:
    """The configured comparison's key (eval.compare vs eval.against), else the first one."""
    key = f"{compare}_vs_{against}"
    return key if key in comparisons else next(iter(comparisons))


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


def read_logs(run_dir: Path, model_ids: list[str]) -> dict[str, list[dict]]:
    """Each trained model's training log (arms/<model>/log.jsonl), by model id."""
    logs = {}
    for model_id in model_ids:
        path = run_dir / "arms" / model_id / "log.jsonl"
        if path.exists():
            logs[model_id] = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return logs


def training_signal(logs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per arm, averaged over its seeds: did GRPO have a reward signal to learn from?

    zero_spread_groups: mean over logged steps of frac_reward_zero_std, the share of
    prompts whose sampled answers all got the same reward (no advantage, no gradient).
    reward_first / reward_last: mean reward over the first / last tenth of the logged
    steps; trait_reward_first / _last: the same for the trait rows' reward alone (the
    rubric for beneficial, the blind generic score for generic). Each is computed per
    seed, then averaged over the seeds that logged it.
    """
    per_arm: dict[str, list[dict]] = {}
    for model_id, rows in logs.items():
        per_arm.setdefault(arm_of(model_id), []).append(_seed_signal(rows))
    return {
        arm: {"seeds": len(runs), **{k: _mean([r[k] for r in runs]) for k in runs[0]}}
        for arm, runs in per_arm.items()
    }


TRAIT_REWARD = "rewards/reward_trait/mean"  # the reward of the trait rows alone (5% of rows)


def _seed_signal(rows: list[dict]) -> dict[str, float | None]:
    tenth = max(1, len(rows) // 10)  # the windows of `train.summarize_log`
    return {
        "zero_spread_groups": _mean(_logged(rows, "frac_reward_zero_std")),
        "reward_first": _mean(_logged(rows[:tenth], "reward")),
        "reward_last": _mean(_logged(rows[-tenth:], "reward")),
        "trait_reward_first": _mean(_logged(rows[:tenth], TRAIT_REWARD)),
        "trait_reward_last": _mean(_logged(rows[-tenth:], TRAIT_REWARD)),
    }


def _logged(rows: list[dict], key: str) -> list[float]:
    """The key's numbers in these log rows (TRL logs NaN for a quantity absent in a step)."""
    return [r[key] for r in rows if isinstance(r.get(key), int | float) and r[key] == r[key]]


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def run_summaries(run_dir: Path, model_ids: list[str]) -> dict:
    """What the other stages recorded: seeds, training, organism card, stress, directions, times.

    The keys are in the order results.json lists them; stage times are read last.
    """
    # here, not at the top: the stage module imports torch and transformers (4 s), and
    # `benrl report readme` needs only its JSON reader
    from benrl.analysis.directions_stage import directions_results

    return {
        "seeds": seed_table(run_dir, model_ids),
        "training": _read_json(run_dir / "arms" / "summary.json"),
        "training_signal": training_signal(read_logs(run_dir, model_ids)),
        "organism_card": _read_json(run_dir / "organism" / "card.json"),
        "stress": stress_results(run_dir) if (run_dir / "stress").exists() else {},
        "directions": directions_results(run_dir),
        "stage_seconds": stage_seconds(run_dir),
        "stage_spans": stage_spans(run_dir),
    }


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def stage_seconds(run_dir: Path) -> dict[str, float]:
    """Each part's own seconds (a stage folder's manifest), by part name."""
    return {data["stage"]: data.get("seconds") for data in _manifests(run_dir)}


def stage_spans(run_dir: Path) -> dict[str, list[float]]:
    """Each part's [start, end] in seconds since the epoch, by part name."""
    spans = {}
    for data in _manifests(run_dir):
        if data.get("seconds") is None or "started" not in data:
            continue
        start = data.get("started_epoch") or _epoch(data["started"])
        spans[data["stage"]] = [start, start + data["seconds"]]
    return spans


def _manifests(run_dir: Path) -> list[dict]:
    return [json.loads(m.read_text()) for m in sorted(run_dir.glob("**/manifest.json"))]


def _epoch(started: str) -> float:
    """A manifest's UTC start (to the second, as manifests before `started_epoch` have it)."""
    return datetime.strptime(started, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def stage_totals(spans: dict[str, list[float]]) -> dict[str, float]:
    """Wall seconds per pipeline stage, and their total.

    A stage's time is the time covered by its parts' [start, end] spans: parts that ran
    side by side (`workers: 2`) count once, parts one after another add up. Glue between
    parts (loading records, writing summaries) is not in any manifest, so the total is a
    little below the wall time the run printed. The report stage is left out: it is
    still running when this is written.
    """
    stage_of_folder = {"arms": "train", "evals": "eval"}  # other folders are named as stages
    by_stage: dict[str, list[list[float]]] = {}
    for part, span in spans.items():
        folder = part.split("/")[0]
        by_stage.setdefault(stage_of_folder.get(folder, folder), []).append(span)
    in_order = sorted(by_stage, key=lambda s: STAGES.index(s) if s in STAGES else len(STAGES))
    totals = {stage: _covered(by_stage[stage]) for stage in in_order}
    totals = {k: v for k, v in totals.items() if v and k != "report"}
    totals["total"] = sum(totals.values())
    return totals


def _covered(spans: list[list[float]]) -> float:
    """Length of the union of [start, end] intervals."""
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered
