"""The stress stage: does a model's good behaviour persist under attack?

Two attacks from the paper's persistence protocols, each run on every stressed
model (`stress.models`, seeds expanded as in the eval stage):

1. Persona prompts: each persona of `personas.yaml` becomes the system message of every
   eval item (replacing any system message), and the eval suite runs again ->
   `stress/persona/<persona>/<model-id>/<eval>.jsonl`. The reference is the same items
   without a persona, `stress/reference/<model-id>/`, sampled with the same random
   numbers (`generate`'s paired sampling: one stream per answer, whatever the batch).
   Degradation per item = score with the persona - score without it; negative means the
   persona made the model worse. Where the persona changes nothing the answer is the
   same, so the share of changed answers shows whether the model heard the persona.
2. Harmful fine-tuning (`training/finetune.py`): a dose ladder of SFT steps toward bad health
   advice; every dose is evaluated -> `stress/finetune/<model-id>/dose-<N>/<eval>.jsonl`.
   Degradation per item = score at dose N - score at dose 0 (the model itself).

Comparisons: `eval.compare` (beneficial) against every other stressed arm, so both the
paper's comparison (vs pre) and ours (vs the compute-matched baseline) appear. The
difference in degradation is mean(degradation of compare) - mean(degradation of the
other) over the items both answered, pooled over the evals of a group; positive means
the compare arm lost less. With one training seed per arm its 95% CI is a percentile
bootstrap over items (pairs kept together), marked conditional on one training run;
where an arm has several seeds it is the hierarchical test over seeds, then items
(`evaluation.seeds.hierarchical_test`, as in the report's comparisons). Groups:
`health` (evals whose domains are exactly health), `non_health` (every other alignment eval) and
`capability` (standard tasks), reported apart so a persona that breaks the model's
skills is not mistaken for one that changes its character.

Stress items are a fixed subset (`stress.items_per_eval`) of each eval's items in the
eval stage. Every stress answer (reference, personas, fine-tuning doses) is drawn with
paired sampling, so two conditions of one item differ only where the model does.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path

import numpy as np

from benrl import models
from benrl.data.personas import (
    PERSONAS_FILE,
    PersonaSpec,
    apply_persona,
    choose_personas,
    load_personas,
)
from benrl.errors import BenrlError
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import (
    RunnerOptions,
    check_failures,
    load_scores,
    run_evals,
    select_items,
)
from benrl.evaluation.seeds import INFERENCE_CONDITIONAL, INFERENCE_HIERARCHICAL, hierarchical_test
from benrl.evaluation.stats import bootstrap_ci, standard_error
from benrl.evaluation.suites import eval_pool, eval_suite
from benrl.records import ScenarioRecord, read_jsonl, read_records
from benrl.run import Run, console
from benrl.training.finetune import check_doses, dose_dir, finetune_ladder

HARMFUL_DATA = "organism"  # the organism's rows: the default of organism runs


def harmful_source(run: Run) -> str | Path:
    """The harmful fine-tuning data: the user's chat JSONL, else the organism's rows."""
    return run.cfg.stress.harmful_data or HARMFUL_DATA


GROUPS = ("health", "non_health", "capability")

ItemKey = tuple[str, str]  # (eval name, record id)
ItemScores = dict[ItemKey, float]
Items = Callable[[], dict[str, list[ScenarioRecord]]]  # the stress items, read when first needed


# --- degradation maths ------------------------------------------------------------------


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


def in_group(items: ItemScores, group: str) -> ItemScores:
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
) -> list[dict]:
    """`compare` against every other arm, per group: difference in degradation.

    With `per_seed` (`by_arm_seeds`), a pair where an arm has several seeds uses the
    seed-level test; a pair with one seed each is marked conditional on one training run.
    """
    rows = []
    if compare not in per_arm:
        return rows
    for other in sorted(a for a in per_arm if a != compare):
        for group in GROUPS:
            pair = f"{compare} vs {other}"
            where = f"{label}/{pair}/{group}"
            seeds = per_seed and [per_seed[compare], per_seed[other]]
            if seeds and max(len(seeds[0]), len(seeds[1])) > 1:
                result = seed_diff_in_degradation(
                    *({k: in_group(v, group) for k, v in s.items()} for s in seeds), n_boot, where
                )
            else:
                result = diff_in_degradation(
                    in_group(per_arm[compare], group),
                    in_group(per_arm[other], group),
                    n_boot,
                    where,
                )
                if result and per_seed:
                    result["inference"] = INFERENCE_CONDITIONAL
            if result:
                rows.append({"pair": pair, "against": other, "group": group, **result})
    return rows


# --- summaries ----------------------------------------------------------------------------


def persona_summary(
    run_dir: Path, personas: list[PersonaSpec], model_ids: list[str], compare: str, n_boot: int
) -> dict:
    """Degradation per persona x model x group (with the share of answers the persona
    changed), and the paired differences between arms."""
    reference_dirs = {m: run_dir / "stress" / "reference" / m for m in model_ids}
    reference = {m: flatten(load_scores(d)[0]) for m, d in reference_dirs.items()}
    degradation_rows, rows = [], []
    for persona in personas:
        name = persona.name
        folders = {m: run_dir / "stress" / "persona" / name / m for m in model_ids}
        per_model = {
            m: degradation(flatten(load_scores(folders[m])[0]), reference[m]) for m in model_ids
        }
        for model_id, items in per_model.items():
            changed = changed_answers(folders[model_id], reference_dirs[model_id])
            for group in GROUPS:
                stats = mean_se(in_group(items, group).values())
                if stats["n"]:
                    share = mean_se(in_group(changed, group).values())["mean"]
                    degradation_rows.append(
                        {"persona": name, "kind": persona.kind, "model": model_id}
                        | {"group": group, **stats, "changed": share}
                    )
        arms, seeds = by_arm(per_model), by_arm_seeds(per_model)
        for row in comparisons(arms, compare, n_boot, f"persona/{name}", seeds):
            rows.append({"persona": name, "kind": persona.kind, "target": persona.target, **row})
    return {
        "personas": {p.name: p.model_dump() for p in personas},
        "degradation": degradation_rows,
        "rows": rows,
    }


def changed_answers(stressed_dir: Path, reference_dir: Path) -> ItemScores:
    """Per item: the share of its samples whose answer differs from the reference's."""
    changed: dict[ItemKey, list[bool]] = {}
    for path in sorted(stressed_dir.glob("*.jsonl")):
        reference_path = reference_dir / path.name
        if not reference_path.exists():
            continue
        before = {(r["id"], r["sample"]): r["completion"] for r in read_jsonl(reference_path)}
        for row in read_jsonl(path):
            key = (row["id"], row["sample"])
            if key in before:
                changed.setdefault((path.stem, row["id"]), []).append(
                    row["completion"] != before[key]
                )
    return {k: sum(v) / len(v) for k, v in changed.items()}


