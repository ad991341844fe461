"""`benrl report readme`: the README's Results section, rewritten from one run's results.json.

The README marks its results with the lines `<!-- results:start -->` and
`<!-- results:end -->`; everything between them is replaced by what one run measured:
which run (name, config hash, date, seeds per arm), the OOD headline table, the
in-distribution line, the held-out trait score beside the paper's, what each persona
prompt does to `pre` and the harmful fine-tuning comparison, and a link to the report.
So the README's numbers are never typed by hand, and they name their run. The text
depends only on results.json and the two paths, so a second run changes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from benrl.errors import BenrlError
from benrl.models import PRE, arm_of
from benrl.report.directions_section import found_line
from benrl.report.markdown import SPLIT_NOTE, headline_table
from benrl.report.paper import HELDOUT_MEASURE
from benrl.report.results import main_key, stage_totals
from benrl.runfolder import hash_json

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def update_readme(run_dir: Path, readme: Path) -> bool:
    """Replace the README's marked section with `run_dir`'s results; True if it changed."""
    text = readme.read_text()
    lines = text.splitlines()
    start, end = _markers(lines, readme)
    block = results_block(_read_results(run_dir), run_dir, readme)
    new = "\n".join([*lines[: start + 1], *block, *lines[end:]]) + "\n"
    if new == text:
        return False
    readme.write_text(new)
    return True


def _markers(lines: list[str], readme: Path) -> tuple[int, int]:
    """Line numbers of the start and end markers; each must appear once, start first."""
    found = {m: [i for i, line in enumerate(lines) if line.strip() == m] for m in (START, END)}
    if len(found[START]) != 1 or len(found[END]) != 1 or found[START][0] > found[END][0]:
        raise BenrlError(
            f"{readme}: needs the lines {START} and {END}, once each and in that order, "
            "around its Results section"
        )
    return found[START][0], found[END][0]


def _read_results(run_dir: Path) -> dict:
    path = run_dir / "report" / "results.json"
    if not path.is_file():
        raise BenrlError(f"{path}: no results.json; run the report stage of {run_dir} first")
    return json.loads(path.read_text())


def results_block(results: dict, run_dir: Path, readme: Path) -> list[str]:
    """The lines between the markers (blank lines around them included)."""
    chosen = results["config"]["eval"]
    main = results["comparisons"][
        main_key(results["comparisons"], chosen["compare"], chosen["against"])
    ]
    run = Path(os.path.relpath(run_dir, readme.parent)).as_posix()
    lines = [
        "",
        f"Written by `benrl report readme` from {_provenance(results, run)}; do not edit by hand.",
        "",
        "Out of distribution (OOD): evals of the traits no arm trained on, and public "
        "datasets; in distribution: evals of the trained traits.",
        "",
        *headline_table(results["comparisons"]),
        "",
        SPLIT_NOTE.format(alpha=results["config"]["eval"]["alpha"]),
        "",
    ]
    if main.get("in_distribution"):
        lines += [f"In distribution: {main['in_distribution']['headline']}.", ""]
    rows = [r for r in results.get("paper_comparison", []) if r["measure"] == HELDOUT_MEASURE]
    for r in rows:
        lines += [
            f"Held-out trait score, pre -> beneficial: {r['ours']} (paper: {r['paper']}).",
            "",
        ]
    lines += persistence_lines(results.get("stress") or {}, chosen["compare"])
    lines += directions_lines(results.get("directions") or {})
    if results.get("stage_spans"):
        lines += [_stage_time_line(stage_totals(results["stage_spans"])), ""]
    report = f"{run}/report/report"
    return [*lines, f"Full report: [{report}.md]({report}.md) ([html]({report}.html)).", ""]


TARGET_GROUP = {"health": "health", "general": "non_health"}


def persistence_lines(stress: dict, compare: str) -> list[str]:
    """Each persona's effect on `pre` (its target group) and the fine-tuning areas."""
    lines = []
    personas = stress.get("persona", {}).get("personas", {})
    cells = {
        (r["persona"], r["model"], r["group"]): r
        for r in stress.get("persona", {}).get("degradation", [])
    }
    effects = []
    for name, spec in personas.items():
        row = cells.get((name, PRE, TARGET_GROUP[spec["target"]]))
        if row and row["mean"] is not None:
            half = 1.96 * (row["se"] or 0.0)
            effects.append(
                f"{name} ({spec['kind']}) {100 * row['mean']:+.1f} pp "
                f"[{100 * (row['mean'] - half):+.1f}, {100 * (row['mean'] + half):+.1f}] on "
                f"{row['group']}, {100 * row['changed']:.0f}% of answers changed"
            )
    if effects:
        lines += [
            "Persona prompts on `pre` (score with minus without): " + "; ".join(effects) + ".",
            "",
        ]
    finetune = stress.get("finetune", {})
    areas = [r for r in finetune.get("auc", []) if r["pair"].startswith(f"{compare} vs ")]
    if areas:
        floor = finetune.get("floor", {}).get("health")
        parts = "; ".join(
            f"{r['pair']}, {r['group']}: {r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
            for r in areas
            if r["group"] != "capability"
        )
        floor_text = f", floor {floor['mean']:.3f} on health" if floor else ""
        lines += [
            f"Harmful fine-tuning (doses {finetune['doses']}, {finetune.get('finetune_seeds', 1)} "
            f"fine-tuning seeds{floor_text}), difference in the area under the degradation "
            f"curve (positive: {compare} lost less): {parts}.",
            "",
        ]
    return lines


def directions_lines(directions: dict) -> list[str]:
    """The directions verdict (found or not, against its controls) and projection vs behaviour."""
    quality = directions.get("quality")
    if not quality:
        return []
    line = "Trait directions (controlled for the tokens): " + found_line(quality).replace("**", "")
    corr = (directions.get("correlation") or {}).get("pooled_centred") or {}
    if corr.get("pearson") is not None:
        ci = corr.get("models_ci")
        over_models = f" [{ci[0]:+.2f}, {ci[1]:+.2f}] over models" if ci else ""
        line += (
            f" Projection vs behaviour across models (centred per probe): r {corr['pearson']:+.2f}"
            f"{over_models}, {corr['n']} (model, probe) pairs."
        )
    return [line, ""]


def _stage_time_line(totals: dict[str, float]) -> str:
    """ "Compute: scenarios 7 s, organism 254 s, ... total 48.5 min (...)." """
    parts = ", ".join(
        f"{stage} {seconds:.0f} s" for stage, seconds in totals.items() if stage != "total"
    )
    return (
        f"Time to produce this run folder on its machine: {parts}; total "
        f"{totals['total'] / 60:.1f} min (from each stage's manifests; parts run side by side "
        "count once; setup and glue not counted)."
    )


def _provenance(results: dict, run: str) -> str:
    """ "run `default` (runs/default, config 1a2b..., 2025-01-01T00:00:00+00:00; seeds: ...)"."""
    seeds: dict[str, int] = {}
    for model in results["models"]:
        if model != PRE:
            seeds[arm_of(model)] = seeds.get(arm_of(model), 0) + 1
    per_arm = ", ".join(f"{arm} {n}" for arm, n in seeds.items())
    date = f", {results['date']}" if results.get("date") else ""
    return (
        f"run `{results['config']['name']}` ({run}, config "
        f"{hash_json(results['config'])}{date}; seeds per arm: {per_arm})"
    )
