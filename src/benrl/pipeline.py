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
from benrl.checks import check_config, check_endpoints
from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.run import STAGES, Run, console
from benrl.runfolder import run_lock
from benrl.workers import shutdown_workers

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
    check_config(cfg)  # every name, option, range and file, before any stage runs
    with run_lock(run_dir):
        run = Run(cfg, run_dir, frozenset(force or ()), lambda: check_endpoints(cfg))
        # The analysis plan is fixed before any stage trains (and checked on every later call).
        fix_plan(run_dir, cfg, force=FORCE_PLAN in (force or ()))
        try:
            _run_stages(run, only)
        finally:
            shutdown_workers()  # the worker processes (`workers: N`) end with the run
    return run_dir / "report" / "report.html"


def _run_stages(run: Run, only: set[str] | None) -> None:
    """Every stage in order (or those in `only`), under the caller's run-folder lock."""
    (run.dir / "config.json").write_text(run.cfg.model_dump_json(indent=2))
    seconds: dict[str, float] = {}
    for name in STAGES:
        if only and name not in only:
            continue
        started = time.time()
        importlib.import_module(STAGE_MODULES[name]).run_stage(run)
        seconds[name] = time.time() - started
        console.print(f"[green]{name}[/green] done in {seconds[name]:.1f}s")
        if name == "scenarios":  # every eval of the suite can be filled: fail before training
            from benrl.evaluation.suites import check_suite
            from benrl.records import read_records

            check_suite(run.cfg, read_records(run.eval_records))
    console.print(stage_times_line(seconds))


def stage_times_line(seconds: dict[str, float]) -> str:
    """`stage times: scenarios 8 s, organism 175 s, ...; total 21.3 min` (this call's wall
    time per stage: a stage reused from an earlier call shows its check, not its work)."""
    parts = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
    return f"stage times: {parts}; total {sum(seconds.values()) / 60:.1f} min"
