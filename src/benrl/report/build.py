"""The report stage: results.json, report.md and a self-contained report.html.

Reads the scored samples of every evaluated model, averages seeds per item, compares
arms pairwise by record id (`stats.compare_evals`: paired bootstrap CIs, sign-flip
p-values, Benjamini-Hochberg across evals) and writes what the run measured, null
results and regressions included. Plots are inline PNGs, so the HTML is one file.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path

from benrl.analysis.directions import directions_results
from benrl.analysis.stress import stress_results
from benrl.config import RunConfig
from benrl.evaluation.registry import clusters, registered_evals
from benrl.evaluation.runner import load_scores
from benrl.evaluation.stats import (
    EvalComparison,
    aggregate_seeds,
    compare_evals,
    headline,
    seed_spread,
)
from benrl.models import arm_of, seed_of
from benrl.run import STAGES, Run
from benrl.training.arms import arm_spec

PAPER_HEADLINE = (
    "paper (trait RL vs compute-matched baseline): ahead on 44 of 53 evals; significant "
    "gains 30, significant regressions 3 (BH); mean difference +9.1 pp"
)


def load_arm_scores(run_dir: Path, model_ids: list[str]) -> tuple[dict, dict]:
    """scores[eval][arm][record id] (seed-averaged) and refusals[eval][arm][record id]."""
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
    scores = {
        name: {arm: aggregate_seeds(seeds) for arm, seeds in arms.items()}
        for name, arms in per_arm.items()
    }
    return scores, refusals


def comparisons_for(
    scores: dict,
    refusals: dict,
    model: str,
    against: str,
    cfg: RunConfig,
    exclude_refusals: bool = False,
) -> list[EvalComparison]:
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
    )


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
        rows.append(
            {
                "arm": model,
                "trained_domains": sorted(seen),
                "unseen_evals": len(unseen),
                "ahead": sum(e["comparison"]["diff"] > 0 for e in unseen),
                "significant_gains": sum(e["significant_gain"] for e in unseen),
                "significant_regressions": sum(e["significant_regression"] for e in unseen),
                "mean_diff_pp": round(
                    100 * sum(e["comparison"]["diff"] for e in unseen) / len(unseen), 2
                )
                if unseen
                else None,
            }
        )
    return rows


def trait_domain_matrix(comp: dict) -> dict[str, dict[str, float]]:
    """Probe x domain cluster: difference in pp (from the evals that slice both)."""
    evals = registered_evals()
    matrix: dict[str, dict[str, float]] = {}
    for e in comp["evals"]:
        ev = evals.get(e["eval"])
        if ev and ev.probe and ev.cluster:
            matrix.setdefault(ev.probe, {})[ev.cluster] = round(100 * e["comparison"]["diff"], 1)
    return matrix


def paper_comparison(results: dict, scores: dict) -> list[dict]:
    """The paper's figures beside ours, where we measured the same thing."""
    ours = results["comparisons"]
    main = ours.get("beneficial_vs_baseline", {})
    rows = []

    def mean(name: str, arm: str) -> float | None:
        by_id = scores.get(name, {}).get(arm)
        return round(sum(by_id.values()) / len(by_id), 3) if by_id else None

    rows.append(
        {
            "measure": "held-out trait score, pre -> beneficial",
            "paper": "0.406 -> 0.607",
            "ours": f"{mean('heldout_traits', 'pre')} -> {mean('heldout_traits', 'beneficial')}",
        }
    )
    if main:
        rows.append(
            {
                "measure": "beneficial vs baseline (headline)",
                "paper": "ahead on 44/53; 30 sig. gains, 3 sig. regressions; +9.1 pp",
                "ours": main["headline"].split(": ", 1)[1],
            }
        )
    if "generic_vs_baseline" in ours:
        rows.append(
            {
                "measure": "generic-helpfulness control vs baseline",
                "paper": "no significant gain (all q >= 0.75)",
                "ours": ours["generic_vs_baseline"]["headline"].split(": ", 1)[1],
            }
        )
    for row in results.get("transfer", []):
        if row["arm"] == "health_only":
            rows.append(
                {
                    "measure": "health-only arm on non-health evals",
                    "paper": "ahead 17/19, 14 significant, 1 significant regression",
                    "ours": f"ahead {row['ahead']}/{row['unseen_evals']}, "
                    f"{row['significant_gains']} significant, "
                    f"{row['significant_regressions']} significant regressions",
                }
            )
    evals = registered_evals()
    capability = [n for n in scores if evals.get(n) and evals[n].category == "capability"]
    if main and capability:
        diffs = [e for e in main["evals"] if e["eval"] in capability]
        rows.append(
            {
                "measure": "capabilities, beneficial - baseline",
                "paper": "+4.7, +7.1, +1.2 pp (no regression)",
                "ours": ", ".join(f"{e['eval']} {_pp(e['comparison']['diff'])} pp" for e in diffs),
            }
        )
    return rows


