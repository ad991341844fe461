"""`benrl organism controls`: the organism's positive and negative control.

The paper's hypothesis is that RL on a few traits moves a whole *character*, so gains
transfer to other traits and domains. The persona world lets us check that the
measurement pipeline finds transfer when the world has a character to move and none
when it has not. Two organisms differ only in `coherence` (1: one global character
drives every trait; 0: each trait of a persona is independent). Both get the same small
RL push: GRPO on one probe in one domain, rewarded by its rubric. The change (after -
before) is then measured on four groups of evals:

- trained cell: the same probe in the same domain cluster (eval-only wordings);
- same trait, other domains;
- other traits, same domain;
- other traits, other domains (the transfer the paper claims).

At coherence 1 the last three should move with the first; at coherence 0 only the
first two should. Each group's change is a paired difference over its items with a
bootstrap CI and a sign-flip p-value (`stats.paired_comparison`).
"""

from __future__ import annotations

import json
from pathlib import Path

from benrl.config import RunConfig
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import RunnerOptions, load_scores, run_evals, select_items
from benrl.evaluation.stats import paired_comparison
from benrl.organism.evals import CLUSTERS
from benrl.records import ScenarioRecord, read_records
from benrl.run import Run

GROUPS = (
    "trained cell",
    "same trait, other domains",
    "other traits, same domain",
    "other traits, other domains",
)


def eval_groups(probe: str, domain: str) -> dict[str, list[str]]:
    """The probe evals of each group (capability and aggregate evals left out)."""
    cluster = next(name for name, domains in CLUSTERS.items() if domain in domains)
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for name, ev in registered_evals().items():
        if ev.probe is None or ev.cluster not in CLUSTERS:
            continue
        same_probe, same_cluster = ev.probe == probe, ev.cluster == cluster
        group = GROUPS[(0 if same_cluster else 1) if same_probe else (2 if same_cluster else 3)]
        groups[group].append(name)
    return groups


def push_records(records: list[ScenarioRecord], probe: str, domain: str) -> list[ScenarioRecord]:
    """Trait records of one probe in one domain: the only data the push trains on."""
    chosen = [
        r
        for r in records
        if r.kind == "trait" and r.domain == domain and r.source.split("/")[0] == probe
    ]
    return chosen + [r for r in records if r.kind == "task"]


def run_controls(
    cfg: RunConfig,
    out_dir: Path,
    probe: str,
    domain: str,
    coherences: tuple[float, ...] = (0.0, 1.0),
) -> dict:
    """Build, push and evaluate one organism per coherence; write controls.{json,md}.

    Every piece is a run-folder stage of `out_dir` with its manifest, so a finished piece
    is reused and an edited config redoes what depends on the edit.
    """
    from benrl.data.scenarios import build_scenarios
    from benrl.organism.stage import build_stage
    from benrl.training.train import train_arm

    run = Run(cfg, out_dir)
    scenarios = run.stage("scenarios", ("scenarios",), {})
    if run.should_run(scenarios, "scenarios"):
        with scenarios.running():
            build_scenarios(cfg.scenarios, cfg.seed, scenarios.dir)
    train_records = push_records(read_records(scenarios.dir / "train.jsonl"), probe, domain)
    groups = eval_groups(probe, domain)
    names = [n for group in groups.values() for n in group]
    items = select_items(
        read_records(scenarios.dir / "eval.jsonl"), names, cfg.eval.items_per_eval, cfg.seed
    )
    push_cfg = cfg.train.model_copy(update={"trait_fraction": 1.0})
    options = RunnerOptions.from_config(cfg)
    rows = []
    for coherence in coherences:
        part = f"coherence-{coherence:g}"
        organism_cfg = cfg.organism.model_copy(update={"coherence": coherence})
        arm_run = Run(cfg.model_copy(update={"organism": organism_cfg}), out_dir)
        organism = build_stage(arm_run, f"{part}/organism") / "model"
        push = arm_run.stage(
            f"{part}/push",
            ("train", "judge"),
            {"scenarios": scenarios.dir / "train.jsonl", "base_model": organism},
            extra=[probe, domain],
        )
        if arm_run.should_run(push, "train"):
            with push.running():
                train_arm(
                    "beneficial", cfg.seed, push_cfg, cfg.judge, train_records, organism, push.dir
                )
        for model_id, model_dir in (("before", organism), ("after", push.dir / "model")):
            evals = arm_run.stage(
                f"{part}/evals/{model_id}",
                ("eval", "judge"),
                {"scenarios": scenarios.dir / "eval.jsonl", "model": model_dir},
                extra=names,
            )
            if arm_run.should_run(evals, "eval"):
                with evals.running():
                    run_evals(model_dir, items, evals.dir, options)
        rows += group_changes(out_dir / part, groups, coherence, cfg.eval.bootstrap, cfg.seed)
    result = {"probe": probe, "domain": domain, "groups": groups, "rows": rows}
    (out_dir / "controls.json").write_text(json.dumps(result, indent=2))
    (out_dir / "controls.md").write_text(controls_markdown(result))
    return result


def group_changes(
    folder: Path, groups: dict[str, list[str]], coherence: float, n_boot: int, seed: int
) -> list[dict]:
    before, _ = load_scores(folder / "evals" / "before")
    after, _ = load_scores(folder / "evals" / "after")
    rows = []
    for group, names in groups.items():
        # Items of all the group's evals, pooled; ids are prefixed so they stay unique.
        a = {f"{n}/{i}": v for n in names for i, v in after.get(n, {}).items()}
        b = {f"{n}/{i}": v for n in names for i, v in before.get(n, {}).items()}
        comp = paired_comparison(a, b, n_boot=n_boot, seed=seed)
        rows.append(
            {
                "coherence": coherence,
                "group": group,
                "evals": len(names),
                "n": comp.n,
                "before": comp.mean_b,
                "after": comp.mean_a,
                "diff": comp.diff,
                "ci_low": comp.ci_low,
                "ci_high": comp.ci_high,
                "p": comp.p_value,
            }
        )
    return rows


def controls_markdown(result: dict) -> str:
    lines = [
        f"# Organism controls: RL push on `{result['probe']}` in `{result['domain']}`",
        "",
        "| coherence | group | evals | items | before | after | change (pp) | 95% CI | p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['coherence']:g} | {r['group']} | {r['evals']} | {r['n']} | "
            f"{r['before']:.3f} | {r['after']:.3f} | {100 * r['diff']:+.1f} | "
            f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] | {r['p']:.3g} |"
        )
    return "\n".join(lines) + "\n"
