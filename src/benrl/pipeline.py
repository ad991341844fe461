"""`benrl run`: the stage table, and the loop that runs (or skips) each stage in order.

    analysis_plan.json -> scenarios -> organism -> arms/<arm>-s<seed> -> evals/<model-id>
              -> stress/... -> directions -> report

Each stage is a module exporting `run_stage(run)`; it decides from its manifests
(`runfolder.Stage`) what to redo: change the eval config and only evals and report
rerun; kill a run and the next call resumes at the first unfinished stage. Stage
modules are imported when their turn comes, so `benrl --help` stays fast.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from benrl.analysis.plan import FORCE_PLAN, fix_plan
from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.run import STAGES, Run, console
from benrl.runfolder import check_writable

STAGE_MODULES = {
    "scenarios": "benrl.data.scenarios",
    "organism": "benrl.organism.stage",
    "train": "benrl.training.train",
    "eval": "benrl.evaluation.runner",
    "stress": "benrl.analysis.stress",
    "directions": "benrl.analysis.directions_stage",
    "report": "benrl.report.build",
}
assert tuple(STAGE_MODULES) == STAGES


def run_pipeline(
    cfg: RunConfig, run_dir: Path, force: set[str] | None = None, only: set[str] | None = None
) -> Path:
    """Run (or resume) every stage; returns the path of the report."""
    unknown = (set(force or ()) - {FORCE_PLAN} | set(only or ())) - set(STAGES)
    if unknown:
        raise BenrlError(
            f"unknown stage(s) {sorted(unknown)}; stages are {', '.join(STAGES)} "
            f"(and --force {FORCE_PLAN} accepts a changed analysis plan)"
        )
    check_writable(run_dir)
    missing_arms = [m for m in cfg.eval.models if m != "pre" and m not in cfg.train.arms]
    if missing_arms:
        raise BenrlError(f"eval.models names {missing_arms}, which train.arms does not train")
    run = Run(cfg, run_dir, frozenset(force or ()))
    # The analysis plan is fixed before any stage trains (and checked on every later call).
    fix_plan(run_dir, cfg, force=FORCE_PLAN in (force or ()))
    (run_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
    for name in STAGES:
        if only and name not in only:
            continue
        started = time.time()
        importlib.import_module(STAGE_MODULES[name]).run_stage(run)
        console.print(f"[green]{name}[/green] done in {time.time() - started:.1f}s")
    return run_dir / "report" / "report.html"
