"""The directions stage: track every model along the trait directions, and relate it to behaviour.

Tracking: each model (RL arms, their snapshots, harmfully fine-tuned doses) is read at
the last prompt token of the pairs' unconditioned eval prompts (no persona), the state
from which it chooses its answer, and projected onto every direction; the mean
projection per probe is set against the model's eval scores, across models (with a CI
that resamples models) and per item within a model.

The directions themselves (activations, mean differences, quality) are in `directions.py`.
Writes `directions/directions.safetensors` (+ `directions.json`) and `summary.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from benrl.analysis.directions import (
    PAIR_SOURCE,
    Conversation,
    Directions,
    compute_directions,
    correlation,
    direction_quality,
    probe_items,
    probe_of_eval,
    prompt_states,
    save_directions,
    untrained_twin,
)
from benrl.analysis.finetune_stress import ladder_dir
from benrl.errors import BenrlError
from benrl.evaluation.generate import load_model
from benrl.evaluation.runner import load_scores
from benrl.records import ScenarioRecord, read_records
from benrl.run import Run, console

if TYPE_CHECKING:
    from benrl.config import DirectionsConfig


# --- projection and tracking ------------------------------------------------------------


def projection(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    directions: Directions,
    prompts: list[Conversation],
    layer: int,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per probe: each prompt's last-token activation at `layer` projected on its direction."""
    layers = sorted(next(iter(directions.values())))
    if layer not in layers:
        raise BenrlError(f"directions: layer {layer} not among the directions' layers {layers}")
    states = prompt_states(model, tokenizer, prompts, batch_size)[layer]
    return {p: (states @ by_layer[layer]).numpy() for p, by_layer in directions.items()}


def tracked_models(
    run_dir: Path, model_ids: list[str], model_dirs: dict[str, Path] | None = None
) -> list[dict]:
    """Each model, then its RL snapshots and harmful fine-tuning doses that exist on disk."""
    entries = []
    for mid in model_ids:
        path = (model_dirs or {}).get(mid) or (
            run_dir / "organism" / "model" if mid == "pre" else run_dir / "arms" / mid / "model"
        )
        entries.append(
            {
                "id": mid,
                "model": mid,
                "kind": "model",
                "path": path,
                "evals": run_dir / "evals" / mid,
            }
        )
        for snap in _numbered(run_dir / "arms" / mid / "snapshots", "step-"):
            entries.append(
                {
                    "id": f"{mid}@{snap.name}",
                    "model": mid,
                    "kind": "snapshot",
                    "step": int(snap.name[5:]),
                    "path": snap,
                    "evals": None,
                    "tokenizer": path,
                }
            )
        for dose in _numbered(ladder_dir(run_dir, mid, 0), "dose-"):  # fine-tuning seed 0
            entries.append(
                {
                    "id": f"{mid}+{dose.name}",
                    "model": mid,
                    "kind": "dose",
                    "dose": int(dose.name[5:]),
                    "path": dose / "model",
                    "evals": _dose_evals(dose),
                    "tokenizer": path,
                }
            )
    return entries


def _numbered(folder: Path, prefix: str) -> list[Path]:
    """Sub-folders `<prefix><N>` holding a model, by N."""
    found = [
        d
        for d in folder.glob(f"{prefix}*")
        if d.name[len(prefix) :].isdigit()
        and ((d / "config.json").is_file() or (d / "model" / "config.json").is_file())
    ]
    return sorted(found, key=lambda d: int(d.name[len(prefix) :]))


def _dose_evals(dose: Path) -> Path | None:
    """Where a fine-tuned dose's evals are: `dose-N/evals/` or `dose-N/` (with a summary.json)."""
    return next((f for f in (dose / "evals", dose) if (f / "summary.json").is_file()), None)


