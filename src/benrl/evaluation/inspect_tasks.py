"""Every benrl eval as an inspect_ai task: `inspect eval benrl/<eval> --model ... -T records=...`.

inspect_ai brings model providers (local HF folders, vLLM, every API), logs and a
viewer; benrl brings the items and the judges. A task here is the same eval the
runner (`evals.run_evals`) scores: the same fixed subset of eval-split records
(`evals.select_items`), greedy decoding with the runner's token budget, and the same
judge on the stripped completion, so a score in inspect's log is the score benrl
would give that text.

A judge's failed verdict (status `failed`, score None) becomes inspect's unscored
sentinel (`Score.unscored`, NaN): metrics skip it and the log counts it, never a 0.
An `incoherent` answer is a real behaviour of the model and scores 0, as in benrl.

The package's `inspect_ai` entry point imports this module, which registers one
`@task` per registered eval (`evaluation.registry`) under the name `benrl/<eval>`,
the public datasets included: `inspect eval benrl/xstest -T root=DIR` (or
$BENRL_REALDATA) reads the set from the folder `benrl data fetch` wrote.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

import anyio
from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
)
from inspect_ai.scorer import Score, Scorer, Target, mean, scorer, stderr
from inspect_ai.solver import TaskState, generate

from benrl.config import EvalConfig, JudgeConfig, ScenariosConfig
from benrl.data.realdata import load_realdata
from benrl.data.scenarios import build_scenarios
from benrl.errors import BenrlError
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import select_items
from benrl.judging.registry import get_judge
from benrl.records import Message, ScenarioRecord, read_records

MAX_TOKENS = EvalConfig().max_new_tokens  # the runner's default answer budget
DEFAULT_SEED = 0
REALDATA_ENV = "BENRL_REALDATA"  # where public datasets are read from when -T root is not given

_MESSAGE_TYPES: dict[str, type[ChatMessage]] = {
    "system": ChatMessageSystem,
    "user": ChatMessageUser,
    "assistant": ChatMessageAssistant,
}


@functools.cache
def _default_scenarios() -> tempfile.TemporaryDirectory:
    # cached: the folder is built once per process and removed when the process ends
    folder = tempfile.TemporaryDirectory(prefix="benrl-inspect-")
    build_scenarios(ScenariosConfig(), DEFAULT_SEED, Path(folder.name))
    return folder


def default_records() -> Path:
    """The eval split of the default scenarios (seed 0), built in a temp folder."""
    return Path(_default_scenarios().name) / "eval.jsonl"


def judge_name(eval_name: str, judge: str | None = None) -> str:
    """The judge of an eval: `judge` if given, else the run config's default for its kind."""
    if judge:
        return judge
    kind = registered_evals()[eval_name].judge
    # a kind (trait | task) maps through the config's defaults; a public set names its own
    return getattr(JudgeConfig(), kind) if kind in ("trait", "task") else kind


def realdata_items(name: str, root: str | None) -> list[ScenarioRecord]:
    """The items of the public dataset `name` from `root` (default: $BENRL_REALDATA)."""
    folder = root or os.environ.get(REALDATA_ENV)
    if not folder:
        raise BenrlError(
            f"eval '{name}' is a public dataset: pass -T root=DIR or set {REALDATA_ENV} "
            "(a folder `benrl data fetch` wrote)"
        )
    return load_realdata(name, Path(folder)).records


def chat_messages(messages: list[Message]) -> list[ChatMessage]:
    return [_MESSAGE_TYPES[m.role](content=m.content) for m in messages]


def record_sample(record: ScenarioRecord) -> Sample:
    return Sample(
        input=chat_messages(record.messages),
        target=record.answer or "",
        id=record.id,
        metadata=record.model_dump(mode="json"),
    )


@scorer(metrics=[mean(), stderr()])
def benrl_judge(judge: str, options: dict[str, Any] | None = None) -> Scorer:
    """Grade the completion with a benrl judge; a failed verdict is unscored, not 0."""
    grader = get_judge(judge, **(options or {}))

    async def score(state: TaskState, target: Target) -> Score:
        record = ScenarioRecord.model_validate(state.metadata)
        completion = state.output.completion.strip()  # the runner grades stripped text
        # Judges are synchronous (an API judge waits on the network): keep the loop free.
        result = await anyio.to_thread.run_sync(grader.score, record, completion)
        metadata = {
            "status": result.status,
            "response_family": result.response_family,
            "refusal": result.refusal,
            "verdicts": result.verdicts,
            "judge": judge,
        }
        if result.score is None:
            return Score.unscored(
                reason=f"judge_{result.status}",
                answer=completion,
                explanation=result.reason,
                metadata=metadata,
            )
        return Score(
            value=result.score, answer=completion, explanation=result.reason, metadata=metadata
        )

    return score


def benrl_task(
    name: str,
    records_path: str | None = None,
    limit: int = 100,
    judge: str | None = None,
    seed: int = DEFAULT_SEED,
    max_tokens: int = MAX_TOKENS,
    judge_options: dict[str, Any] | None = None,
    root: str | None = None,
) -> Task:
    """The inspect task of eval `name` on the eval-split records of `records_path`.

    Items are `select_items(records, [name], limit, seed)`, exactly the runner's subset;
    without `records_path` the default scenarios (seed 0) are built in a temp folder. A
    public dataset (family realdata) reads its items from `root`, else $BENRL_REALDATA.
    """
    if name not in registered_evals():
        raise BenrlError(f"unknown eval '{name}'; known: {', '.join(sorted(registered_evals()))}")
    if registered_evals()[name].family == "realdata":
        records = realdata_items(name, root)
    else:
        records = read_records(Path(records_path) if records_path else default_records())
    items = select_items(records, [name], limit, seed)[name]
    return Task(
        dataset=MemoryDataset([record_sample(r) for r in items], name=name),
        solver=generate(),
        scorer=benrl_judge(judge_name(name, judge), judge_options),
        # Greedy, as the runner; HF models also need `-M do_sample=false` (see docs/inspect.md).
        config=GenerateConfig(temperature=0.0, max_tokens=max_tokens, seed=seed),
        metadata={"benrl_eval": name, "category": registered_evals()[name].category},
    )


def _register(name: str) -> None:
    """Register `benrl/<name>` with inspect's task registry."""

    def eval_task(
        records: str | None = None,
        limit: int = 100,
        judge: str | None = None,
        seed: int = DEFAULT_SEED,
        max_tokens: int = MAX_TOKENS,
        judge_options: dict[str, Any] | None = None,
        root: str | None = None,
    ) -> Task:
        return benrl_task(name, records, limit, judge, seed, max_tokens, judge_options, root)

    eval_task.__name__ = eval_task.__qualname__ = name
    eval_task.__doc__ = registered_evals()[name].description or f"benrl eval {name}"
    task(name=name)(eval_task)


for _name in registered_evals():
    _register(_name)
