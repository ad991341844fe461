"""benrl evals as inspect_ai tasks: same items, same judge, same scores as benrl's runner."""

from __future__ import annotations

import math
import os
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from tiny import organism_tokenizer, tiny_llama

pytest.importorskip("inspect_ai", reason="inspect_ai not installed: pip install -e '.[inspect]'")

from inspect_ai import eval as inspect_eval
from inspect_ai.log import EvalLog
from inspect_ai.model import ModelOutput, ModelUsage, get_model

from benrl.config import ScenariosConfig
from benrl.data.scenarios import build_scenarios
from benrl.errors import BenrlError
from benrl.evaluation.generate import generate, load_model
from benrl.evaluation.inspect_tasks import MAX_TOKENS, benrl_task, judge_name
from benrl.evaluation.runner import eval_summary, select_items
from benrl.organism.judges import score
from benrl.records import ScenarioRecord, read_records

os.environ["HF_HUB_OFFLINE"] = "1"

EVAL_NAMES = ["capability_add", "pushback_stem"]
LIMIT = 8


@pytest.fixture(scope="module")
def records_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scenarios")
    build_scenarios(ScenariosConfig(train_per_cell=1, eval_per_cell=1, tasks_train=1), 0, out)
    return out / "eval.jsonl"


@pytest.fixture(scope="module")
def items(records_path) -> dict[str, list[ScenarioRecord]]:
    return select_items(read_records(records_path), EVAL_NAMES, LIMIT, 0)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random-init Llama with the organism's tokenizer, saved as an HF folder."""
    tokenizer = organism_tokenizer()
    out = tmp_path_factory.mktemp("model")
    tiny_llama(tokenizer).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def scorer_result(log: EvalLog) -> tuple[dict[str, float], dict]:
    """Per sample id: inspect's score value; and the scorer's aggregate (metrics, unscored)."""
    assert log.status == "success", log.error
    values = {s.id: s.scores["benrl_judge"].value for s in log.samples}
    return values, log.results.scores[0]


def same(a: float | None, b: float) -> bool:
    """benrl's None (failed verdict) is inspect's NaN (unscored)."""
    return math.isnan(b) if a is None else a == b


def scripted_answer(record: ScenarioRecord, position: int) -> str:
    """Good, bad, incoherent and over-long (a failed verdict) answers in turn."""
    good = record.answer or record.reference.get("good", "")
    bad = "0 plus 0 is 0." if record.kind == "task" else record.reference.get("bad", "")
    return [good, bad, "zzq blorp", "x" * 20_001][position % 4]


def test_scores_match_benrl_judges_and_failed_is_unscored(records_path, items, tmp_path):
    """Scripted completions through inspect's mock model: every score is benrl's score."""
    answers = {
        tuple((m.role, m.content) for m in rec.messages): scripted_answer(rec, i)
        for recs in items.values()
        for i, rec in enumerate(recs)
    }

    def reply(messages, tools, tool_choice, config) -> ModelOutput:
        # explicit usage: otherwise the mock counts tokens with tiktoken, which downloads
        answer = answers[tuple((m.role, m.text) for m in messages)]
        output = ModelOutput.from_content("mockllm", answer)
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return output

    model = get_model("mockllm/model", custom_outputs=reply)
    # by registry name, as `inspect eval benrl/<eval> -T records=...` resolves them
    tasks = [f"benrl/{name}" for name in EVAL_NAMES]
    task_args = {"records": str(records_path), "limit": LIMIT}
    logs = inspect_eval(
        tasks, model=model, task_args=task_args, log_dir=str(tmp_path), display="none"
    )
    for name, log in zip(EVAL_NAMES, logs, strict=True):
        values, aggregate = scorer_result(log)
        rows = []
        for i, record in enumerate(items[name]):
            completion = scripted_answer(record, i)
            expected = score(record, completion, judge_name(name))
            assert same(expected.score, values[record.id]), (name, record.id, completion[:40])
            rows.append(expected.model_dump())
        summary = eval_summary(rows, "")
        assert 0 < summary.mean < 1  # the scripted answers really differ in score
        assert summary.failed == aggregate.unscored_samples > 0
        assert aggregate.metrics["mean"].value == pytest.approx(summary.mean)


def test_hf_model_gives_benrl_completions_and_scores(model_dir, records_path, items, tmp_path):
    """A local HF folder through inspect's hf provider: greedy text and scores as benrl's."""
    tasks = [benrl_task(name, str(records_path), limit=LIMIT) for name in EVAL_NAMES]
    logs = inspect_eval(
        tasks,
        model=f"hf/{model_dir}",  # absolute path: "hf//..."
        model_args={"do_sample": False, "device": "cpu"},
        log_dir=str(tmp_path),
        display="none",
    )
    model, tokenizer = load_model(model_dir)
    for name, log in zip(EVAL_NAMES, logs, strict=True):
        values, aggregate = scorer_result(log)
        records = items[name]
        ours = generate(model, tokenizer, [r.messages for r in records], MAX_TOKENS)
        theirs = {s.id: s.output.completion.strip() for s in log.samples}
        judged = {s.id: s.scores["benrl_judge"].answer for s in log.samples}
        assert all(o[0] for o in ours)  # the random model does write something
        assert [theirs[r.id] for r in records] == [o[0] for o in ours]
        assert [judged[r.id] for r in records] == [o[0] for o in ours]
        rows = [score(r, theirs[r.id], judge_name(name)).model_dump() for r in records]
        assert [values[r.id] for r in records] == [row["score"] for row in rows]
        assert aggregate.metrics["mean"].value == pytest.approx(eval_summary(rows, "").mean)


def test_task_items_and_judge_follow_the_runner(records_path, items):
    task = benrl_task("pushback_stem", str(records_path), limit=LIMIT, judge="generic")
    assert [s.id for s in task.dataset] == [r.id for r in items["pushback_stem"]]
    assert task.config.temperature == 0.0 and task.config.max_tokens == MAX_TOKENS
    assert judge_name("pushback_stem") == "world" and judge_name("capability_add") == "verifiable"
    assert judge_name("pushback_stem", "generic") == "generic"
    with pytest.raises(BenrlError, match="unknown eval 'nope'"):
        benrl_task("nope", str(records_path))


def test_package_entry_point_names_the_task_module():
    names = {ep.name: ep.value for ep in entry_points(group="inspect_ai")}
    if "benrl" not in names:
        pytest.skip("benrl's inspect_ai entry point is not installed: run pip install -e .")
    assert names["benrl"] == "benrl.evaluation.inspect_tasks"
