"""The OpenAI-compatible client against a real local HTTP server (tests/openai_stub.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import pytest
from openai_stub import StubServer, error, ok, running_stub, slow

from benrl.errors import BenrlError
from benrl.judging.llm_client import Completion, Failure, LLMClient, LLMEndpointConfig


@pytest.fixture
def openai_stub() -> Iterator[StubServer]:
    with running_stub() as server:
        yield server


HELLO = [{"role": "user", "content": "hello"}]


def config(stub_url: str, **overrides: object) -> LLMEndpointConfig:
    options = {
        "base_url": stub_url,
        "model": "stub-model",
        "timeout_s": 2.0,
        "max_retries": 2,
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
    }
    return LLMEndpointConfig(**{**options, **overrides})


def test_answer_and_token_accounting(openai_stub: StubServer) -> None:
    openai_stub.script(ok("two words"))
    client = LLMClient(config(openai_stub.url))
    [result] = client.complete_many([HELLO])
    assert isinstance(result, Completion)
    assert result.text == "two words"
    usage = client.usage()
    assert usage["calls"] == 1 and usage["completions"] == 1 and usage["failures"] == 0
    assert usage["prompt_tokens"] == 1 and usage["completion_tokens"] == 2
    assert openai_stub.received[0].body["model"] == "stub-model"


def test_500_then_success_is_retried(openai_stub: StubServer) -> None:
    openai_stub.script(error(500), error(503), ok("fine"))
    client = LLMClient(config(openai_stub.url))
    [result] = client.complete_many([HELLO])
    assert isinstance(result, Completion) and result.text == "fine"
    assert openai_stub.count == 3
    assert client.usage()["retries"] == 2


def test_429_is_retried_honouring_retry_after(openai_stub: StubServer) -> None:
    openai_stub.script(error(429, retry_after=0.01), ok("fine"))
    client = LLMClient(config(openai_stub.url))
    [result] = client.complete_many([HELLO])
    assert isinstance(result, Completion) and result.text == "fine"
    assert openai_stub.count == 2


def test_persistent_500_fails_after_all_attempts(openai_stub: StubServer) -> None:
    openai_stub.respond = lambda body: error(500)
    client = LLMClient(config(openai_stub.url, max_retries=2))
    [result] = client.complete_many([HELLO])
    assert isinstance(result, Failure)
    assert result.kind == "http_500" and result.attempts == 3
    assert openai_stub.url in result.reason
    assert openai_stub.count == 3
    assert client.usage()["failures"] == 1


def test_400_is_not_retried(openai_stub: StubServer) -> None:
    openai_stub.script(error(400))
    [result] = LLMClient(config(openai_stub.url)).complete_many([HELLO])
    assert isinstance(result, Failure) and result.kind == "http_400"
    assert openai_stub.count == 1


def test_slow_answer_times_out_without_hanging(openai_stub: StubServer) -> None:
    openai_stub.respond = lambda body: slow(30.0, "late")
    client = LLMClient(config(openai_stub.url, timeout_s=0.3, max_retries=1))
    [result] = client.complete_many([HELLO])
    assert isinstance(result, Failure) and result.kind == "timeout"
    assert result.attempts == 2 and openai_stub.count == 2


def test_unreachable_server_names_the_url() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    [result] = LLMClient(config(url, max_retries=1)).complete_many([HELLO])
    assert isinstance(result, Failure) and result.kind == "connection"
    assert url in result.reason


def test_cache_hit_costs_no_request(openai_stub: StubServer, tmp_path) -> None:
    openai_stub.respond = lambda body: ok("cached answer")
    cfg = config(openai_stub.url, cache_dir=tmp_path / "cache")
    first = LLMClient(cfg).complete_many([HELLO])
    assert openai_stub.count == 1
    again = LLMClient(cfg)
    second = again.complete_many([HELLO])
    assert openai_stub.count == 1
    assert second[0].text == first[0].text == "cached answer" and second[0].cached
    assert again.usage()["cache_hits"] == 1 and again.usage()["calls"] == 0
    # a different parameter is a different request
    LLMClient(config(openai_stub.url, cache_dir=tmp_path / "cache", max_tokens=7)).complete_many(
        [HELLO]
    )
    assert openai_stub.count == 2


def test_failures_are_not_cached(openai_stub: StubServer, tmp_path) -> None:
    openai_stub.script(error(400), ok("now fine"))
    cfg = config(openai_stub.url, cache_dir=tmp_path)
    assert isinstance(LLMClient(cfg).complete_many([HELLO])[0], Failure)
    assert LLMClient(cfg).complete_many([HELLO])[0].text == "now fine"


def test_results_keep_request_order_under_concurrency(openai_stub: StubServer) -> None:
    openai_stub.respond = lambda body: ok(body["messages"][0]["content"].upper())
    batch = [[{"role": "user", "content": f"m{i}"}] for i in range(20)]
    results = LLMClient(config(openai_stub.url, concurrency=4)).complete_many(batch)
    assert [r.text for r in results] == [f"M{i}" for i in range(20)]


def test_key_is_sent_as_bearer_and_never_logged(
    openai_stub: StubServer, monkeypatch, caplog, capsys
) -> None:
    secret = "sk-test-secret-4242"
    monkeypatch.setenv("BENRL_TEST_KEY", secret)
    openai_stub.script(ok("fine"), error(401))
    cfg = config(openai_stub.url, api_key_env="BENRL_TEST_KEY")
    with caplog.at_level(logging.DEBUG):
        client = LLMClient(cfg)
        results = client.complete_many([HELLO, [{"role": "user", "content": "again"}]])
    assert all(r.headers["authorization"] == f"Bearer {secret}" for r in openai_stub.received)
    shown = caplog.text + str(capsys.readouterr()) + repr(cfg) + repr(results)
    shown += str(client.usage()) + repr(client.__dict__.get("cfg"))
    assert secret not in shown


def test_missing_key_variable_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("BENRL_ABSENT_KEY", raising=False)
    with pytest.raises(BenrlError, match="BENRL_ABSENT_KEY"):
        LLMClient(config("http://127.0.0.1:9/v1", api_key_env="BENRL_ABSENT_KEY"))


def test_sync_wrapper_works_inside_a_running_event_loop(openai_stub: StubServer) -> None:
    openai_stub.respond = lambda body: ok("fine")
    client = LLMClient(config(openai_stub.url))

    async def caller() -> list:
        return client.complete_many([HELLO])  # e.g. a notebook cell or an async trainer

    [result] = asyncio.run(caller())
    assert isinstance(result, Completion) and result.text == "fine"
