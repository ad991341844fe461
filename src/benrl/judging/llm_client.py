"""One client for any OpenAI-compatible chat-completions endpoint (vLLM, OpenAI, others).

The `openai` judge and the `llm` scenario backend both talk to a model through this file,
so retries, concurrency, caching and token accounting behave the same everywhere.

- Transport: `openai.AsyncOpenAI`, built with `max_retries=0`. The retry loop is ours,
  because openai's backoff constants (0.5 s doubling to 8 s) are not configurable, its
  retries are invisible to token accounting, and its timeout bounds each read, not the
  whole attempt. Here a request is retried on timeouts, connection errors, 429 and 5xx
  with exponential backoff and jitter (a 429's Retry-After is honoured, capped); other
  HTTP errors (400, 401, 404...) fail at once.
- Bounded time: each attempt is cut at `timeout_s` (asyncio timeout around the call),
  so once a request holds a concurrency slot it ends, as a `Completion` or a `Failure`,
  within (max_retries + 1) * timeout_s plus the backoff sleeps. Nothing hangs.
- Concurrency: an `asyncio.Semaphore(concurrency)` per session.
- Cache: with `cache_dir` set, each answered request is stored under the SHA-256 of
  (model, messages, temperature, max_tokens); re-running the same requests costs
  nothing. Failures are never cached. Every answer is cached, including ones a caller
  later finds unusable, so a re-run reproduces the same outcome; delete the cache
  folder to ask again.
- Secrets: the key is read from the environment variable named by `api_key_env` and
  only ever sent as the Bearer header; it is scrubbed from failure messages and never
  logged. Local servers need no key (`api_key_env: ""`).

Use `LLMClient.complete_many` from synchronous code, or `LLMClient.session()` from async
code that wants each result as it arrives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import random
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import certifi
import openai
from pydantic import BaseModel, ConfigDict, Field

from benrl.errors import BenrlError

Messages = list[dict[str, str]]
T = TypeVar("T")

REPAIR = (
    "Your reply could not be used: {problem}. Reply again with only the JSON object in the "
    "required shape."
)


class LLMEndpointConfig(BaseModel):
    """Where and how to reach an OpenAI-compatible chat-completions endpoint."""

    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(
        "http://127.0.0.1:8000/v1",
        pattern=r"^https?://\S+$",
        description="endpoint root, ending in /v1 (vLLM's default)",
    )
    model: str = Field(description="model name as the server knows it")
    api_key_env: str = Field(
        "", description="name of the environment variable holding the API key; '' for none"
    )
    timeout_s: float = Field(60.0, gt=0, description="hard limit on one attempt, in seconds")
    max_retries: int = Field(3, ge=0, description="retries after a timeout, 429 or 5xx")
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles each retry")
    max_backoff_s: float = Field(30.0, ge=0, description="cap on one retry delay")
    concurrency: int = Field(8, ge=1, description="requests in flight at once")
    temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature")
    max_tokens: int = Field(1024, ge=1, description="cap on tokens in one answer")
    cache_dir: Path | None = Field(None, description="on-disk answer cache; None disables it")


@dataclass(frozen=True)
class Completion:
    """An answer from the endpoint (or from the cache)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


@dataclass(frozen=True)
class Failure:
    """A request that ended without an answer. `kind` is a short machine-readable tag:
    timeout, connection, rate_limited, http_<status>, bad_response, malformed."""

    kind: str
    reason: str
    attempts: int = 1