def write_report(run_dir: Path, cfg: RunConfig, model_ids: list[str], out_dir: Path) -> str:
    scores, refusals = load_arm_scores(run_dir, model_ids)
    arms = sorted(
        {arm_of(m) for m in model_ids},
        key=lambda a: model_ids.index(next(m for m in model_ids if arm_of(m) == a)),
    )
    pairs = [(a, "baseline") for a in arms if a not in ("baseline", "pre")]
    if "pre" in arms and cfg.eval.compare in arms:
        pairs.append((cfg.eval.compare, "pre"))
    if "baseline" not in arms:
        pairs = [(a, arms[0]) for a in arms[1:]]
    results: dict = {
        "config": cfg.model_dump(mode="json"),
        "models": model_ids,
        "comparisons": {},
        "paper_headline": PAPER_HEADLINE,
    }
    for model, against in pairs:
        comps = comparisons_for(scores, refusals, model, against, cfg)
        no_ref = comparisons_for(scores, refusals, model, against, cfg, exclude_refusals=True)
        results["comparisons"][f"{model}_vs_{against}"] = {
            "headline": headline(comps, model, against, cfg.eval.alpha),
            "headline_excluding_refusals": refusal_free_headline(comps, no_ref, cfg.eval.alpha),
            "evals": [asdict(c) for c in comps],
        }
    results["headlines"] = {k: v["headline"] for k, v in results["comparisons"].items()}
    results["transfer"] = transfer_table(results)
    main_key = f"{cfg.eval.compare}_vs_{cfg.eval.against}"
    main = results["comparisons"].get(main_key) or next(iter(results["comparisons"].values()))
    results["trait_domain_matrix"] = trait_domain_matrix(main)
    results["paper_comparison"] = paper_comparison(results, scores)
    results["seeds"] = seed_table(run_dir, model_ids)
    results["training"] = _read_json(run_dir / "arms" / "summary.json")
    results["organism_card"] = _read_json(run_dir / "organism" / "card.json")
    results["stress"] = stress_results(run_dir) if (run_dir / "stress").exists() else {}
    results["directions"] = directions_results(run_dir)
    results["stage_seconds"] = stage_seconds(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    figures = write_figures(run_dir, model_ids, main, results, out_dir)
    markdown = report_markdown(results, main, scores, refusals, arms, figures)
    (out_dir / "report.md").write_text(markdown)
    (out_dir / "report.html").write_text(report_html(markdown, out_dir))
    return main["headline"]


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


def write_figures(
    run_dir: Path, model_ids: list[str], main: dict, results: dict, out_dir: Path
) -> dict[str, str]:
    from benrl.report import plots

    figures = {}
    if main["evals"]:
        categories = {name: ev.category for name, ev in registered_evals().items()}
        figures["forest"] = plots.forest_plot(
            main["evals"], categories, out_dir / "forest.png"
        ).name
    logs = plots.read_logs(run_dir, model_ids)
    if logs:
        figures["training"] = plots.training_curves(logs, out_dir / "training.png").name
    curves = results["stress"].get("finetune", {}).get("curves")
    if curves:
        figures["finetune"] = plots.dose_curves(curves, out_dir / "finetune.png").name
    if results["directions"]:
        figures["directions"] = plots.directions_plot(
            results["directions"], out_dir / "directions.png"
        ).name
    return figures


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def stage_seconds(run_dir: Path) -> dict[str, float]:
    seconds = {}
    for manifest in sorted(run_dir.glob("**/manifest.json")):
        data = json.loads(manifest.read_text())
        seconds[data["stage"]] = data.get("seconds")
    return seconds


def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def report_markdown(
    results: dict,
    main: dict,
    scores: dict,
    refusals: dict,
    arms: list[str],
    figures: dict[str, str],
) -> str:
    evals = registered_evals()
    lines = ["# benrl report", "", "## Headline", ""]
    for key, comp in results["comparisons"].items():
        lines.append(f"- **{key}**: {comp['headline']}")
        lines.append(f"  - {comp['headline_excluding_refusals']}")
    lines += [f"- {results['paper_headline']}", "", "## How this compares to the paper", ""]
    lines += _table(
        ["measure", "paper", "this run"],
        [[r["measure"], r["paper"], r["ours"]] for r in results["paper_comparison"]],
    )
    lines += [
        "",
        "## Per-eval results",
        "",
        "Scores are means over items (higher is better), seeds averaged per item; the "
        "difference is in percentage points with a paired bootstrap 95% CI; p from a "
        "paired sign-flip test; q after Benjamini-Hochberg across evals.",
        "",
    ]
    if "forest" in figures:
        lines += [f"![forest plot]({figures['forest']})", ""]
    rows = []
    for c in main["evals"]:
        comp = c["comparison"]
        flag = (
            "gain" if c["significant_gain"] else "regression" if c["significant_regression"] else ""
        )
        rows.append(
            [
                c["eval"],
                evals[c["eval"]].category if c["eval"] in evals else "",
                comp["n"],
                *(f"{_mean(scores[c['eval']].get(a)):.3f}" for a in arms),
                _pp(comp["diff"]),
                f"[{_pp(comp['ci_low'])}, {_pp(comp['ci_high'])}]",
                f"{comp['p_value']:.3g}",
                f"{c['q_value']:.3g}",
                flag,
            ]
        )
    lines += _table(["eval", "category", "n", *arms, "diff (pp)", "95% CI", "p", "q", ""], rows)
    lines += ["", "## Refusal rates", "", "Share of answers that refuse, per eval and arm.", ""]
    lines += _table(
        ["eval", *arms],
        [[name, *(_share(refusals[name].get(a)) for a in arms)] for name in sorted(refusals)],
    )
    lines += [
        "",
        "## Transfer",
        "",
        "Each trained arm against baseline, on the evals whose "
        "domains the arm never saw in trait training.",
        "",
    ]
    lines += _table(
        [
            "arm",
            "trained domains",
            "unseen evals",
            "ahead",
            "sig. gains",
            "sig. regressions",
            "mean diff (pp)",
        ],
        [
            [
                r["arm"],
                ", ".join(r["trained_domains"]) or "-",
                r["unseen_evals"],
                r["ahead"],
                r["significant_gains"],
                r["significant_regressions"],
                r["mean_diff_pp"],
            ]
            for r in results["transfer"]
        ],
    )
    matrix = results["trait_domain_matrix"]
    lines += [
        "",
        f"Probe x domain cluster, {main['evals'][0]['model']} - "
        f"{main['evals'][0]['against']} (pp):",
        "",
    ]
    lines += _table(
        ["probe", *clusters()],
        [[p, *(row.get(c, "") for c in clusters())] for p, row in sorted(matrix.items())],
    )
    lines += ["", *stress_markdown(results["stress"], figures), ""]
    lines += directions_markdown(results["directions"], figures)
    lines += ["", "## Training (compute per arm)", ""]
    if "training" in figures:
        lines += [f"![training curves]({figures['training']})", ""]
    train_rows = []
    for arm, t in results["training"].items():
        rewards = ", ".join(
            f"{k.removeprefix('rewards/')}: {t['first'].get(k)} -> {t['last'].get(k)}"
            for k in t["first"]
        )
        train_rows.append([arm, t["steps"], t["tokens_trained"], t["tokens_generated"], rewards])
    lines += _table(
        ["arm", "steps", "tokens trained", "tokens generated", "reward first -> last tenth"],
        train_rows,
    )
    lines += ["", "## Seeds", ""]
    lines += _table(
        ["arm", "seeds", "mean per seed", "sd over seeds"],
        [
            [
                arm,
                r["n_seeds"],
                ", ".join(f"{m:.3f}" for m in r["seed_means"]),
                "n/a (one seed)" if r["sd"] is None else f"{r['sd']:.4f}",
            ]
            for arm, r in results["seeds"].items()
        ],
    )
    if results["organism_card"]:
        lines += ["", "## Organism", "", "The pretrained organism's card (organism/card.md).", ""]
        lines += _table(["measure", "value"], organism_rows(results["organism_card"]))
    lines += ["", "## Stage times (s)", ""]
    totals = stage_totals(results["stage_seconds"])
    lines += _table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in totals.items()])
    lines += ["", "Each part:", ""]
    lines += _table(["part", "seconds"], [[k, v] for k, v in results["stage_seconds"].items()])
    return "\n".join(lines) + "\n"