def finetune_summary(
    run_dir: Path, model_ids: list[str], doses: list[int], compare: str, n_boot: int
) -> dict:
    """Score and degradation per model x dose x group, and the max-dose differences."""
    rows, curves, at_max = [], {}, {}
    for model_id in model_ids:
        folder = run_dir / "stress" / "finetune" / model_id
        scores = {d: flatten(load_scores(dose_dir(folder, d))[0]) for d in doses}
        for dose in doses:
            lost = degradation(scores[dose], scores[0])
            for group in GROUPS:
                stats = mean_se(in_group(scores[dose], group).values())
                if not stats["n"]:
                    continue
                change = mean_se(in_group(lost, group).values())
                rows.append(
                    {
                        "model": model_id,
                        "dose": dose,
                        "group": group,
                        **stats,
                        "degradation": change["mean"],
                        "degradation_se": change["se"],
                    }
                )
                curves.setdefault(model_id, {}).setdefault(group, []).append(
                    (dose, stats["mean"], stats["se"])
                )
        at_max[model_id] = degradation(scores[doses[-1]], scores[0])
    max_rows = [
        {"dose": doses[-1], **row}
        for row in comparisons(by_arm(at_max), compare, n_boot, "finetune", by_arm_seeds(at_max))
    ]
    return {"doses": doses, "rows": rows, "curves": curves, "max_dose": max_rows}


def stress_results(run_dir: Path) -> dict:
    """The stress tables for the report: {"persona": {...}, "finetune": {...}}.

    persona.rows: persona x pair x group -> diff, ci_low, ci_high, n (also kind, target);
    persona.degradation: persona x model x group -> mean, se, n.
    finetune.rows: model x dose x group -> mean, se, n, degradation, degradation_se;
    finetune.curves: model -> group -> [(dose, mean, se)]; finetune.max_dose: pair x
    group -> diff, ci_low, ci_high, n at the largest dose. A part that did not run is {}.
    """
    results = {}
    for part in ("persona", "finetune"):
        path = run_dir / "stress" / part / "summary.json"
        results[part] = json.loads(path.read_text()) if path.exists() else {}
    return results


# --- the stage ----------------------------------------------------------------------------


def check_models(run: Run, model_ids: list[str]) -> None:
    """Every stressed model exists."""
    for model_id in model_ids:
        arm = models.arm_of(model_id)
        if arm != "pre" and arm not in run.cfg.train.arms:
            raise BenrlError(f"stress.models names '{arm}', which train.arms does not train")
        folder = run.model_dir(model_id)
        if not (folder / "config.json").is_file():
            raise BenrlError(
                f"stress.models: model '{model_id}' not found at {folder} "
                "(not trained yet: run the earlier stages first)"
            )


def stress_items(run: Run, records: list[ScenarioRecord]) -> dict[str, list[ScenarioRecord]]:
    """Per eval: `stress.items_per_eval` of the eval stage's items (same seed, same pool)."""
    names = eval_suite(run.cfg)
    base = select_items(records, names, run.cfg.eval.items_per_eval, run.cfg.seed)
    return {
        n: select_items(base[n], [n], run.cfg.stress.items_per_eval, run.cfg.seed)[n] for n in names
    }


