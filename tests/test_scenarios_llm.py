"""The LLM scenario writer against a real local HTTP server (tests/openai_stub.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from openai_stub import Reply, StubServer, error, ok, running_stub, slow

from benrl.data.scenarios_llm import NearDuplicates, ScenarioRequest, generate_llm_scenarios
from benrl.errors import BenrlError
from benrl.judging.llm_client import LLMEndpointConfig
from benrl.records import read_records


@pytest.fixture
def openai_stub() -> Iterator[StubServer]:
    with running_stub() as server:
        yield server


def endpoint(stub: StubServer, **overrides: object) -> LLMEndpointConfig:
    options = {
        "base_url": stub.url,
        "model": "writer",
        "timeout_s": 2.0,
        "max_retries": 1,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "concurrency": 4,
    }
    return LLMEndpointConfig(**{**options, **overrides})


def request(variant: int = 0, pressure: str = "user_pushback") -> dict:
    return {
        "trait": "truthfulness",
        "domain": "medicine",
        "pressure": pressure,
        "split": "train",
        "variant": variant,
        "trait_description": "Asserts only what it has good reason to believe.",
    }


SITUATIONS = [
    "my cousin swears that grapefruit juice makes my statin work better so I can halve the dose",
    "the landlord says the mould in the bathroom is harmless because it is black not green",
    "our coach insists that drinking no water during a marathon builds endurance faster",
    "a forum told me antibiotics will clear up my flu in two days if I double them",
]


def scenario(situation: str, rubric_size: int = 3) -> str:
    rubric = [
        {"id": f"c{i}", "text": f"State fact number {i}.", "weight": 1}
        for i in range(1, rubric_size + 1)
    ]
    return json.dumps(
        {
            "messages": [{"role": "user", "content": f"Honestly, {situation}. Right?"}],
            "rubric": rubric,
            "reference": {"truth": "no"},
        }
    )


def by_variant(answers: dict[int, Reply]):
    def respond(body: dict) -> Reply:
        prompt = body["messages"][1]["content"]
        return answers[int(prompt.split("Variant: ", 1)[1].split(" ", 1)[0].rsplit("-", 1)[-1])]

    return respond


def test_valid_answers_become_records(openai_stub: StubServer, tmp_path) -> None:
    openai_stub.respond = by_variant({i: ok(scenario(s)) for i, s in enumerate(SITUATIONS)})
    out = tmp_path / "llm.jsonl"
    report = generate_llm_scenarios([request(i) for i in range(4)], endpoint(openai_stub), out)
    assert report.valid == 4 and not report.invalid and not report.failed
    records = read_records(out)
    assert {r.reference["request"] for r in records} == {
        f"truthfulness/medicine/user_pushback/train/{i}" for i in range(4)
    }
    first = records[0]
    assert first.kind == "trait" and first.split == "train"
    assert first.source == "llm/truthfulness/user_pushback"
    assert first.traits == ["truthfulness"] and len(first.rubric) == 3
    assert report.usage["completions"] == 4


def test_invalid_json_is_retried_then_reported(openai_stub: StubServer, tmp_path) -> None:
    openai_stub.respond = lambda body: ok("Here is a scenario: a user asks about statins.")
    out = tmp_path / "llm.jsonl"
    report = generate_llm_scenarios([request()], endpoint(openai_stub), out)
    assert report.valid == 0 and len(report.invalid) == 1
    assert "not valid JSON" in report.invalid[0]["reason"]
    assert openai_stub.count == 2  # one retry with the problem stated
    assert "not valid JSON" in openai_stub.received[1].body["messages"][-1]["content"]
    assert not out.exists() or out.read_text() == ""


def test_missing_rubric_is_invalid_then_fixed_by_retry(openai_stub: StubServer, tmp_path) -> None:
    no_rubric = json.dumps({"messages": [{"role": "user", "content": "Is it safe?"}]})
    too_small = scenario(SITUATIONS[0], rubric_size=2)
    openai_stub.script(ok(no_rubric), ok(too_small), ok(no_rubric), ok(scenario(SITUATIONS[1])))
    out = tmp_path / "llm.jsonl"
    cfg = endpoint(openai_stub, concurrency=1)
    report = generate_llm_scenarios([request(0), request(1)], cfg, out)
    assert report.valid == 1 and len(report.invalid) == 1
    assert "rubric" in report.invalid[0]["reason"]
    assert len(read_records(out)) == 1


def test_timeout_and_5xx_are_failed_requests(openai_stub: StubServer, tmp_path) -> None:
    openai_stub.respond = by_variant({0: slow(30.0), 1: error(502), 2: ok(scenario(SITUATIONS[2]))})
    out = tmp_path / "llm.jsonl"
    cfg = endpoint(openai_stub, timeout_s=0.3)
    report = generate_llm_scenarios([request(i) for i in range(3)], cfg, out)
    assert report.valid == 1
    reasons = sorted(f["reason"].split(":")[0] for f in report.failed)
    assert reasons == ["http_502", "timeout"]


def test_5xx_then_success_is_kept(openai_stub: StubServer, tmp_path) -> None:
    openai_stub.script(error(500), ok(scenario(SITUATIONS[0])))
    report = generate_llm_scenarios([request()], endpoint(openai_stub), tmp_path / "o.jsonl")
    assert report.valid == 1 and openai_stub.count == 2


def test_near_duplicates_are_removed(openai_stub: StubServer, tmp_path) -> None:
    same = SITUATIONS[0]
    openai_stub.respond = by_variant(
        {
            0: ok(scenario(same)),
            1: ok(scenario(same + " today")),  # near-duplicate
            2: ok(scenario(SITUATIONS[1])),
        }
    )
    cfg = endpoint(openai_stub, concurrency=1)
    report = generate_llm_scenarios([request(i) for i in range(3)], cfg, tmp_path / "o.jsonl")
    assert report.valid == 2 and report.duplicates == 1


def test_rerun_skips_done_requests_and_keeps_partial_results(
    openai_stub: StubServer, tmp_path
) -> None:
    out = tmp_path / "llm.jsonl"
    openai_stub.respond = by_variant({0: ok(scenario(SITUATIONS[0])), 1: error(500)})
    first = generate_llm_scenarios([request(0), request(1)], endpoint(openai_stub), out)
    assert first.valid == 1 and len(first.failed) == 1
    with out.open("a") as f:
        f.write('{"id": "cut-short-by-a-ki')  # a kill in the middle of a line
    openai_stub.respond = by_variant({1: ok(scenario(SITUATIONS[1]))})
    before = openai_stub.count
    second = generate_llm_scenarios([request(0), request(1)], endpoint(openai_stub), out)
    assert second.skipped_existing == 1 and second.valid == 1
    assert openai_stub.count == before + 1  # only the failed request was asked again
    assert len(read_records(out)) == 2


def test_cache_makes_a_rerun_free(openai_stub: StubServer, tmp_path) -> None:
    openai_stub.respond = by_variant({0: ok(scenario(SITUATIONS[0]))})
    cfg = endpoint(openai_stub, cache_dir=tmp_path / "cache")
    generate_llm_scenarios([request(0)], cfg, tmp_path / "a.jsonl")
    report = generate_llm_scenarios([request(0)], cfg, tmp_path / "b.jsonl")
    assert report.valid == 1 and report.usage["cache_hits"] == 1
    assert openai_stub.count == 1
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_bad_request_names_the_field(tmp_path) -> None:
    cfg = LLMEndpointConfig(model="m")
    with pytest.raises(BenrlError, match="request 0: field 'split'"):
        generate_llm_scenarios([{**request(), "split": "dev"}], cfg, tmp_path / "o.jsonl")


def test_near_duplicate_filter() -> None:
    dedupe = NearDuplicates(0.8)
    dedupe.add("the quick brown fox jumps over the lazy dog near the river bank")
    assert dedupe.seen("The quick brown fox jumps over the lazy dog near the river bank!")
    assert not dedupe.seen("a completely different request about tax forms and deadlines")
    assert ScenarioRequest(**request(3)).key == "truthfulness/medicine/user_pushback/train/3"
