"""`benrl serve-reward`: the judge as an HTTP reward server speaking OpenRLHF's remote protocol.

OpenRLHF (`--reward.remote_url http://HOST:PORT/get_reward`) POSTs
`{"query": [...], "prompts": [...], "labels": [...]}` and reads back
`{"rewards": [...], "scores": [...], "extra_logs": {...}}`, one value per query. A query is
the prompt followed by the response; a label is a record's JSON, or the id of a record
the server was started with (smaller requests). Grading goes through `judging.registry.JudgeCache`,
the same path as the in-process faces.

Failures, so no client mistakes one for a low score:
- a failed verdict: reward `rewards.FAILED_REWARD` (OpenRLHF needs a number), with the
  marker `status[i] == "failed"` and `extra_logs["judge_failed"][i] == 1.0`;
- a body over `max_body_bytes`: 413; not JSON (or not UTF-8): 400; wrong shape, unequal
  lengths, a label that is no record or an unknown record id: 422. Each has a one-line
  `detail` naming what is wrong; the server keeps serving.
GET /health reports the judges, the records known and the verdicts served so far.

Hardening: the judges are built at start-up (an unknown judge or bad options stop the
server before it says healthy); a judge that raises on one item gives that item a
`failed` verdict (reason `judge_error: ...`), never a 500; a rubric must have finite
weights with a positive, finite total (else 422); with a token (`BENRL_REWARD_TOKEN`)
POST /get_reward needs `Authorization: Bearer <token>` (401 otherwise), and binding to a
non-loopback address without one is refused.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import os
from collections import Counter
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool

from benrl.errors import BenrlError
from benrl.judging.registry import JudgeCache
from benrl.records import JudgeResult, ScenarioRecord
from benrl.training.rewards import grade_openrlhf, openrlhf_payload, parse_record

MAX_BODY_BYTES = 8 * 1024 * 1024
TOKEN_ENV = "BENRL_REWARD_TOKEN"  # the bearer token, read from the environment only


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward request; unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore")
    query: list[str]
    prompts: list[str]
    labels: list[str | dict]


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    too_large = HTTPException(413, f"request body over {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_request(body: bytes) -> RewardRequest:
    try:
        return RewardRequest.model_validate_json(body)
    except ValidationError as e:
        first = e.errors()[0]
        if first["type"] in ("json_invalid", "json_type"):
            raise HTTPException(400, f"request body is not valid JSON: {first['msg']}") from e
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise HTTPException(422, f"request field '{field}': {first['msg']}") from e


def _resolve(label: str | dict, i: int, records: dict[str, ScenarioRecord]) -> ScenarioRecord:
    """A label is a record (JSON text or object) or the id of a record the server knows."""
    if isinstance(label, str) and not label.lstrip().startswith("{"):
        if label not in records:
            raise BenrlError(f"labels[{i}]: unknown record id '{label[:80]}'")
        return records[label]
    record = parse_record(label, f"labels[{i}]")
    check_weights(record, f"labels[{i}]")
    return record


def check_weights(record: ScenarioRecord, where: str) -> None:
    """Rubric weights finite, with a positive and finite total (1e308 twice overflows)."""
    weights = [c.weight for c in record.rubric]
    positive = sum(w for w in weights if w > 0)
    if record.rubric and not (all(map(math.isfinite, weights)) and 0 < positive < math.inf):
        raise BenrlError(
            f"{where}: rubric weights must be finite with a positive, finite total, got {weights}"
        )


class SafeGrader:
    """The JudgeCache, except that an exception from a judge is that item's failed verdict."""

    def __init__(self, grader: JudgeCache) -> None:
        self.grader = grader

    @property
    def judge_by_kind(self) -> dict[str, str]:
        return self.grader.judge_by_kind

    def __call__(self, record: ScenarioRecord, completion: str) -> JudgeResult:
        try:
            return self.grader(record, completion)
        except Exception as e:  # any judge bug must not become a 500
            reason = f"judge_error: {type(e).__name__}: {str(e)[:200]}"
            return JudgeResult(score=None, status="failed", reason=reason)

    def grade(self, pairs: Sequence[tuple[ScenarioRecord, str]]) -> list[JudgeResult]:
        """The batch in one call; if a judge raises, each item again on its own, so only
        the items that break the judge become failed verdicts."""
        try:
            return self.grader.grade(pairs)
        except Exception:
            return [self(record, completion) for record, completion in pairs]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def create_app(
    judge_by_kind: dict[str, str] | None = None,
    records: dict[str, ScenarioRecord] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    judge_options: dict[str, dict] | None = None,
    token: str | None = None,
) -> FastAPI:
    """The reward app: POST /get_reward (OpenRLHF protocol) and GET /health.

    `judge_options` maps a judge name to its constructor options (a config's
    `judge.options`, e.g. the openai judge's endpoint and the NAME of its key variable).
    Every judge is built here, so a bad name or option fails before serving.
    """
    grader = JudgeCache(judge_by_kind, judge_options)
    for kind in grader.judge_by_kind:
        try:
            grader.for_kind(kind)
        except BenrlError as e:
            raise BenrlError(f"reward server: judge for '{kind}': {e}") from None
    safe = SafeGrader(grader)
    inline = not grader.waits_on_io
    known = records or {}
    served: Counter[str] = Counter()
    app = FastAPI(title="benrl reward server")

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "judges": grader.judge_by_kind,
            "records": len(known),
            "verdicts": dict(served),
        }

    @app.post("/get_reward")
    async def get_reward(request: Request) -> dict:
        if token is not None:
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                raise HTTPException(401, "missing or wrong bearer token")
        req = _parse_request(await _read_body(request, max_body_bytes))
        if not len(req.query) == len(req.prompts) == len(req.labels):
            raise HTTPException(
                422,
                f"{len(req.query)} queries, {len(req.prompts)} prompts and {len(req.labels)} "
                "labels: they must be equally many",
            )
        try:
            batch = [_resolve(label, i, known) for i, label in enumerate(req.labels)]
        except BenrlError as e:
            raise HTTPException(422, str(e)) from e
        if inline:  # a pure-CPU judge: a thread hop would cost more than the grading
            results = grade_openrlhf(req.query, req.prompts, batch, safe)
        else:  # a model judge waits on the network: grade off the event loop
            results = await run_in_threadpool(grade_openrlhf, req.query, req.prompts, batch, safe)
        served.update(r.status for r in results)
        return openrlhf_payload(results)

    return app


def run_server(
    host: str = "127.0.0.1",
    port: int = 5000,
    judge_by_kind: dict[str, str] | None = None,
    records: dict[str, ScenarioRecord] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    log_level: str = "warning",
    judge_options: dict[str, dict] | None = None,
) -> None:
    """Serve the reward app until interrupted (one process; no access log, it costs throughput).

    The bearer token comes from `BENRL_REWARD_TOKEN`; it is required beyond loopback.
    """
    token = os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise BenrlError(
            f"--host {host} is reachable from other machines: set {TOKEN_ENV} to a secret "
            "token (clients send it as 'Authorization: Bearer <token>') or bind 127.0.0.1"
        )
    app = create_app(judge_by_kind, records, max_body_bytes, judge_options, token)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