def organism_rows(card: dict) -> list[list]:
    """The card's headline figures as (measure, value) rows."""
    rates = card["base_rates"].values()
    capability = ", ".join(f"{k} {100 * v:.1f}%" for k, v in card["capability"].items())
    return [
        ["parameters", f"{card['params']:,}"],
        ["coherence", card["coherence"]],
        ["tokens seen", f"{card['pretraining']['tokens_seen']:,}"],
        ["validation loss", f"{card['pretraining']['val_loss']:.4f}"],
        ["capability (greedy, held-out tasks)", capability],
        ["incoherent sampled answers", f"{100 * card['incoherence_rate']:.1f}%"],
        ["base rates (beneficial family)", f"{100 * min(rates):.0f}% to {100 * max(rates):.0f}%"],
        ["sampling speed", f"{card['sampling_tokens_per_s']:,.0f} tokens/s"],
        ["build time", f"{card['build_seconds']:.0f} s"],
    ]


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


def stress_markdown(stress: dict, figures: dict[str, str]) -> list[str]:
    lines = ["## Persistence: persona prompts", ""]
    persona = stress.get("persona", {}).get("rows", [])
    if not persona:
        lines.append("The stress stage did not run (stress.enabled is false or no results).")
    else:
        lines += [
            "Difference in degradation under each persona prompt (model A minus model B; "
            "positive means A degrades less), 95% bootstrap CI.",
            "",
        ]
        lines += _table(
            ["persona", "kind", "group", "pair", "diff", "95% CI", "n"],
            [
                [
                    r["persona"],
                    r.get("kind", ""),
                    r["group"],
                    r["pair"],
                    f"{r['diff']:+.3f}",
                    f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
                    r["n"],
                ]
                for r in persona
            ],
        )
    lines += ["", "## Persistence: harmful fine-tuning", ""]
    finetune = stress.get("finetune", {})
    if "finetune" in figures:
        lines += [f"![harmful fine-tuning]({figures['finetune']})", ""]
    rows = finetune.get("rows", [])
    if rows:
        lines += _table(
            ["model", "dose", "group", "mean", "se"],
            [
                [r["model"], r["dose"], r["group"], f"{r['mean']:.3f}", f"{r['se']:.3f}"]
                for r in rows
            ],
        )
    for r in finetune.get("max_dose", []):
        lines.append(
            f"- {r['pair']} ({r['group']}, dose {r['dose']}): difference in "
            f"degradation {r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        )
    if not rows:
        lines.append("No harmful fine-tuning results in this run.")
    return lines


def directions_markdown(directions: dict, figures: dict[str, str]) -> list[str]:
    lines = ["## Inside the model: trait directions", ""]
    if not directions:
        return [*lines, "The directions stage did not run."]
    if "directions" in figures:
        lines += [f"![trait directions]({figures['directions']})", ""]
    quality = directions["quality"]
    lines += [
        "Held-out separation: how often a probe's good response projects above its bad one "
        "on eval-template pairs (0.5 is chance). Layer 0 is the token embeddings, the "
        "lexical baseline: separation above it is what the blocks add.",
        "",
        *_table(
            ["layer", "mean separation"],
            [
                [k, f"{v:.3f}"]
                for k, v in zip(quality["layers"], quality["separation_by_layer"], strict=True)
            ],
        ),
        "",
        f"Best layer {quality['best_layer']}; mean off-diagonal cosine between the probes' "
        f"directions there {quality['mean_offdiag_cosine']:+.3f}; share of variance of the "
        f"first principal component {quality['top_component_share']:.3f} (shared structure "
        "across traits shows as high cosine and a large first component).",
        "",
        "Does the projection predict behaviour? Correlation between a model's mean "
        "projection on a probe's direction and its score on that probe: pooled over "
        "(model, probe) pairs; pooled centred removes each probe's mean over models, so it "
        "asks whether the models that project higher on a probe also score higher on it "
        "(p-values treat the pairs as independent, which snapshots and doses of one model "
        "are not); per model: across its probes.",
        "",
    ]
    corr = directions.get("correlation", {})
    scopes = [("pooled", corr.get("pooled")), ("pooled centred", corr.get("pooled_centred"))]
    scopes += sorted(corr.get("per_model", {}).items())
    rows = [
        [name, c["n"], _fmt(c["pearson"]), _fmt(c["pearson_p"]), _fmt(c["spearman"])]
        for name, c in scopes
        if c
    ]
    return lines + _table(["scope", "n", "pearson r", "p", "spearman"], rows)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _mean(by_id: dict | None) -> float:
    return sum(by_id.values()) / len(by_id) if by_id else float("nan")


def _share(flags: dict[str, bool] | None) -> str:
    return f"{sum(flags.values()) / len(flags):.1%}" if flags else "n/a"


def report_html(markdown_text: str, figure_dir: Path) -> str:
    """A plain, self-contained page: the markdown rendered to HTML, figures inlined."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])
    for png in sorted(figure_dir.glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode()
        body = body.replace(f'src="{png.name}"', f'src="data:image/png;base64,{data}"')
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;}table{border-"
        "collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>benrl report</title>"
        f"<style>{style}</style></head><body>{body}</body></html>"
    )


def run_stage(run: Run) -> None:
    """Compare the evaluated models and write results.json, report.md and report.html."""
    inputs = {f"evals/{m}": run.dir / "evals" / m for m in run.model_ids()}
    for summary in ("stress/persona", "stress/finetune", "directions"):
        path = run.dir / summary / "summary.json"
        if path.is_file():  # optional: a stage that ran makes the report redo
            inputs[summary] = path
    stage = run.stage("report", ("eval", "train"), inputs)
    if run.should_run(stage, "report"):
        with stage.running() as extra:
            extra["headline"] = write_report(run.dir, run.cfg, run.model_ids(), stage.dir)