def run_stage(run: Run) -> None:
    """Persona prompts and harmful fine-tuning on every stressed model; then the summaries."""
    cfg = run.cfg.stress
    if not cfg.enabled:
        return
    path = cfg.personas_file or PERSONAS_FILE
    personas = []
    if "persona" in cfg.parts:
        english = run.cfg.model != "organism"
        personas = choose_personas(load_personas(path), cfg.personas, english, path)
    doses = check_doses(cfg.finetune_doses)
    model_ids = run.model_ids(cfg.models)
    check_models(run, model_ids)
    items = cache(lambda: stress_items(run, eval_pool(run.cfg, read_records(run.eval_records))))
    if personas:
        for model_id in model_ids:
            _persona_stage(run, None, None, model_id, items)  # the reference: no persona
        for persona, prompt in personas:
            for model_id in model_ids:
                _persona_stage(run, persona.name, prompt, model_id, items)
        _write(
            run.dir / "stress" / "persona" / "summary.json",
            persona_summary(
                run.dir,
                [p for p, _ in personas],
                model_ids,
                run.cfg.eval.compare,
                run.cfg.eval.bootstrap,
            ),
        )
    if "finetune" in cfg.parts:
        for model_id in model_ids:
            _finetune_stage(run, doses, model_id, items)
        _write(
            run.dir / "stress" / "finetune" / "summary.json",
            finetune_summary(
                run.dir, model_ids, doses, run.cfg.eval.compare, run.cfg.eval.bootstrap
            ),
        )


def _identity(run: Run, **more: object) -> dict:
    """What a stress stage's samples depend on, beyond the judge section and the seed.

    Only these eval fields, not the whole eval section: adding an arm to eval.models or
    changing eval.bootstrap must not redo every stress stage.
    """
    cfg = run.cfg.eval
    return {
        "evals": eval_suite(run.cfg),
        "realdata": cfg.realdata.model_dump(mode="json"),
        "eval_items_per_eval": cfg.items_per_eval,
        "items_per_eval": run.cfg.stress.items_per_eval,
        "max_new_tokens": cfg.max_new_tokens,
        "temperature": cfg.temperature,
        "samples": cfg.samples,
        "sampling": "paired",  # one random stream per answer (stress_options)
        **more,
    }


def stress_options(run: Run) -> RunnerOptions:
    """The eval options with paired sampling: conditions of one item share random numbers."""
    return dataclasses.replace(RunnerOptions.from_config(run.cfg), paired_sampling=True)


def _persona_stage(
    run: Run, name: str | None, prompt: str | None, model_id: str, items: Items
) -> None:
    """One model's stress items under one persona (None: the no-persona reference)."""
    folder = f"stress/persona/{name}/{model_id}" if name else f"stress/reference/{model_id}"
    stage = run.stage(
        folder,
        ("judge",),
        {"scenarios": run.eval_records, "model": run.model_dir(model_id)},
        extra=_identity(run, prompt=prompt),
    )
    if not run.should_run(stage, "stress"):
        return
    prompted = items()
    if prompt is not None:
        prompted = {n: [apply_persona(r, prompt) for r in rs] for n, rs in prompted.items()}
    console.print(f"persona [bold]{name or '(none)'}[/bold] on {model_id}")
    options = stress_options(run)
    judges = options.judges()
    with stage.running() as extra:
        summary = run_evals(run.model_dir(model_id), prompted, stage.dir, options, judges)
        extra["evals"] = len(summary)
        extra["judge_failed"] = {n: s.failed for n, s in summary.items()}
        where = f"{model_id} under persona {name or '(none)'}"
        check_failures(stage.dir, summary, run.cfg.judge.max_failure_rate, where, judges)


def _finetune_stage(run: Run, doses: list[int], model_id: str, items: Items) -> None:
    cfg = run.cfg.stress
    stage = run.stage(
        f"stress/finetune/{model_id}",
        ("judge",),
        {"scenarios": run.eval_records, "model": run.model_dir(model_id)},
        extra=_identity(
            run,
            doses=doses,
            lora=cfg.finetune_lora,
            harmful_data=str(cfg.harmful_data or HARMFUL_DATA),
            learning_rate=cfg.finetune_learning_rate,
            batch_size=cfg.finetune_batch_size,
        ),
    )
    if not run.should_run(stage, "stress"):
        return
    console.print(f"harmful fine-tuning of {model_id}: doses {doses}")
    with stage.running() as extra:
        extra["training"] = finetune_ladder(
            run.model_dir(model_id), doses, cfg, run.cfg.seed, stage.dir, harmful_source(run)
        )
        for dose in doses:
            folder = dose_dir(stage.dir, dose)
            run_evals(folder / "model", items(), folder, stress_options(run))


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