def cache_key(cfg: LLMEndpointConfig, messages: Messages) -> str:
    """The content hash an answer is cached under."""
    payload = {
        "model": cfg.model,
        "messages": messages,
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class _Retryable(Exception):
    """An attempt failed in a way worth retrying; carries the would-be Failure."""

    def __init__(self, kind: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.kind, self.reason, self.retry_after = kind, reason, retry_after


class _BadResponse(Exception):
    """The server answered, but not in the chat-completions shape; not worth a retry."""


class LLMClient:
    """Chat completions with retries, a concurrency limit, a disk cache and token counts."""

    def __init__(self, cfg: LLMEndpointConfig) -> None:
        self.cfg = cfg
        self._key = self._read_key()
        self._stats: Counter[str] = Counter()
        # built once: loading the CA bundle costs ~45 ms, which every session would pay
        self._tls = ssl.create_default_context(cafile=certifi.where())

    def _read_key(self) -> str:
        if not self.cfg.api_key_env:
            return "EMPTY"  # local servers ignore it; the openai package needs a value
        key = os.environ.get(self.cfg.api_key_env, "")
        if not key:
            raise BenrlError(
                f"LLM endpoint {self.cfg.base_url}: environment variable "
                f"'{self.cfg.api_key_env}' (api_key_env) is not set"
            )
        return key

    def usage(self) -> dict[str, int]:
        """Token and call accounting since this client was built.

        calls: HTTP attempts made; retries: attempts after the first; completions:
        requests answered (cache hits included); failures: requests that ended without
        an answer; prompt/completion tokens: as reported by the server (cache hits add 0).
        """
        names = ("calls", "retries", "cache_hits", "completions", "failures")
        return {k: self._stats[k] for k in (*names, "prompt_tokens", "completion_tokens")}

    def complete_many(self, batch: list[Messages]) -> list[Completion | Failure]:
        """Answer every message list, in order; each entry is a Completion or a Failure."""
        return run_sync(self.acomplete_many(batch))

    async def acomplete_many(self, batch: list[Messages]) -> list[Completion | Failure]:
        async with self.session() as session:
            return await asyncio.gather(*(session.complete(m) for m in batch))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[LLMSession]:
        """An open connection pool with its own concurrency limit (one per event loop)."""
        client = openai.AsyncOpenAI(
            base_url=self.cfg.base_url,
            api_key=self._key,
            timeout=self.cfg.timeout_s,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(verify=self._tls),
        )
        async with client:
            yield LLMSession(self, client, asyncio.Semaphore(self.cfg.concurrency))

    # --- cache ---------------------------------------------------------------------------

    def _cache_path(self, messages: Messages) -> Path | None:
        if self.cfg.cache_dir is None:
            return None
        key = cache_key(self.cfg, messages)
        return self.cfg.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, messages: Messages) -> Completion | None:
        path = self._cache_path(messages)
        if path is None or not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return Completion(
                text=data["text"], finish_reason=data.get("finish_reason"), cached=True
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged entry is a miss; the fresh answer overwrites it

    def _cache_put(self, messages: Messages, done: Completion) -> None:
        path = self._cache_path(messages)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # unique temp name then rename: concurrent writers never leave half a file
        tmp = path.with_suffix(f".{os.getpid()}.{random.getrandbits(32):08x}.tmp")
        tmp.write_text(json.dumps({"text": done.text, "finish_reason": done.finish_reason}))
        tmp.replace(path)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self.cfg.api_key_env else text


class LLMSession:
    """Requests sharing one AsyncOpenAI client and one semaphore."""

    def __init__(self, owner: LLMClient, client: openai.AsyncOpenAI, gate: asyncio.Semaphore):
        self._owner, self._client, self._gate = owner, client, gate

    async def ask_parsed(
        self, messages: Messages, parse: Callable[[str], T], retries: int = 1
    ) -> T | Failure:
        """Ask, and parse the answer strictly; an answer `parse` rejects (ValueError) is
        asked again, up to `retries` times, showing the model its reply and the problem.
        Still unusable: Failure("malformed"). Transport failures come back as they are."""
        for _ in range(retries + 1):
            answer = await self.complete(messages)
            if isinstance(answer, Failure):
                return answer
            try:
                return parse(answer.text)
            except ValueError as err:
                problem = str(err)
            messages = [
                *messages,
                {"role": "assistant", "content": answer.text},
                {"role": "user", "content": REPAIR.format(problem=problem)},
            ]
        reason = f"answer still unusable after {retries} retries: {problem}"
        return Failure("malformed", reason, retries + 1)

    async def complete(self, messages: Messages) -> Completion | Failure:
        owner = self._owner
        if hit := owner._cache_get(messages):
            owner._stats.update(cache_hits=1, completions=1)
            return hit
        async with self._gate:
            result = await self._with_retries(messages)
        if isinstance(result, Completion):
            owner._stats.update(
                completions=1,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
            )
            owner._cache_put(messages, result)
        else:
            owner._stats.update(failures=1)
        return result

    async def _with_retries(self, messages: Messages) -> Completion | Failure:
        cfg = self._owner.cfg
        for attempt in range(cfg.max_retries + 1):
            self._owner._stats.update(calls=1, retries=int(attempt > 0))
            try:
                return await self._attempt(messages)
            except _Retryable as err:
                last = err
                if attempt == cfg.max_retries:
                    break
                delay = min(cfg.max_backoff_s, cfg.backoff_s * 2**attempt)
                delay *= random.uniform(0.5, 1.0)  # jitter: retries do not arrive in waves
                if err.retry_after is not None:
                    delay = max(delay, min(err.retry_after, cfg.max_backoff_s))
                await asyncio.sleep(delay)
            except openai.APIStatusError as err:
                reason = f"{cfg.base_url} answered HTTP {err.status_code}: {err.message}"
                return Failure(f"http_{err.status_code}", self._owner._scrub(reason), attempt + 1)
            except _BadResponse as err:
                return Failure("bad_response", str(err), attempt + 1)
        reason = f"{last.reason} after {cfg.max_retries + 1} attempts"
        return Failure(last.kind, self._owner._scrub(reason), cfg.max_retries + 1)

    async def _attempt(self, messages: Messages) -> Completion:
        cfg = self._owner.cfg
        try:
            async with asyncio.timeout(cfg.timeout_s):
                response = await self._client.chat.completions.create(
                    model=cfg.model,
                    messages=messages,
                    temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens,
                )
        except (TimeoutError, openai.APITimeoutError) as err:
            raise _Retryable(
                "timeout", f"no answer from {cfg.base_url} within {cfg.timeout_s:g} s"
            ) from err
        except openai.APIConnectionError as err:
            detail = f" ({err.__cause__})" if err.__cause__ else ""
            raise _Retryable("connection", f"cannot reach {cfg.base_url}{detail}") from err
        except openai.RateLimitError as err:
            raise _Retryable(
                "rate_limited", f"{cfg.base_url} answered HTTP 429", _retry_after(err.response)
            ) from err
        except openai.APIStatusError as err:
            if err.status_code >= 500:
                raise _Retryable(
                    f"http_{err.status_code}", f"{cfg.base_url} answered HTTP {err.status_code}"
                ) from err
            raise
        except (openai.OpenAIError, ValueError, TypeError) as err:
            # e.g. a 200 whose body is not JSON (JSONDecodeError): the server spoke, wrongly
            raise _BadResponse(
                f"{cfg.base_url} answered with a body that is not a chat completion "
                f"({type(err).__name__}: {str(err)[:120]})"
            ) from err
        return _completion(response, cfg.base_url)


def parse_json_object(text: str) -> dict:
    """The one JSON object a model was asked for; a surrounding ``` fence is tolerated."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rstrip().removesuffix("```")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg})") from e
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _retry_after(response: Any) -> float | None:
    try:
        return float(response.headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None


def _completion(response: Any, base_url: str) -> Completion:
    try:
        choice = response.choices[0]
        text = choice.message.content
    except (AttributeError, IndexError, TypeError):
        text = None
    if text is None:
        # not retried: the server spoke, but not the chat-completions shape we need
        raise _BadResponse(f"{base_url} answered without message content")
    usage = getattr(response, "usage", None)
    return Completion(
        text=text,
        finish_reason=choice.finish_reason,
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
    )


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when an event loop already runs (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
