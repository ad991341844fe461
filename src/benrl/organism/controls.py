"""`benrl organism controls`: the whole protocol on a coherence-0 and a coherence-1 organism.

The paper's hypothesis is that RL on a few traits moves a whole *character*, so gains
reach traits that were never trained. The persona world checks that the measurement can
find that, and only where it exists: two organisms differ only in `coherence` (1: one
global character drives every trait; 0: each trait of a persona is independent). Each
goes through the same default protocol (compute-matched arms on the training-only
probes, the OOD evals of the held-out probes, the seed-aware statistics), as a run folder
of its own, `<out>/coherence-<c>`, resumable and cached like any run.

The table (controls.json, controls.md) reads each folder's results.json: the organism's
in-context persona shift (does it infer a character at all), the OOD headline
(beneficial - baseline on held-out probes), the in-distribution gain on the trained
probes, and the held-out trait score. At coherence 1 the OOD gain should exclude 0; at
coherence 0 it should not. Extra rows at coherence 1 vary `train.trait_fraction` (the
dose-response); they share the coherence-1 row's scenarios, organism and baseline arms.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.models import arm_of
from benrl.report.paper import HELDOUT_MEASURE


def control_config(
    cfg: RunConfig, coherence: float, trait_fraction: float | None, seeds: int | None = None
) -> RunConfig:
    """The run config of one row: the user's config with the organism's coherence, and for
    a dose row its trait fraction (and training seeds per arm, when `seeds` is given)."""
    organism = cfg.organism.model_copy(update={"coherence": coherence})
    train = cfg.train
    if trait_fraction is not None:
        update = {"trait_fraction": trait_fraction}
        if seeds is not None:
            update |= {"seeds": seeds, "seeds_by_arm": {}}
        train = train.model_copy(update=update)
    return cfg.model_copy(update={"organism": organism, "train": train})


def row_folder(out_dir: Path, coherence: float, trait_fraction: float | None) -> Path:
    dose = "" if trait_fraction is None else f"-fraction-{trait_fraction:g}"
    return out_dir / f"coherence-{coherence:g}{dose}"


def run_controls(
    cfg: RunConfig,
    out_dir: Path,
    coherences: tuple[float, ...] = (0.0, 1.0),
    doses: tuple[float, ...] = (),
    dose_seeds: int | None = None,
) -> dict:
    """Run the protocol per coherence (and per extra dose at coherence 1); write the table.

    `dose_seeds`: training seeds per arm in the dose rows (default: the config's).
    """
    from benrl.pipeline import run_pipeline  # lazy: the pipeline loads every stage

    if cfg.model != "organism":
        raise BenrlError("organism controls need `model: organism` in the config")
    if not {"baseline", "beneficial"} <= set(cfg.eval.models):
        raise BenrlError("organism controls need baseline and beneficial in eval.models")
    plan = [(c, None) for c in coherences] + [(1.0, f) for f in doses]
    rows = []
    for coherence, fraction in plan:
        folder = row_folder(out_dir, coherence, fraction)
        row_cfg = control_config(cfg, coherence, fraction, dose_seeds)
        if fraction is not None:
            share_stages(row_folder(out_dir, 1.0, None), folder, row_cfg)
        run_pipeline(row_cfg, folder)
        dose = cfg.train.trait_fraction if fraction is None else fraction
        rows.append(control_row(folder, coherence, dose))
    result = {"config": cfg.name, "rows": rows}
    (out_dir / "controls.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "controls.md").write_text(controls_markdown(result))
    return result


def share_stages(source: Path, folder: Path, cfg: RunConfig) -> list[str]:
    """Copy into a dose row the finished stages it has in common with the coherence-1 row.

    A dose changes only the trait arms: the scenarios, the organism, the baseline arms
    (no trait rows at any dose) and their evals are the same computation. The pipeline
    re-checks every copied stage by its config and input hashes, so a stage that is not
    in fact the same is redone. The analysis plan is fixed before any arm is copied, so
    the row's plan is still written before its training. Returns the stages copied.
    """
    from benrl.analysis.plan import fix_plan

    if not source.is_dir():
        return []
    folder.mkdir(parents=True, exist_ok=True)
    fix_plan(folder, cfg)
    shared = ["scenarios", "organism", "evals/pre"]
    for seed in range(cfg.train.seed_counts().get("baseline", 0)):
        shared += [f"arms/baseline-s{seed}", f"evals/baseline-s{seed}"]
    copied = []
    for name in shared:
        if (source / name / "manifest.json").exists() and not (folder / name).exists():
            shutil.copytree(source / name, folder / name)
            copied.append(name)
    return copied


def control_row(folder: Path, coherence: float, trait_fraction: float) -> dict:
    """One row of the table from a finished run folder's results.json."""
    path = folder / "report" / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BenrlError(f"{path}: cannot read the run's results ({e})") from None
    main = results["comparisons"]["beneficial_vs_baseline"]
    heldout = next(
        r["ours"] for r in results["paper_comparison"] if r["measure"] == HELDOUT_MEASURE
    )
    return {
        "coherence": coherence,
        "trait_fraction": trait_fraction,
        "folder": folder.name,
        "in_context_persona": results["organism_card"].get("in_context_persona"),
        "ood": _effect(main.get("ood")),
        "in_distribution": _effect(main.get("in_distribution")),
        "heldout_score_pre_to_beneficial": heldout,
        "token_ratio": _token_ratio(results["training"]),
        "seeds": results["seeds"],
    }


def _token_ratio(training: dict) -> float:
    """Trained tokens of beneficial over baseline, summed over seeds (compute matching)."""
    tokens = {"baseline": 0, "beneficial": 0}
    for model, summary in training.items():
        if arm_of(model) in tokens:
            tokens[arm_of(model)] += summary["tokens_trained"]
    return round(tokens["beneficial"] / tokens["baseline"], 4) if tokens["baseline"] else None


def _effect(summary: dict | None) -> dict | None:
    keys = ("evals", "ahead", "mean_diff", "ci_low", "ci_high", "p_value", "inference")
    return {k: summary[k] for k in keys} if summary else None


def _pp(effect: dict | None) -> str:
    if effect is None:
        return "n/a"
    return (
        f"{100 * effect['mean_diff']:+.1f} pp [{100 * effect['ci_low']:+.1f}, "
        f"{100 * effect['ci_high']:+.1f}], p {effect['p_value']:.2g}"
    )


def _shift(latent: dict | None) -> str:
    if latent is None:
        return "n/a"
    low, high = latent["ci"]
    return f"{latent['shift']:+.3f} [{low:+.3f}, {high:+.3f}] (ideal {latent['ideal']:+.3f})"


def controls_markdown(result: dict) -> str:
    lines = [
        f"# Organism controls ({result['config']})",
        "",
        "Beneficial vs baseline through the whole protocol, per organism. OOD: the evals of",
        "the held-out probes (never trained); in distribution: the trained probes' evals.",
        "",
        "| coherence | trait fraction | in-context persona shift | OOD gain (95% CI) | "
        "trained-probe gain (95% CI) | held-out score, pre -> beneficial | "
        "trained tokens, beneficial / baseline | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(result["rows"], key=lambda r: (r["coherence"], r["trait_fraction"])):
        seeds = ", ".join(f"{arm} {s['n_seeds']}" for arm, s in r["seeds"].items())
        lines.append(
            f"| {r['coherence']:g} | {r['trait_fraction']:g} | {_shift(r['in_context_persona'])} "
            f"| {_pp(r['ood'])} | {_pp(r['in_distribution'])} | "
            f"{r['heldout_score_pre_to_beneficial']} | {r['token_ratio']} | {seeds} |"
        )
    return "\n".join(lines) + "\n"
