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
2. Harmful fine-tuning (`finetune_stress.py`): dose ladders of SFT steps toward bad
   health advice, `stress.finetune_seeds` per model; every dose is evaluated ->
   `stress/finetune/<model-id>/seed-<k>/dose-<N>/<eval>.jsonl`. Degradation per item =
   score at dose N - score at dose 0 (the model itself); the summary adds the floor (the
   score of only bad answers) and the area under each model's degradation curve.

Comparisons (`degradation.py`): `eval.compare` (beneficial) against every other stressed
arm, so both the paper's comparison (vs pre) and ours (vs the compute-matched baseline)
appear, as a difference in degradation per group (positive: the compare arm lost less).

Stress items are a fixed subset (`stress.items_per_eval`) of each eval's items in the
eval stage. Every stress answer (reference, personas, fine-tuning doses) is drawn with
paired sampling, so two conditions of one item differ only where the model does.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path

from benrl import models
from benrl.analysis.degradation import (
    GROUPS,
    ItemKey,
    ItemScores,
    by_arm,
    by_arm_seeds,
    comparisons,
    degradation,
    flatten,
    in_group,
    mean_se,
)
from benrl.analysis.finetune_stress import (
    UNTOUCHED,
    Items,
    finetune_summary,
    floor_scores,
    harmful_source,
    ladder_units,
    untouched_items,
)
from benrl.data.personas import (
    PERSONAS_FILE,
    PersonaSpec,
    apply_persona,
    choose_personas,
    load_personas,
)
from benrl.errors import BenrlError
from benrl.evaluation.runner import (
    RunnerOptions,
    evaluate_model,
    load_scores,
    select_items,
)
from benrl.evaluation.suites import eval_pool, eval_suite
from benrl.records import ScenarioRecord, read_jsonl, read_records
from benrl.run import Run
from benrl.training.finetune import check_doses
from benrl.workers import Unit, run_units

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
    options = stress_options(run)
    # One batch of units, the long ladders first, so the workers finish together.
    units = []
    if "finetune" in cfg.parts:
        identity = _finetune_identity(run, doses)
        units += ladder_units(run, doses, model_ids, items, identity, options)
    if personas:
        conditions = [(None, None)] + [(p.name, prompt) for p, prompt in personas]
        units += [  # (None, None): the reference, no persona
            _persona_unit(run, name, prompt, model_id, items, options)
            for name, prompt in conditions
            for model_id in model_ids
        ]
    run_units([u for u in units if u], run.cfg.workers)
    if personas:
        summary = persona_summary(
            run.dir,
            [p for p, _ in personas],
            model_ids,
            run.cfg.eval.compare,
            run.cfg.eval.bootstrap,
        )
        _write(run.dir / "stress" / "persona" / "summary.json", summary)
    if "finetune" in cfg.parts:
        untouched = untouched_items(run.dir, model_ids, items, cfg.finetune_seeds)
        floor = floor_scores(items, options, {UNTOUCHED: untouched})
        summary = finetune_summary(
            run.dir,
            model_ids,
            doses,
            cfg.finetune_seeds,
            run.cfg.eval.compare,
            run.cfg.eval.bootstrap,
            untouched,
            floor,
        )
        _write(run.dir / "stress" / "finetune" / "summary.json", summary)


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


def _finetune_identity(run: Run, doses: list[int]) -> dict:
    cfg = run.cfg.stress
    return _identity(
        run,
        doses=doses,
        lora=cfg.finetune_lora,
        harmful_data=str(harmful_source(run)),
        learning_rate=cfg.finetune_learning_rate,
        batch_size=cfg.finetune_batch_size,
    )


def stress_options(run: Run) -> RunnerOptions:
    """The eval options with paired sampling: conditions of one item share random numbers."""
    return dataclasses.replace(RunnerOptions.from_config(run.cfg), paired_sampling=True)


def _persona_unit(
    run: Run,
    name: str | None,
    prompt: str | None,
    model_id: str,
    items: Items,
    options: RunnerOptions,
) -> Unit | None:
    """One model's stress items under one persona (None: the no-persona reference);
    None when its stage folder is complete."""
    folder = f"stress/persona/{name}/{model_id}" if name else f"stress/reference/{model_id}"
    stage = run.stage(
        folder,
        ("judge",),
        {"scenarios": run.eval_records, "model": run.model_dir(model_id)},
        extra=_identity(run, prompt=prompt),
    )
    if not run.should_run(stage, "stress"):
        return None
    prompted = items()
    if prompt is not None:
        prompted = {n: [apply_persona(r, prompt) for r in rs] for n, rs in prompted.items()}
    condition = name or "(none)"
    args = (
        run.model_dir(model_id),
        prompted,
        stage.dir,
        options,
        f"{model_id} under persona {condition}",
        run.cfg.judge.max_failure_rate,
    )
    return Unit(stage, f"persona [bold]{condition}[/bold] on {model_id}", evaluate_model, args)


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
