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
"""

from __future__ import annotations

from collections import Counter

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool

from benrl.errors import BenrlError
from benrl.judging.registry import JudgeCache
from benrl.records import ScenarioRecord
from benrl.training.rewards import grade_openrlhf, openrlhf_payload, parse_record

MAX_BODY_BYTES = 8 * 1024 * 1024


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
    return parse_record(label, f"labels[{i}]")


def create_app(
    judge_by_kind: dict[str, str] | None = None,
    records: dict[str, ScenarioRecord] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    judge_options: dict[str, dict] | None = None,
) -> FastAPI:
    """The reward app: POST /get_reward (OpenRLHF protocol) and GET /health.

    `judge_options` maps a judge name to its constructor options (a config's
    `judge.options`, e.g. the openai judge's endpoint and the NAME of its key variable).
    """
    grader = JudgeCache(judge_by_kind, judge_options)
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
        # Judges may block (a model judge waits on the network): grade off the event loop.
        results = await run_in_threadpool(grade_openrlhf, req.query, req.prompts, batch, grader)
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
    """Serve the reward app until interrupted (one process; no access log, it costs throughput)."""
    app = create_app(judge_by_kind, records, max_body_bytes, judge_options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
