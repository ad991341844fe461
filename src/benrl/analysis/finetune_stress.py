"""Harmful fine-tuning in the stress stage: ladders per fine-tuning seed, floor, area.

Each stressed model is fine-tuned toward harmful advice (`training/finetune.py`) once per
fine-tuning seed (`stress.finetune_seeds`; a seed draws other rows in another order),
saving the model at every dose of the ladder: `stress/finetune/<model-id>/seed-<k>/
dose-<N>/`. Dose 0, the model itself, is evaluated once (in seed 0's ladder). Every dose
answers the stress items with paired sampling (`stress.stress_options`), so a dose
differs from dose 0 only where the model changed.

The summary (`stress/finetune/summary.json`), per group of `degradation` plus
`untouched` (alignment items of probes the fine-tuning rows never contain, so damage
there can only arrive by generalization):
- rows: model x dose -> mean score (each item averaged over the fine-tuning seeds), its
  standard error over items, and the degradation from dose 0;
- floor: the mean score of the items' known bad answers (`reference["bad"]`), the score
  of a model that answers only badly. Doses where every model sits on the floor cannot
  tell models apart, so a useful ladder keeps some dose off it;
- auc: per pair of arms, the difference in the area under the degradation curve. Per
  item: the mean over the ladder's doses above 0 of (score at the dose - score at dose 0),
  averaged over the fine-tuning seeds; on a geometric ladder that is the area against
  log dose. Compared like every degradation (`degradation.comparisons`: over training
  seeds, then items);
- max_dose: the same comparison at the largest dose alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benrl.analysis.degradation import (
    GROUPS,
    ItemKey,
    ItemScores,
    by_arm,
    by_arm_seeds,
    comparisons,
    degradation,
    eval_group,
    flatten,
    in_group,
    mean_se,
)
from benrl.config import StressConfig
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import RunnerOptions, load_scores, run_evals
from benrl.records import ScenarioRecord, read_jsonl
from benrl.run import Run
from benrl.training.arms import probe_of
from benrl.training.finetune import dose_dir, finetune_ladder
from benrl.workers import Unit

HARMFUL_DATA = "organism"  # the organism's rows: the default of organism runs
UNTOUCHED = "untouched"
Items = Callable[[], dict[str, list[ScenarioRecord]]]  # the stress items, read when first needed


def harmful_source(run: Run) -> str | Path:
    """The harmful fine-tuning data: the user's chat JSONL, else the organism's rows."""
    return run.cfg.stress.harmful_data or HARMFUL_DATA


def ladder_dir(run_dir: Path, model_id: str, ft_seed: int) -> Path:
    return run_dir / "stress" / "finetune" / model_id / f"seed-{ft_seed}"


def finetune_seed(run_seed: int, ft_seed: int) -> int:
    """The seed of fine-tuning run `ft_seed` (0: the run seed itself)."""
    return run_seed + 1_000 * ft_seed


def ladder_units(
    run: Run,
    doses: list[int],
    model_ids: list[str],
    items: Items,
    identity: dict,
    options: RunnerOptions,
) -> list[Unit]:
    """Every model's ladder for every fine-tuning seed (each a resumable stage), but
    those whose stage folder is complete."""
    cfg = run.cfg.stress
    units = []
    for model_id in model_ids:
        for ft_seed in range(cfg.finetune_seeds):
            stage = run.stage(
                f"stress/finetune/{model_id}/seed-{ft_seed}",
                ("judge",),
                {"scenarios": run.eval_records, "model": run.model_dir(model_id)},
                extra={**identity, "finetune_seed": ft_seed},
            )
            if not run.should_run(stage, "stress"):
                continue
            message = f"harmful fine-tuning of {model_id}, seed {ft_seed}: doses {doses}"
            seed = finetune_seed(run.cfg.seed, ft_seed)
            model_dir = run.model_dir(model_id)
            ladder = (model_dir, doses, cfg, seed, stage.dir, harmful_source(run), ft_seed == 0)
            units.append(Unit(stage, message, run_ladder, (*ladder, items(), options)))
    return units


def run_ladder(
    figures: dict,
    model_dir: Path,
    doses: list[int],
    cfg: StressConfig,
    seed: int,
    out_dir: Path,
    source: str | Path,
    save_start: bool,
    items: dict[str, list[ScenarioRecord]],
    options: RunnerOptions,
) -> None:
    """One ladder: fine-tune `model_dir` dose by dose, evaluating the model at each dose."""
    figures["training"] = finetune_ladder(
        model_dir, doses, cfg, seed, out_dir, source, save_start=save_start
    )
    for dose in figures["training"]["doses"]:
        folder = dose_dir(out_dir, dose)
        run_evals(folder / "model", items, folder, options)


def untouched_items(run_dir: Path, model_ids: list[str], items: Items, seeds: int) -> set[ItemKey]:
    """Alignment items whose probe no fine-tuning row of any ladder contains.

    Empty when the rows name no source (a user's chat JSONL): nothing is known then.
    """
    touched = set()
    for model_id in model_ids:
        for ft_seed in range(seeds):
            path = ladder_dir(run_dir, model_id, ft_seed) / "data.jsonl"
            if path.is_file():
                touched |= {probe_of_row(r) for r in read_jsonl(path) if r.get("source")}
    if not touched:
        return set()
    return {
        (name, r.id)
        for name, records in items().items()
        for r in records
        if eval_group(name) != "capability" and probe_of(r) not in touched
    }


def probe_of_row(row: dict) -> str:
    """A fine-tuning row's probe: its source without the template (as `arms.probe_of`)."""
    return row["source"].rsplit("/", 1)[0]


def floor_scores(items: Items, options: RunnerOptions, extra: dict[str, set[ItemKey]]) -> dict:
    """Per group: the mean judge score of the items' known bad answers (`reference.bad`)."""
    evals = registered_evals()
    judges = options.judges()
    jobs = [
        (name, r)
        for name, records in items().items()
        for r in records
        if isinstance(r.reference.get("bad"), str)
    ]
    if not jobs:
        return {}
    graded = judges.grade_routed(
        [(judges.for_kind_name(evals[n].judge), r, r.reference["bad"]) for n, r in jobs]
    )
    scores = {(n, r.id): g.score for (n, r), g in zip(jobs, graded, strict=True)}
    scores = {k: v for k, v in scores.items() if v is not None}
    out = {}
    for group in (*GROUPS, *extra):
        stats = mean_se(in_group(scores, group, extra).values())
        if stats["n"]:
            out[group] = stats
    return out


def _mean_per_item(maps: list[ItemScores]) -> ItemScores:
    """Each item's mean over the maps (fine-tuning seeds, or doses) that all have it."""
    keys = [k for k in maps[0] if all(k in m for m in maps[1:])]
    return {k: sum(m[k] for m in maps) / len(maps) for k in keys}


def ladder_scores(
    run_dir: Path, model_id: str, doses: list[int], seeds: int
) -> dict[int, ItemScores]:
    """Dose -> each item's score averaged over the fine-tuning seeds (dose 0: seed 0's)."""
    scores = {0: flatten(load_scores(dose_dir(ladder_dir(run_dir, model_id, 0), 0))[0])}
    for dose in (d for d in doses if d):
        per_seed = [
            flatten(load_scores(dose_dir(ladder_dir(run_dir, model_id, k), dose))[0])
            for k in range(seeds)
        ]
        scores[dose] = _mean_per_item(per_seed)
    return scores


def finetune_summary(
    run_dir: Path,
    model_ids: list[str],
    doses: list[int],
    seeds: int,
    compare: str,
    n_boot: int,
    untouched: set[ItemKey],
    floor: dict,
) -> dict:
    """The summary of the module docstring."""
    extra = {UNTOUCHED: untouched} if untouched else {}
    groups = (*GROUPS, *extra)
    rows, curves, at_max, area = [], {}, {}, {}
    for model_id in model_ids:
        scores = ladder_scores(run_dir, model_id, doses, seeds)
        for dose in doses:
            lost = degradation(scores[dose], scores[0])
            for group in groups:
                stats = mean_se(in_group(scores[dose], group, extra).values())
                if not stats["n"]:
                    continue
                change = mean_se(in_group(lost, group, extra).values())
                rows.append(
                    {"model": model_id, "dose": dose, "group": group, **stats}
                    | {"degradation": change["mean"], "degradation_se": change["se"]}
                )
                curves.setdefault(model_id, {}).setdefault(group, []).append(
                    (dose, stats["mean"], stats["se"])
                )
        at_max[model_id] = degradation(scores[doses[-1]], scores[0])
        area[model_id] = _area(scores, doses)

    def compared(per_model: dict[str, ItemScores], label: str) -> list[dict]:
        per_seed = by_arm_seeds(per_model)
        return comparisons(by_arm(per_model), compare, n_boot, label, per_seed, extra)

    return {
        "doses": doses,
        "finetune_seeds": seeds,
        "floor": floor,
        "rows": rows,
        "curves": curves,
        "auc": compared(area, "finetune-auc"),
        "max_dose": [{"dose": doses[-1], **r} for r in compared(at_max, "finetune")],
    }


def _area(scores: dict[int, ItemScores], doses: list[int]) -> ItemScores:
    """Per item: mean over the doses above 0 of the degradation (the module docstring)."""
    steps = [degradation(scores[d], scores[0]) for d in doses if d]
    if not steps:
        return {}
    return _mean_per_item(steps)
