"""The eval stage: score each model on the chosen evals, one scored sample per line.

The runner generates an answer (greedy at temperature 0, else `samples` sampled answers
per item) for every item of every selected eval in one batched pass, grades them with
each eval's judge (a batch per eval, through one `JudgeCache`), and writes
`evals/<model-id>/<eval>.jsonl` plus `summary.json`. Samples carry the record id, so
models are compared pairwise by item.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benrl.errors import BenrlError
from benrl.evaluation.registry import eval_names, registered_evals
from benrl.evaluation.stats import standard_error
from benrl.evaluation.suites import eval_pool, eval_suite
from benrl.judging.registry import JudgeCache
from benrl.records import ScenarioRecord, read_records, write_jsonl
from benrl.run import Run, console

if TYPE_CHECKING:
    from benrl.config import RunConfig

Items = dict[str, list[ScenarioRecord]]  # eval name -> its records


@dataclass(frozen=True)
class RunnerOptions:
    """How the runner answers and grades: judges, answer budget, sampling, seed."""

    judge_by_kind: dict[str, str]
    judge_options: dict[str, dict]
    max_new_tokens: int
    batch_size: int
    temperature: float = 0.0
    samples: int = 1
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: RunConfig) -> RunnerOptions:
        return cls(
            judge_by_kind={"trait": cfg.judge.trait, "task": cfg.judge.task},
            judge_options=cfg.judge.options,
            max_new_tokens=cfg.eval.max_new_tokens,
            batch_size=cfg.eval.batch_size,
            temperature=cfg.eval.temperature,
            samples=cfg.eval.samples,
            seed=cfg.seed,
        )

    def judges(self) -> JudgeCache:
        return JudgeCache(self.judge_by_kind, self.judge_options)


@dataclass(frozen=True)
class EvalSummary:
    """One model on one eval, as `summary.json` stores it."""

    category: str
    n: int  # answers (items x samples), failed ones included
    mean: float | None
    se: float | None  # None below two scored answers
    failed: int
    incoherent: int
    refusal_rate: float


def select_items(records: list[ScenarioRecord], names: list[str], limit: int, seed: int) -> Items:
    """The records of each eval: a fixed random subset of `limit` eval-split records."""
    evals = registered_evals()
    chosen = {}
    for name in eval_names(names):
        pool = [r for r in records if r.split == "eval" and evals[name].select(r)]
        if not pool:
            raise BenrlError(f"eval '{name}' has no eval-split records in the scenarios")
        rng = random.Random(f"eval-items-{name}-{seed}")
        chosen[name] = sorted(rng.sample(pool, min(limit, len(pool))), key=lambda r: r.id)
    return chosen


def run_evals(
    model_dir: Path,
    items: Items,
    out_dir: Path,
    options: RunnerOptions,
    judges: JudgeCache | None = None,
) -> dict[str, EvalSummary]:
    """Generate and score every item; write per-eval JSONL and summary.json.

    Greedy (temperature 0) gives one answer per item; sampling gives `samples` answers,
    one line each (`sample` 0..n-1), drawn with the options' seed so a rerun reproduces them.
    """
    from benrl.evaluation.generate import generate, load_model

    evals = registered_evals()
    judges = judges or options.judges()
    model, tokenizer = load_model(model_dir)
    flat = [(name, r) for name, records in items.items() for r in records]
    completions = generate(
        model,
        tokenizer,
        [list(r.messages) for _, r in flat],
        max_new_tokens=options.max_new_tokens,
        temperature=options.temperature,
        seed=options.seed,
        batch_size=options.batch_size,
        num_samples=options.samples,
    )
    answers: dict[str, list[tuple[ScenarioRecord, int, str]]] = {name: [] for name in items}
    for (name, record), outs in zip(flat, completions, strict=True):
        answers[name] += [(record, k, out) for k, out in enumerate(outs)]
    rows_by_eval: dict[str, list[dict]] = {}
    for name, graded in answers.items():
        results = judges.score_many(evals[name].judge, [(r, out) for r, _, out in graded])
        rows_by_eval[name] = [
            {"id": r.id, "sample": k, "completion": out, **result.model_dump()}
            for (r, k, out), result in zip(graded, results, strict=True)
        ]
    for stale in out_dir.glob("*.jsonl"):  # samples of evals no longer in the suite
        if stale.stem not in rows_by_eval:
            stale.unlink()
    summary = {}
    for name, rows in rows_by_eval.items():
        write_jsonl(out_dir / f"{name}.jsonl", rows)
        summary[name] = eval_summary(rows, evals[name].category)
    (out_dir / "summary.json").write_text(
        json.dumps({k: asdict(v) for k, v in summary.items()}, indent=2, sort_keys=True)
    )
    return summary


def eval_summary(rows: list[dict], category: str) -> EvalSummary:
    scored = [r["score"] for r in rows if r["score"] is not None]
    return EvalSummary(
        category=category,
        n=len(rows),
        mean=sum(scored) / len(scored) if scored else None,
        se=standard_error(scored),
        failed=sum(r["status"] == "failed" for r in rows),
        incoherent=sum(r["status"] == "incoherent" for r in rows),
        refusal_rate=sum(bool(r.get("refusal")) for r in rows) / max(1, len(rows)),
    )


def load_scores(eval_dir: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, bool]]]:
    """Per eval of the folder's summary.json: record id -> score, and id -> refusal.

    With several samples per item, an item's score is the mean of its scored samples
    (failed ones left out) and it counts as a refusal when at least half its samples
    refuse.
    """
    scores, refusals = {}, {}
    summary = eval_dir / "summary.json"
    if not summary.exists():
        raise BenrlError(f"{eval_dir}: no summary.json; run the eval stage first")
    for name in sorted(json.loads(summary.read_text())):
        path = eval_dir / f"{name}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        scored: dict[str, list[float]] = {}
        refused: dict[str, list[bool]] = {}
        for r in rows:
            refused.setdefault(r["id"], []).append(bool(r.get("refusal")))
            if r["score"] is not None:
                scored.setdefault(r["id"], []).append(r["score"])
        scores[path.stem] = {rid: sum(v) / len(v) for rid, v in scored.items()}
        refusals[path.stem] = {rid: 2 * sum(v) >= len(v) for rid, v in refused.items()}
    return scores, refusals


def run_stage(run: Run) -> None:
    """Evaluate every model of `eval.models` (seeds expanded) on the chosen evals."""
    cfg = run.cfg.eval
    names = eval_suite(run.cfg)  # part of the stage's identity: new evals rerun it
    options = RunnerOptions.from_config(run.cfg)
    judges = options.judges()
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
        records = records or eval_pool(run.cfg, read_records(run.eval_records))
        items = select_items(records, names, cfg.items_per_eval, run.cfg.seed)
        console.print(f"evaluating [bold]{model_id}[/bold] on {len(items)} evals")
        with stage.running() as extra:
            summary = run_evals(model_dir, items, stage.dir, options, judges)
            extra["evals"] = len(summary)
