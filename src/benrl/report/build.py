"""The report stage: results.json, report.md and a self-contained report.html.

Reads the scored samples of every evaluated model, per training seed, compares arms
pairwise by record id (`stats.compare_evals`: the training seed as a unit where an arm
has several, Benjamini-Hochberg across evals), headlines each comparison on the
out-of-distribution and in-distribution evals apart (`evaluation.split`), runs the seed
A/A and the per-probe summary (robustness.py) and writes what the run measured, null
results and regressions included. Plots are inline PNGs, so the HTML is one file.

This module is the stage glue only: the numbers come from results.py (and the paper's
from paper.py), report.md from markdown.py, report.html from html.py, figures from
plots.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from benrl.analysis.plan import TEST_HIERARCHICAL, TEST_ITEMS, plan_check
from benrl.config import RunConfig
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import failure_counts
from benrl.evaluation.seeds import INFERENCE_HIERARCHICAL
from benrl.evaluation.split import held_out
from benrl.models import PRE, arm_of
from benrl.report.export_tables import SCHEMA_VERSION, write_per_eval_csv
from benrl.report.html import report_html
from benrl.report.markdown import report_markdown
from benrl.report.paper import PAPER_HEADLINE, paper_comparison
from benrl.report.results import (
    all_comparisons,
    arm_order,
    category_effects,
    comparison_pairs,
    eval_distributions,
    load_seed_scores,
    main_key,
    read_logs,
    run_summaries,
    seed_means,
    trait_domain_matrix,
    transfer_table,
)
from benrl.report.robustness import effective_evals, probe_summary, seed_aa
from benrl.run import Run


def write_report(run_dir: Path, cfg: RunConfig, model_ids: list[str], out_dir: Path) -> str:
    """Write results.json, the figures, report.md and report.html; return the main headline."""
    per_seed, refusals = load_seed_scores(run_dir, model_ids)
    scores = seed_means(per_seed)
    arms = arm_order(model_ids)
    pairs = comparison_pairs(arms, cfg)
    distributions = eval_distributions(scores, cfg)
    results: dict = {
        "schema_version": SCHEMA_VERSION,  # see results.schema.json
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": cfg.model_dump(mode="json"),
        "models": model_ids,
        "split": {"held_out_traits": sorted(held_out(cfg)), "distribution": distributions},
        "comparisons": all_comparisons(scores, refusals, pairs, cfg, per_seed, distributions),
        "paper_headline": PAPER_HEADLINE,
    }
    results["headlines"] = {k: v["headline"] for k, v in results["comparisons"].items()}
    results["transfer"] = transfer_table(results)
    key = main_key(results["comparisons"], cfg.eval.compare, cfg.eval.against)
    main = results["comparisons"][key]
    results["category_effects"] = category_effects(key, main, scores, per_seed, cfg)
    model, against = main["evals"][0]["model"], main["evals"][0]["against"]
    results["seed_aa"] = seed_aa(per_seed, cfg)
    results["probe_summary"] = probe_summary(scores, per_seed, model, against, cfg)
    results["effective_evals"] = effective_evals(main["evals"])
    results["analysis_plan"] = plan_check(run_dir, analysed(main, model_ids, cfg))
    results["trait_domain_matrix"] = trait_domain_matrix(main)
    results["paper_comparison"] = paper_comparison(results, scores)
    results.update(run_summaries(run_dir, model_ids))
    results["judge_failures"] = {m: failure_counts(run_dir / "evals" / m) for m in model_ids}
    results["left_out"] = {}
    for part in ("stress", "directions"):  # outputs of a disabled stage are stale: leave out
        if not getattr(cfg, part).enabled and results[part]:
            results[part] = {}
            results["left_out"][part] = f"{part}.enabled is false in this config"
            for key in ("stage_seconds", "stage_spans"):
                results[key] = {k: v for k, v in results[key].items() if k.split("/")[0] != part}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    categories = {name: ev.category for name, ev in registered_evals().items()}
    write_per_eval_csv(results, categories, out_dir / "per_eval.csv")
    figures = write_figures(run_dir, model_ids, main, results, out_dir)
    markdown = report_markdown(results, main, scores, refusals, arms, figures)
    (out_dir / "report.md").write_text(markdown)
    (out_dir / "report.html").write_text(report_html(markdown, out_dir))
    return main["headline"]


def analysed(main: dict, model_ids: list[str], cfg: RunConfig) -> dict:
    """What this report analysed, in the analysis plan's terms (`analysis.plan`)."""
    first = main["evals"][0]
    seeds: dict[str, int] = {}
    for model_id in model_ids:
        if model_id != PRE:
            seeds[arm_of(model_id)] = seeds.get(arm_of(model_id), 0) + 1
    hierarchical = first["comparison"]["inference"] == INFERENCE_HIERARCHICAL
    return {
        "primary_comparison": f"{first['model']} vs {first['against']}",
        "evals": [e["eval"] for e in main["evals"]],
        "alpha": cfg.eval.alpha,
        "test": TEST_HIERARCHICAL if hierarchical else TEST_ITEMS,
        "seeds": seeds,
    }


def write_figures(
    run_dir: Path, model_ids: list[str], main: dict, results: dict, out_dir: Path
) -> dict[str, str]:
    """Draw the figures this run has data for; their file names by kind."""
    from benrl.report import plots

    figures = {}
    if results["category_effects"]["rows"]:
        figures["categories"] = plots.category_plot(
            results["category_effects"], out_dir / "categories.png"
        ).name
    if main["evals"]:
        categories = {name: ev.category for name, ev in registered_evals().items()}
        figures["forest"] = plots.forest_plot(
            main["evals"], categories, out_dir / "forest.png"
        ).name
    logs = read_logs(run_dir, model_ids)
    if logs:
        figures["training"] = plots.training_curves(logs, out_dir / "training.png").name
    curves = results["stress"].get("finetune", {}).get("curves")
    if curves:
        floor = results["stress"]["finetune"].get("floor")
        figures["finetune"] = plots.dose_curves(curves, out_dir / "finetune.png", floor).name
    if results["directions"] and "skipped" not in results["directions"]:
        figures["directions"] = plots.directions_plot(
            results["directions"], out_dir / "directions.png"
        ).name
    return figures


def run_stage(run: Run) -> None:
    """Compare the evaluated models and write results.json, report.md and report.html."""
    inputs = {f"evals/{m}": run.dir / "evals" / m for m in run.model_ids()}
    enabled = {"stress": run.cfg.stress.enabled, "directions": run.cfg.directions.enabled}
    for summary in ("stress/persona", "stress/finetune", "directions"):
        path = run.dir / summary / "summary.json"
        if path.is_file() and enabled[summary.split("/")[0]]:
            inputs[summary] = path  # optional: a stage that ran makes the report redo
    stage = run.stage("report", ("eval", "train", "judge"), inputs, extra=enabled)
    if run.should_run(stage, "report"):
        with stage.running() as extra:
            extra["headline"] = write_report(run.dir, run.cfg, run.model_ids(), stage.dir)
