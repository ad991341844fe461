"""Eval units side by side: `workers: 2` against one process, on the same models and items.

The eval stage of a run folder, for its first `--models` models (from the run's
`config.json`), timed twice in this process: all units here one by one (`workers: 1`,
the machine's threads), then two at a time in worker processes of half the threads
(`workers: 2`, worker start-up included). Outputs go to a temporary folder; the run
folder is only read. Also counts the answers that came out the same (the thread count
changes float round-off, which can flip a sampled draw).

    python benchmarks/bench_workers.py runs/default [--models 4]

Prints the figures and writes benchmarks/results/bench_workers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from figures import save_figures

from benrl.config import RunConfig
from benrl.evaluation.runner import RunnerOptions, evaluate_model, select_items
from benrl.evaluation.suites import eval_pool, eval_suite
from benrl.records import read_jsonl, read_records
from benrl.run import Run
from benrl.runfolder import Stage
from benrl.workers import Unit, run_units


def eval_units(run: Run, model_ids: list[str], out: Path) -> list[Unit]:
    names = eval_suite(run.cfg)
    records = eval_pool(run.cfg, read_records(run.eval_records))
    items = select_items(records, names, run.cfg.eval.items_per_eval, run.cfg.seed)
    options = RunnerOptions.from_config(run.cfg)
    return [
        Unit(
            Stage(out, model_id, "bench"),
            f"evaluating {model_id}",
            evaluate_model,
            (run.model_dir(model_id), items, out / model_id, options, model_id, 1.0),
        )
        for model_id in model_ids
    ]


def timed(units: list[Unit], workers: int) -> float:
    started = time.perf_counter()
    run_units(units, workers)
    return time.perf_counter() - started


def answers(folder: Path) -> list[str]:
    return [r["completion"] for p in sorted(folder.glob("*/*.jsonl")) for r in read_jsonl(p)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--models", type=int, default=4)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["BENRL_PROGRESS"] = "0"
    cfg = RunConfig.model_validate(json.loads((args.run_dir / "config.json").read_text()))
    run = Run(cfg, args.run_dir)
    model_ids = run.model_ids()[: args.models]
    with tempfile.TemporaryDirectory() as tmp:
        one, two = Path(tmp) / "one", Path(tmp) / "two"
        seconds_one = timed(eval_units(run, model_ids, one), 1)
        seconds_two = timed(eval_units(run, model_ids, two), 2)
        first, second = answers(one), answers(two)
    same = sum(a == b for a, b in zip(first, second, strict=True))
    save_figures(
        "bench_workers",
        {
            "models": model_ids,
            "answers": len(first),
            "seconds_one_process": seconds_one,
            "seconds_two_workers": seconds_two,
            "throughput_ratio": seconds_one / seconds_two,
            "same_answers_share": same / len(first),
        },
    )


if __name__ == "__main__":
    main()