def _load(entry: dict):
    tok = entry["path"]
    if not any((tok / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json")):
        tok = entry.get("tokenizer", tok)  # snapshots and doses may be saved without one
    return load_model(entry["path"], tok)


def probe_scores(eval_dir: Path | None) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean score per probe over its evals' scored items, and probe eval -> record id -> score."""
    if eval_dir is None or not (eval_dir / "summary.json").is_file():
        return {}, {}  # not evaluated (yet)
    probe_of = probe_of_eval()
    by_eval = {n: s for n, s in load_scores(eval_dir)[0].items() if n in probe_of and s}
    by_probe: dict[str, list[float]] = {}
    for name, by_id in by_eval.items():
        by_probe.setdefault(probe_of[name], []).extend(by_id.values())
    return {p: float(np.mean(s)) for p, s in by_probe.items()}, by_eval


def track(
    run_dir: Path,
    model_ids: list[str],
    directions: Directions,
    layer: int,
    seed: int,
    prompts_per_probe: int = 32,
    items_per_eval: int = 20,
    batch_size: int = 64,
    model_dirs: dict[str, Path] | None = None,
) -> dict:
    """Mean projection per probe for every tracked model, and whether it predicts behaviour.

    Prompts are fixed eval-template probe items (same for every model). Per-item
    correlations use scored eval items whose prompts are in `scenarios/eval.jsonl`.
    """
    items = probe_items(seed, prompts_per_probe, "eval")
    prompts = [p.neutral for probes in items.values() for p in probes]
    owner = np.array([name for name, probes in items.items() for _ in probes])
    eval_path = run_dir / "scenarios" / "eval.jsonl"
    records = {r.id: r for r in read_records(eval_path)} if eval_path.is_file() else {}
    models = {}
    for entry in tracked_models(run_dir, model_ids, model_dirs):
        model, tokenizer = _load(entry)
        proj = projection(model, tokenizer, directions, prompts, layer, batch_size)
        means, scored = probe_scores(entry["evals"])
        row = {k: entry[k] for k in ("model", "kind", "step", "dose") if k in entry}
        row["projection"] = {p: float(proj[p][owner == p].mean()) for p in directions}
        row["score"] = means
        if items_per_eval and scored and records:
            row["items"] = item_correlation(
                model, tokenizer, directions, layer, scored, records, items_per_eval, batch_size
            )
        models[entry["id"]] = row
        del model
    return {
        "layer": layer,
        "prompts_per_probe": prompts_per_probe,
        "models": models,
        "correlation": across_models(models, seed),
    }


def item_correlation(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    directions: Directions,
    layer: int,
    scored: dict[str, dict[str, float]],
    records: dict[str, ScenarioRecord],
    per_eval: int,
    batch_size: int,
) -> dict:
    """Within one model: an item's projection on its probe's direction vs the item's score.

    `scored` is probe eval -> record id -> score; records give the items' prompts.
    Per probe, and pooled over probes after centring each probe's projections and scores
    (so differences between probes' scales do not pass for a correlation).
    """
    probe_of = probe_of_eval()
    flat = [  # (probe, record id, score), the first `per_eval` matched ids of each eval
        (probe_of[name], i, by_id[i])
        for name, by_id in sorted(scored.items())
        if probe_of[name] in directions
        for i in sorted(i for i in by_id if i in records)[:per_eval]
    ]
    if not flat:
        return {}
    states = prompt_states(model, tokenizer, [records[i].messages for _, i, _ in flat], batch_size)
    xs: dict[str, list[float]] = {}
    ys: dict[str, list[float]] = {}
    for (p, _, score), state in zip(flat, states[layer], strict=True):
        xs.setdefault(p, []).append(float(state @ directions[p][layer]))
        ys.setdefault(p, []).append(score)
    chosen = sorted(xs)
    pooled_x = np.concatenate([np.asarray(xs[p]) - np.mean(xs[p]) for p in chosen])
    pooled_y = np.concatenate([np.asarray(ys[p]) - np.mean(ys[p]) for p in chosen])
    return {
        "per_probe": {p: correlation(xs[p], ys[p]) for p in chosen},
        "pooled_centred": correlation(pooled_x, pooled_y),
    }


def across_models(models: dict[str, dict], seed: int = 0) -> dict:
    """Mean projection vs mean eval score over (model, probe) pairs of the scored models.

    `pooled_centred` removes each probe's mean over models, so it asks whether the models
    that project higher on a probe also score higher on it. Its `models_ci` resamples
    whole models (arms, their seeds, fine-tuned doses) with replacement: the pairs of
    one model are not independent, so the Fisher-z CI over pairs is too narrow.
    """
    scored = {mid: row for mid, row in models.items() if row["score"]}
    pairs = [
        (mid, p) for mid, row in scored.items() for p in row["score"] if p in row["projection"]
    ]
    if not pairs:
        return {}
    x = {(m, p): models[m]["projection"][p] for m, p in pairs}
    y = {(m, p): models[m]["score"][p] for m, p in pairs}
    probes = sorted({p for _, p in pairs})
    xs, ys = np.array([x[k] for k in pairs]), np.array([y[k] for k in pairs])
    owner, probe = np.array([k[0] for k in pairs]), np.array([k[1] for k in pairs])
    pooled_centred = correlation(*_centred(xs, ys, probe))
    pooled_centred["models_ci"] = _models_ci(xs, ys, owner, probe, seed)
    return {
        "pooled": correlation([x[k] for k in pairs], [y[k] for k in pairs]),
        "pooled_centred": pooled_centred,
        "per_model": {
            m: correlation([x[k] for k in pairs if k[0] == m], [y[k] for k in pairs if k[0] == m])
            for m in scored
        },
        "per_probe": {
            p: correlation([x[k] for k in pairs if k[1] == p], [y[k] for k in pairs if k[1] == p])
            for p in probes
        },
    }


def _centred(xs: np.ndarray, ys: np.ndarray, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """xs and ys minus their probe's mean (over the rows given)."""
    xs, ys = xs.astype(float).copy(), ys.astype(float).copy()
    for p in set(probe):
        xs[probe == p] -= xs[probe == p].mean()
        ys[probe == p] -= ys[probe == p].mean()
    return xs, ys


def _models_ci(
    xs: np.ndarray,
    ys: np.ndarray,
    owner: np.ndarray,
    probe: np.ndarray,
    seed: int,
    n_boot: int = 2000,
) -> list[float] | None:
    """95% percentile CI of the pooled centred Pearson r, resampling models (`owner`)."""
    models = list(dict.fromkeys(owner))  # first-appearance order: the models dict's
    if len(models) < 3:
        return None
    rows = [np.flatnonzero(owner == m) for m in models]
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(n_boot):
        # A model drawn twice counts twice, in the centring too.
        sel = np.concatenate([rows[j] for j in rng.choice(len(models), size=len(models))])
        cx, cy = _centred(xs[sel], ys[sel], probe[sel])
        if np.ptp(cx) > 0 and np.ptp(cy) > 0:
            rs.append(float(np.corrcoef(cx, cy)[0, 1]))
    if len(rs) < n_boot // 2:
        return None
    return [float(np.quantile(rs, 0.025)), float(np.quantile(rs, 0.975))]


# --- the stage, its results and its figure ----------------------------------------------


def build_directions(
    cfg: DirectionsConfig,
    seed: int,
    base_model: Path,
    run_dir: Path,
    model_ids: list[str],
    model_dirs: dict[str, Path],
    out_dir: Path,
) -> dict:
    """Compute, judge, save and track the directions; write summary.json; return it."""
    model, tokenizer = load_model(base_model)
    twin = untrained_twin(model, seed)  # the control: what the words alone separate
    control = direction_quality(
        twin,
        tokenizer,
        compute_directions(twin, tokenizer, seed, cfg.items_per_probe, cfg.batch_size),
        seed,
        cfg.eval_items_per_probe,
        cfg.batch_size,
    )
    del twin
    directions = compute_directions(model, tokenizer, seed, cfg.items_per_probe, cfg.batch_size)
    quality = direction_quality(
        model,
        tokenizer,
        directions,
        seed,
        cfg.eval_items_per_probe,
        cfg.batch_size,
        control_by_layer=control["separation_by_layer"],
    )
    del model
    layer = cfg.layer or quality["best_layer"]
    if layer not in quality["layers"]:
        raise BenrlError(
            f"directions.layer: {layer} is not a layer of the model {quality['layers']}"
        )
    meta = {
        "seed": seed,
        "items_per_probe": cfg.items_per_probe,
        "probes": quality["probes"],
        "layers": quality["layers"],
        "hidden_size": int(next(iter(directions.values()))[layer].numel()),
        "source_model": "pre",
    }
    save_directions(directions, out_dir, meta)
    summary = {
        "meta": meta,
        "quality": quality,
        "separation": {  # the headline figures the report prints
            "best_layer": quality["best_layer"],
            "mean_at_best_layer": quality["separation_by_layer"][
                quality["layers"].index(quality["best_layer"])
            ],
            "best_ci": quality["best_ci"],
            "found": quality["found"],
            "lexical_baseline": quality["lexical_baseline"],
            "mean_offdiag_cosine": quality["mean_offdiag_cosine"],
            "top_component_share": quality["top_component_share"],
        },
        "track": track(
            run_dir,
            model_ids,
            directions,
            layer,
            seed,
            cfg.eval_items_per_probe,
            cfg.items_per_eval,
            cfg.batch_size,
            model_dirs,
        ),
    }
    summary["correlation"] = summary["track"]["correlation"]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def run_stage(run: Run) -> None:
    """The pipeline stage: runs after the evals (and the stress stage, when there is one)."""
    cfg = run.cfg.directions
    if not cfg.enabled:
        return
    if run.cfg.model != "organism":
        # The only contrast pairs are the organism's, in its fictional language: directions
        # estimated from them on an English model would measure nothing. Say so and skip.
        reason = (
            f"the only trait contrast pairs ('{PAIR_SOURCE}') are in the organism's fictional "
            "language; no English pair source is registered for a real model"
        )
        console.print(f"[yellow]directions skipped:[/yellow] {reason}")
        skipped = run.dir / "directions" / "skipped.json"
        skipped.parent.mkdir(parents=True, exist_ok=True)
        skipped.write_text(json.dumps({"skipped": reason}))
        return
    inputs = {"base_model": run.base_model}
    if run.eval_records.exists():
        inputs["scenarios"] = run.eval_records
    model_dirs = {mid: run.model_dir(mid) for mid in run.model_ids()}
    for mid, path in model_dirs.items():
        if mid != "pre":
            inputs[f"model/{mid}"] = path
        for folder in (
            run.dir / "evals" / mid,
            run.dir / "arms" / mid / "snapshots",
            ladder_dir(run.dir, mid, 0),
        ):
            if folder.exists():  # optional inputs: their appearing reruns the stage
                inputs[str(folder.relative_to(run.dir))] = folder
    stage = run.stage("directions", ("directions",), inputs)
    if run.should_run(stage, "directions"):
        with stage.running() as extra:
            summary = build_directions(
                cfg, run.cfg.seed, run.base_model, run.dir, run.model_ids(), model_dirs, stage.dir
            )
            extra["separation"] = summary["separation"]
            extra["correlation"] = summary["correlation"].get("pooled_centred")


def directions_results(run_dir: Path) -> dict:
    """The stage's summary for the report; {"skipped": why} or {} when the stage has not run."""
    path = run_dir / "directions" / "summary.json"
    if path.is_file():
        return json.loads(path.read_text())
    skipped = run_dir / "directions" / "skipped.json"
    return json.loads(skipped.read_text()) if skipped.is_file() else {}
