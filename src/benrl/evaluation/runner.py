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
from benrl.records import ScenarioRecord, read_json, read_jsonl, read_records, write_jsonl
from benrl.run import Run
from benrl.workers import Unit, run_units

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
    chat_template_kwargs: dict | None = None  # the same as training's (train.chat_template_kwargs)
    backend: str = "hf"  # hf | vllm
    vllm_gpu_memory_utilization: float = 0.85
    # one random stream per answer, independent of batching (`generate`'s `paired`): the
    # stress stage compares calls that differ only in their prompts
    paired_sampling: bool = False

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
            chat_template_kwargs=cfg.train.chat_template_kwargs or None,
            backend=cfg.eval.backend,
            vllm_gpu_memory_utilization=cfg.eval.vllm_gpu_memory_utilization,
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


def answer_all(model_dir: Path, conversations: list, options: RunnerOptions) -> list[list[str]]:
    """Every conversation's answers, by the options' backend (hf generate or vLLM)."""
    kwargs = {
        "max_new_tokens": options.max_new_tokens,
        "temperature": options.temperature,
        "seed": options.seed,
        "num_samples": options.samples,
        "chat_template_kwargs": options.chat_template_kwargs,
    }
    if options.backend == "vllm":
        from benrl.evaluation.vllm_generate import generate_vllm

        return generate_vllm(
            model_dir, conversations, options.vllm_gpu_memory_utilization, **kwargs
        )
    from benrl.evaluation.generate import generate, load_model
    from benrl.progress import progress_bar

    model, tokenizer = load_model(model_dir)
    answers = len(conversations) * (1 if options.temperature == 0 else options.samples)
    with progress_bar(f"answering ({model_dir.parent.name})", answers) as advance:
        return generate(
            model, tokenizer, conversations, batch_size=options.batch_size, on_batch=advance,
            paired=options.paired_sampling, **kwargs,
        )  # fmt: skip


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
    evals = registered_evals()
    judges = judges or options.judges()
    flat = [(name, r) for name, records in items.items() for r in records]
    completions = answer_all(model_dir, [list(r.messages) for _, r in flat], options)
    answers: dict[str, list[tuple[ScenarioRecord, int, str]]] = {name: [] for name in items}
    for (name, record), outs in zip(flat, completions, strict=True):
        answers[name] += [(record, k, out) for k, out in enumerate(outs)]
    # every eval's answers in one grading call: a model judge works through all of them
    # with its bounded concurrency instead of one eval at a time
    jobs = [
        (judges.for_kind_name(evals[name].judge), r, out)
        for name, graded in answers.items()
        for r, _, out in graded
    ]
    results = iter(judges.grade_routed(jobs))
    rows_by_eval: dict[str, list[dict]] = {
        name: [
            {"id": r.id, "sample": k, "completion": out, **next(results).model_dump()}
            for r, k, out in graded
        ]
        for name, graded in answers.items()
    }
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
    for name in sorted(read_json(summary)):
        path = eval_dir / f"{name}.jsonl"
        rows = read_jsonl(path)
        scored: dict[str, list[float]] = {}
        refused: dict[str, list[bool]] = {}
        for line_no, r in enumerate(rows, 1):
            if not isinstance(r, dict) or "id" not in r or "score" not in r:
                raise BenrlError(f"{path}: row {line_no} is not a scored sample (id, score)")
            refused.setdefault(r["id"], []).append(bool(r.get("refusal")))
            if r["score"] is not None:
                scored.setdefault(r["id"], []).append(r["score"])
        scores[path.stem] = {rid: sum(v) / len(v) for rid, v in scored.items()}
        refusals[path.stem] = {rid: 2 * sum(v) >= len(v) for rid, v in refused.items()}
    return scores, refusals


def failure_counts(eval_dir: Path) -> dict[str, dict[str, int]]:
    """Per eval of a model's folder: failed verdicts and answers, from its summary.json."""
    summary = read_json(eval_dir / "summary.json")
    return {name: {"failed": s["failed"], "n": s["n"]} for name, s in sorted(summary.items())}


def check_failures(
    out_dir: Path,
    summary: dict[str, EvalSummary],
    max_rate: float,
    model_id: str,
    judges: JudgeCache,
) -> None:
    """Fail the stage when an eval has more failed verdicts than `judge.max_failure_rate`.

    The message names the eval, the share and the judge's last error (from the samples).
    """
    for name, s in sorted(summary.items()):
        if s.n == 0 or s.failed / s.n <= max_rate:
            continue
        rows = read_jsonl(out_dir / f"{name}.jsonl")
        reasons = [r.get("reason") for r in rows if r.get("status") == "failed"]
        last = next((r for r in reversed(reasons) if r), "no reason recorded")
        share = "every one of its" if s.failed == s.n else f"{s.failed} of {s.n}"
        judge = judges.judge_by_kind.get(registered_evals()[name].judge, "?")
        raise BenrlError(
            f"eval '{name}' on {model_id}: judge '{judge}' failed on {share} verdicts "
            f"(judge.max_failure_rate {max_rate:.0%}); last error: {last}"
        )


def run_stage(run: Run) -> None:
    """Evaluate every model of `eval.models` (seeds expanded) on the chosen evals."""
    names = eval_suite(run.cfg)  # part of the stage's identity: new evals rerun it
    options = RunnerOptions.from_config(run.cfg)
    items = None
    units = []
    for model_id in run.model_ids():
        model_dir = run.model_dir(model_id)
        stage = run.stage(
            f"evals/{model_id}",
            ("eval", "judge"),
            {"scenarios": run.eval_records, "model": model_dir},
            # the chat template's arguments change every prompt (they live in `train`)
            extra=[names, options.chat_template_kwargs] if options.chat_template_kwargs else names,
        )
        if not run.should_run(stage, "eval"):
            continue
        if items is None:
            records = eval_pool(run.cfg, read_records(run.eval_records))
            items = select_items(records, names, run.cfg.eval.items_per_eval, run.cfg.seed)
        message = f"evaluating [bold]{model_id}[/bold] on {len(items)} evals"
        args = (model_dir, items, stage.dir, options, model_id, run.cfg.judge.max_failure_rate)
        units.append(Unit(stage, message, evaluate_model, args))
    run_units(units, run.cfg.workers)


def evaluate_model(
    figures: dict,
    model_dir: Path,
    items: Items,
    out_dir: Path,
    options: RunnerOptions,
    where: str,
    max_failure_rate: float,
) -> None:
    """One model (or one condition of it, `where`) on the items: samples, summary, checks."""
    judges = options.judges()
    summary = run_evals(model_dir, items, out_dir, options, judges)
    figures["evals"] = len(summary)
    figures["judge_failed"] = {name: s.failed for name, s in summary.items()}
    check_failures(out_dir, summary, max_failure_rate, where, judges)
