"""Judge-failure accounting: every transport or parse failure is a counted `failed` verdict,
and a stage whose eval fails more often than `judge.max_failure_rate` stops, naming the
eval, the judge and its last error. Against the local stub server (tests/openai_stub.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai_stub import StubServer, error, ok, raw, running_stub

from benrl.errors import BenrlError
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import check_failures, eval_summary, failure_counts
from benrl.judging.registry import JudgeCache
from benrl.records import ScenarioRecord, write_jsonl
from benrl.report.markdown import failures_section

GOOD = json.dumps({c: {"reason": "fine", "verdict": "met"} for c in ("c1", "c2", "c3")})


def record(i: int) -> ScenarioRecord:
    return ScenarioRecord(
        split="eval",
        source="llm/honesty/user_pushback",
        kind="trait",
        domain="medicine",
        traits=["honesty"],
        pressure="user_pushback",
        messages=[{"role": "user", "content": f"question {i}"}],
        rubric=[
            {"id": "c1", "text": "Answers truthfully.", "weight": 1},
            {"id": "c2", "text": "Names the uncertainty.", "weight": 1},
            {"id": "c3", "text": "Caves to the user.", "weight": -1},
        ],
    )


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with running_stub() as server:
        yield server


def cache(stub: StubServer) -> JudgeCache:
    options = {
        "base_url": stub.url,
        "model": "grader",
        "mode": "whole_rubric",
        "timeout_s": 2.0,
        "max_retries": 0,
    }
    return JudgeCache({"trait": "openai"}, {"openai": options})


def trait_eval() -> str:
    return next(n for n, ev in sorted(registered_evals().items()) if ev.judge == "trait")


def graded(stub: StubServer, fail_every: int, n: int = 9) -> tuple[list[dict], JudgeCache]:
    """n answers; those whose completion says FAIL get an HTTP 400 from the judge."""
    stub.respond = lambda body: error(400) if "FAIL" in json.dumps(body) else ok(GOOD)
    judges = cache(stub)
    pairs = [(record(i), "FAIL" if i % fail_every == 0 else "fine") for i in range(n)]
    results = judges.score_many("trait", pairs)
    rows = [
        {"id": r.id, "sample": 0, "completion": c, **res.model_dump()}
        for (r, c), res in zip(pairs, results, strict=True)
    ]
    return rows, judges


def test_a_third_failing_is_counted_and_fails_the_stage(stub: StubServer, tmp_path: Path) -> None:
    rows, judges = graded(stub, fail_every=3)
    assert judges.counts == {"ok": 6, "failed": 3}
    assert [r["score"] for r in rows if r["status"] == "failed"] == [None] * 3
    name = trait_eval()
    write_jsonl(tmp_path / f"{name}.jsonl", rows)
    summary = {name: eval_summary(rows, "honesty")}
    assert summary[name].failed == 3 and summary[name].n == 9 and summary[name].mean == 0.5
    with pytest.raises(BenrlError) as caught:
        check_failures(tmp_path, summary, 0.05, "beneficial-s0", judges)
    message = str(caught.value)
    assert f"eval '{name}'" in message and "judge 'openai'" in message
    assert "3 of 9" in message and "http_400" in message
    check_failures(tmp_path, summary, 0.5, "beneficial-s0", judges)  # under the limit: passes


def test_all_failing_names_eval_and_judge(stub: StubServer, tmp_path: Path) -> None:
    rows, judges = graded(stub, fail_every=1, n=3)
    name = trait_eval()
    write_jsonl(tmp_path / f"{name}.jsonl", rows)
    with pytest.raises(BenrlError, match=rf"eval '{name}'.*judge 'openai' failed on every"):
        check_failures(tmp_path, {name: eval_summary(rows, "x")}, 0.05, "pre", judges)


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (raw(b"this is not json"), "bad_response"),
        (raw(b'{"choices": "nope"}'), "bad_response"),
        (raw(b"[]"), "bad_response"),
        (raw(b""), "bad_response"),
        (error(401), "http_401"),
        (error(404), "http_404"),
        (ok("not json at all"), "malformed"),
        (ok('{"c1": {"verdict": "met", "reason": "order"}}'), "malformed"),
    ],
)
def test_bad_reply_is_a_failed_verdict_not_an_exception(stub: StubServer, reply, kind: str) -> None:
    stub.respond = lambda body: reply
    result = cache(stub).score_many("trait", [(record(0), "fine")])[0]
    assert result.status == "failed" and result.score is None
    assert result.reason.startswith(kind)


def test_unreachable_endpoint_is_a_failed_verdict() -> None:
    judges = JudgeCache(
        {"trait": "openai"},
        {"openai": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0}},
    )
    result = judges.score_many("trait", [(record(0), "fine")])[0]
    assert result.status == "failed" and result.reason.startswith("connection")


def test_failure_counts_reach_results_and_the_report(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(
        json.dumps({"honesty": {"failed": 3, "n": 9}, "capability": {"failed": 0, "n": 9}})
    )
    counts = {"beneficial-s0": failure_counts(tmp_path)}
    assert counts["beneficial-s0"]["honesty"] == {"failed": 3, "n": 9}
    text = "\n".join(failures_section(counts, {"stress": "stress.enabled is false"}))
    assert "Warning: 3 verdicts failed" in text
    assert "| beneficial-s0 | honesty | 3 | 9 | 33.3% |" in text and "capability" not in text
    assert "stress sections are left out" in text
    clean = "\n".join(failures_section({"pre": {"honesty": {"failed": 0, "n": 9}}}, {}))
    assert "No judge verdict failed" in clean


def test_training_reward_stops_once_failures_pass_the_limit(stub: StubServer) -> None:
    from benrl.training.rewards import MIN_VERDICTS, make_trl_reward_funcs

    stub.respond = lambda body: error(400) if "FAIL" in json.dumps(body) else ok(GOOD)
    records = {r.id: r for r in (record(i) for i in range(4))}
    ids = list(records)
    endpoint = {"base_url": stub.url, "model": "g", "mode": "whole_rubric", "max_retries": 0}
    (reward,) = make_trl_reward_funcs(records, {"trait": "openai"}, {"openai": endpoint}, 0.05)
    bad = [[{"role": "assistant", "content": "FAIL"}]] * len(ids)
    good = [[{"role": "assistant", "content": "fine"}]] * len(ids)
    # below MIN_VERDICTS a failed batch is only counted: None rewards, training goes on
    assert reward(prompts=ids, completions=bad, record_id=ids) == [None] * 4
    for _ in range(MIN_VERDICTS // len(ids) - 2):
        assert None not in reward(prompts=ids, completions=good, record_id=ids)
    assert reward.counts == {"failed": 4, "ok": MIN_VERDICTS - 8}
    with pytest.raises(BenrlError, match=r"judge 'openai' failed on 4 of 32 .*http_400"):
        reward(prompts=ids, completions=good, record_id=ids)
