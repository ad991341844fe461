"""`benrl run`: the stage table, and the loop that runs (or skips) each stage in order.

    scenarios -> organism -> arms/<arm>-s<seed> -> evals/<model-id>
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

from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.judging.reachable import check_endpoints
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
    unknown = (set(force or ()) | set(only or ())) - set(STAGES)
    if unknown:
        raise BenrlError(f"unknown stage(s) {sorted(unknown)}; stages are {', '.join(STAGES)}")
    check_writable(run_dir)
    missing_arms = [m for m in cfg.eval.models if m != "pre" and m not in cfg.train.arms]
    if missing_arms:
        raise BenrlError(f"eval.models names {missing_arms}, which train.arms does not train")
    check_endpoints(cfg)  # an unreachable judge or writer fails now, not hours later
    run = Run(cfg, run_dir, frozenset(force or ()))
    (run_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
    for name in STAGES:
        if only and name not in only:
            continue
        started = time.time()
        importlib.import_module(STAGE_MODULES[name]).run_stage(run)
        console.print(f"[green]{name}[/green] done in {time.time() - started:.1f}s")
        if name == "scenarios":  # every eval of the suite can be filled: fail before training
            from benrl.evaluation.suites import check_suite
            from benrl.records import read_records

            check_suite(cfg, read_records(run.eval_records))
    return run_dir / "report" / "report.html"
