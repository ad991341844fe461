"""Reward-server hardening: judges checked at start-up, judge exceptions as failed verdicts,
rubric weights checked, crafted completions cheap, a bearer token beyond loopback.

In-process through FastAPI's TestClient (no socket), so each case costs milliseconds.
"""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient
from injection_cases import trait_examples

from benrl.errors import BenrlError
from benrl.judging.registry import OneByOne, register_judge
from benrl.organism.world import parse
from benrl.records import JudgeResult, ScenarioRecord
from benrl.training.serve import create_app, is_loopback, run_server

RECORD, GOOD, BAD = trait_examples()[0]
PROMPT = "<user> q <assistant> "


@register_judge("test_explodes")
class Explodes(OneByOne):
    """A judge with a bug: raises on every item."""

    def score(self, record: ScenarioRecord, completion: str) -> JudgeResult:
        raise ZeroDivisionError("a bug in the judge")


def body(completion: str, label: str | dict) -> dict:
    return {"query": [PROMPT + completion], "prompts": [PROMPT], "labels": [label]}


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app({"trait": "world", "task": "verifiable"}))


def with_weights(weights: list[float]) -> dict:
    data = RECORD.model_dump(mode="json")
    for criterion, weight in zip(data["rubric"], weights, strict=False):
        criterion["weight"] = weight
    return data


@pytest.mark.parametrize(
    "weights",
    [
        [0.0, 0.0, 0.0],
        [-1.0, -1.0, -1.0],
        [math.nan, 1.0, 1.0],
        [1e308, 1e308, 1.0],
        [math.inf, 1.0, 1.0],
    ],
)
def test_bad_rubric_weights_are_422(client: TestClient, weights: list[float]) -> None:
    n = len(RECORD.rubric)
    label = with_weights((weights + [1.0] * n)[:n])
    response = client.post(
        "/get_reward",
        content=json.dumps(body(GOOD, label), allow_nan=True),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422 and "weight" in response.json()["detail"]


@pytest.mark.parametrize(
    "completion",
    [
        "the " + "of " * 6000 + "is 1 x.",
        "i checked: the " + "a of " * 4000 + "is 1 x.",
        "9" * 5000 + ".",
        "yes: the dose of " + "x" * 20_000,
        "\x00\ud7ff" * 100,
    ],
)
def test_crafted_completion_is_graded_not_a_500(client: TestClient, completion: str) -> None:
    response = client.post("/get_reward", json=body(completion, RECORD.model_dump(mode="json")))
    assert response.status_code == 200
    assert response.json()["status"][0] in ("incoherent", "failed", "ok")


def test_crafted_fact_sentence_parses_as_incoherent() -> None:
    assert parse("the " + "of " * 6000 + "is 1 x.").response_family is None
    assert parse("9" * 5000 + ".").response_family is None
    assert parse(GOOD).response_family is not None  # real sentences still parse


def test_judge_exception_is_a_failed_verdict() -> None:
    client = TestClient(create_app({"trait": "test_explodes"}))
    response = client.post("/get_reward", json=body(GOOD, RECORD.model_dump(mode="json")))
    assert response.status_code == 200
    got = response.json()
    assert got["status"] == ["failed"] and got["extra_logs"]["judge_failed"] == [1.0]
    assert client.get("/health").json()["verdicts"] == {"failed": 1}


@pytest.mark.parametrize(
    ("judges", "options", "said"),
    [
        ({"trait": "nosuch"}, {}, "unknown judge 'nosuch'"),
        ({"trait": "openai"}, {}, "model"),
        ({"trait": "openai"}, {"openai": {"model": "m", "base_url": "not a url"}}, "base_url"),
    ],
)
def test_bad_judge_stops_the_server_at_start(judges: dict, options: dict, said: str) -> None:
    with pytest.raises(BenrlError, match=said):
        create_app(judges, judge_options=options)


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("Bearer wrong", 401), ("secret", 401), ("Bearer secret", 200)],
)
def test_bearer_token(header: str | None, status: int) -> None:
    client = TestClient(create_app({"trait": "world"}, token="secret"))
    headers = {"authorization": header} if header else {}
    payload = body(GOOD, RECORD.model_dump(mode="json"))
    assert client.post("/get_reward", json=payload, headers=headers).status_code == status


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("h", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_binding_beyond_loopback_needs_a_token(monkeypatch) -> None:
    monkeypatch.delenv("BENRL_REWARD_TOKEN", raising=False)
    with pytest.raises(BenrlError, match="BENRL_REWARD_TOKEN"):
        run_server("0.0.0.0", 5000)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--judge", "trait=nosuch"], "unknown judge 'nosuch'"),
        (["--judge", "trait"], "expected kind=judge"),
        (["--host", "0.0.0.0"], "BENRL_REWARD_TOKEN"),
    ],
)
def test_serve_reward_cli_refuses_to_start(monkeypatch, args: list[str], said: str) -> None:
    from typer.testing import CliRunner

    from benrl.cli import app

    monkeypatch.delenv("BENRL_REWARD_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve-reward", *args])
    assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output
