"""`benrl run`: the stages in order, each skipped when its manifest says it is done.

    scenarios -> organism -> arms/<arm>-s<seed> -> evals/<model-id>
              -> stress/... -> directions -> report

Each stage's identity is the hash of the config sections it reads plus the hashes of
its input files (`runfolder.Stage`): change the eval config and only evals and report
rerun; kill a run and the next call resumes at the first unfinished stage.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.records import read_records
from benrl.runfolder import Stage, check_writable, hash_json

STAGES = ("scenarios", "organism", "train", "eval", "stress", "directions", "report")
console = Console(stderr=True)


@dataclass
class Run:
    cfg: RunConfig
    dir: Path
    force: frozenset[str] = frozenset()

    def stage(
        self,
        name: str,
        sections: tuple[str, ...],
        inputs: dict[str, Path],
        extra: object = None,
        seed: int | None = None,
    ) -> Stage:
        config_hash = hash_json([self.cfg.section_hash(*sections), extra])
        return Stage(self.dir, name, config_hash, inputs, self.cfg.seed if seed is None else seed)

    def should_run(self, stage: Stage, group: str) -> bool:
        stage.input_hashes()  # fails with a clear message if an earlier stage is missing
        if group in self.force or stage.name in self.force:
            return True
        if stage.is_complete():
            console.print(f"[dim]skip {stage.name}: complete, hashes match[/dim]")
            return False
        return True

    # --- where things are ------------------------------------------------------------
    @property
    def train_records(self) -> Path:
        return self.dir / "scenarios" / "train.jsonl"

    @property
    def eval_records(self) -> Path:
        return self.dir / "scenarios" / "eval.jsonl"

    @property
    def base_model(self) -> Path:
        if self.cfg.model == "organism":
            return self.dir / "organism" / "model"
        return Path(self.cfg.model)

    def model_ids(self) -> list[str]:
        ids = []
        for arm in self.cfg.eval.models:
            if arm == "pre":
                ids.append("pre")
            else:
                ids += [f"{arm}-s{s}" for s in range(self.cfg.train.seeds)]
        return ids

    def model_dir(self, model_id: str) -> Path:
        return self.base_model if model_id == "pre" else self.dir / "arms" / model_id / "model"


def run_pipeline(
    cfg: RunConfig, run_dir: Path, force: set[str] | None = None, only: set[str] | None = None
) -> Path:
    """Run (or resume) every stage; returns the path of the report."""
    unknown = (set(force or ()) | set(only or ())) - set(STAGES)
    if unknown:
        raise BenrlError(f"unknown stage(s) {sorted(unknown)}; stages are {', '.join(STAGES)}")
    check_writable(run_dir)
    missing_arms = [m for m in cfg.eval.models if m != "pre" and m not in cfg.train.arms]
    if missing_arms:
        raise BenrlError(f"eval.models names {missing_arms}, which train.arms does not train")
    run = Run(cfg, run_dir, frozenset(force or ()))
    (run_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
    steps = {
        "scenarios": stage_scenarios,
        "organism": stage_organism,
        "train": stage_train,
        "eval": stage_eval,
        "stress": stage_stress,
        "directions": stage_directions,
        "report": stage_report,
    }
    for name in STAGES:
        if only and name not in only:
            continue
        started = time.time()
        steps[name](run)
        console.print(f"[green]{name}[/green] done in {time.time() - started:.1f}s")
    return run_dir / "report" / "report.html"


def stage_scenarios(run: Run) -> None:
    from benrl.scenarios import build_scenarios

    stage = run.stage("scenarios", ("scenarios",), {})
    if run.should_run(stage, "scenarios"):
        with stage.running() as extra:
            extra["totals"] = build_scenarios(run.cfg.scenarios, run.cfg.seed, stage.dir)


def stage_organism(run: Run) -> None:
    if run.cfg.model != "organism":
        if not (run.base_model / "config.json").exists():
            raise BenrlError(
                f"model: {run.base_model} is not a Hugging Face model folder (no config.json)"
            )
        return
    from benrl.organism import build_organism

    stage = run.stage("organism", ("organism",), {})
    if run.should_run(stage, "organism"):
        with stage.running() as extra:
            extra["card"] = build_organism(run.cfg.organism, run.cfg.seed, stage.dir)


def stage_train(run: Run) -> None:
    from benrl.train import check_compute_matched, summarize_log, train_arm

    records = None
    summaries = {}
    for seed in range(run.cfg.train.seeds):
        for arm in run.cfg.train.arms:
            stage = run.stage(
                f"arms/{arm}-s{seed}",
                ("train", "judge"),
                {"scenarios": run.train_records, "base_model": run.base_model},
                extra=[arm, run.cfg.directions.snapshots],
                seed=seed,
            )
            if run.should_run(stage, "train"):
                records = records or read_records(run.train_records)
                console.print(
                    f"training [bold]{arm}[/bold] seed {seed} ({run.cfg.train.steps} GRPO steps)"
                )
                with stage.running() as extra:
                    extra["summary"] = train_arm(
                        arm,
                        seed,
                        run.cfg.train,
                        run.cfg.judge,
                        records,
                        run.base_model,
                        stage.dir,
                        run.cfg.directions.snapshots,
                    )
            summaries[f"{arm}-s{seed}"] = summarize_log(stage.dir / "log.jsonl", run.cfg.train)
        check_compute_matched(
            {k: v for k, v in summaries.items() if k.endswith(f"-s{seed}")},
            run.cfg.train.token_tolerance,
        )
    (run.dir / "arms").mkdir(exist_ok=True)
    (run.dir / "arms" / "summary.json").write_text(json.dumps(summaries, indent=2))


def stage_eval(run: Run) -> None:
    from benrl.evals import EVALS, run_evals, runner_options, select_items

    cfg = run.cfg.eval
    names = cfg.evals or sorted(EVALS)  # part of the stage's identity: new evals rerun it
    records = None
    for model_id in run.model_ids():
        model_dir = run.model_dir(model_id)
        stage = run.stage(
            f"evals/{model_id}",
            ("eval", "judge"),
            {"scenarios": run.eval_records, "model": model_dir},
            extra=names,
        )
        if not run.should_run(stage, "eval"):
            continue
        records = records or read_records(run.eval_records)
        items = select_items(records, names, cfg.items_per_eval, run.cfg.seed)
        console.print(f"evaluating [bold]{model_id}[/bold] on {len(items)} evals")
        with stage.running() as extra:
            summary = run_evals(model_dir, items, out_dir=stage.dir, **runner_options(run.cfg))
            extra["evals"] = len(summary)


def stage_stress(run: Run) -> None:
    from benrl.stress import stage_stress as run_stress

    run_stress(run)


def stage_directions(run: Run) -> None:
    from benrl.directions import stage_directions as run_directions

    run_directions(run)


def stage_report(run: Run) -> None:
    from benrl.report import write_report

    inputs = {f"evals/{m}": run.dir / "evals" / m for m in run.model_ids()}
    for summary in ("stress/persona", "stress/finetune", "directions"):
        path = run.dir / summary / "summary.json"
        if path.is_file():  # optional: a stage that ran makes the report redo
            inputs[summary] = path
    stage = run.stage("report", ("eval", "train"), inputs)
    if run.should_run(stage, "report"):
        with stage.running() as extra:
            extra["headline"] = write_report(run.dir, run.cfg, run.model_ids(), stage.dir)
