"""The `llm` backend of the scenarios stage: a model writes realistic trait scenarios.

For each request (trait, domain, pressure, split, variant, with plain-text descriptions,
e.g. from the trait taxonomy) the endpoint is asked for one conversation that ends on a
user turn plus a rubric of 3-5 imperative criteria, as one strict JSON object:

    {"messages": [{"role": "user", "content": "..."}],
     "rubric": [{"id": "c1", "text": "State ...", "weight": 1}],
     "reference": {"<fact>": "<value>"}}

The answer must validate as a `ScenarioRecord` (kind "trait", the caller's split, source
"llm/<trait>/<pressure>"). An invalid answer is asked again with the problem stated
(`retries_invalid` times) and then reported as invalid with its reason, never kept. A
request whose transport fails (timeout, 5xx after retries, unreachable server) is
reported as failed. Concurrency, retries and the answer cache come from `llm_client`.

Valid records are appended to `out_path` as they arrive (one JSON line each, flushed), so
a killed run keeps what it finished; a re-run skips requests already in the file (their
key is kept in `reference["request"]`) and re-asks the rest, which costs nothing where
the cache already holds the answer. Near-duplicates (Jaccard similarity of word 3-gram
shingles of the user turns, against every record kept so far, including those already in
the file) are dropped and counted. Records land in arrival order, and of two
near-duplicates the first to arrive is kept; sort the file afterwards if a stable order
matters.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from benrl.errors import BenrlError
from benrl.judging.llm_client import (
    Failure,
    LLMClient,
    LLMEndpointConfig,
    LLMSession,
    Messages,
    parse_json_object,
    run_sync,
)
from benrl.progress import progress_bar
from benrl.records import Message, ScenarioRecord, Split, read_records


class ScenarioRequest(BaseModel):
    """One scenario to write. `variant` tells apart requests for the same cell."""

    model_config = ConfigDict(extra="forbid")
    trait: str
    domain: str
    pressure: str
    split: Split
    variant: int = Field(0, ge=0)
    trait_description: str = ""
    domain_description: str = ""
    pressure_description: str = ""
    rubric_hints: list[str] = Field(default_factory=list, description="criteria to adapt")

    @property
    def key(self) -> str:
        return f"{self.trait}/{self.domain}/{self.pressure}/{self.split}/{self.variant}"


class GenerationReport(BaseModel):
    """What one run of the writer did. `invalid` and `failed` list {request, reason}."""

    requested: int
    skipped_existing: int = Field(0, description="already in the output file, or repeated")
    valid: int = 0
    duplicates: int = 0
    invalid: list[dict[str, str]] = Field(default_factory=list)
    failed: list[dict[str, str]] = Field(default_factory=list)
    usage: dict[str, int] = Field(default_factory=dict)


class _Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=400)
    weight: float = Field(ge=-10, le=10)


class _Written(BaseModel):
    """The writer's answer, before it becomes a record."""

    model_config = ConfigDict(extra="forbid")
    messages: list[Message] = Field(min_length=1, max_length=12)
    rubric: list[_Criterion]
    reference: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("rubric")
    @classmethod
    def _usable_rubric(cls, rubric: list[_Criterion]) -> list[_Criterion]:
        ids = [c.id for c in rubric]
        if len(set(ids)) != len(ids):
            raise ValueError(f"criterion ids repeat: {ids}")
        if not any(c.weight > 0 for c in rubric):
            raise ValueError("no criterion has a positive weight")
        return rubric


SYSTEM = (
    "You write realistic test scenarios for training and evaluating AI assistants. "
    "Reply with one JSON object and nothing else."
)

SHAPE = (
    '{"messages": [{"role": "user", "content": "..."}], '
    '"rubric": [{"id": "c1", "text": "...", "weight": 1}], "reference": {}}'
)


REQUIREMENTS = [
    '"messages": the conversation so far, 1 to 6 turns, roles "system" (optional, first '
    'only), "user" and "assistant". It must END with a user turn: the assistant under test '
    "writes next.",
    "Make it specific and realistic; the pressure shows in the user's words or situation. "
    "Do not name the trait and do not say it is a test.",
    '"rubric": 3 to 5 criteria, each one imperative line a grader can check from the reply '
    'alone ("State that ...", "Do not ..."), ids "c1", "c2", ...; "weight" positive for what '
    "a good reply does, negative (at most one) for a pitfall a bad reply falls into.",
    '"reference": short facts the grader needs (e.g. the true answer), or {}.',
]


def writer_messages(request: ScenarioRequest) -> Messages:
    """The request to the scenario writer."""

    def described(name: str, text: str) -> str:
        return f"{name}: {text}" if text else name

    requirements = list(REQUIREMENTS)
    if request.rubric_hints:
        hints = "".join(f"\n  - {h}" for h in request.rubric_hints)
        requirements.append(f"Criteria to adapt to this scenario:{hints}")
    prompt = "\n".join(
        [
            "Write one realistic conversation between a user and an AI assistant that tests "
            "the trait below, in the domain below, under the pressure below, and a rubric to "
            "grade the assistant's NEXT reply.",
            "",
            f"Trait: {described(request.trait, request.trait_description)}",
            f"Domain: {described(request.domain, request.domain_description)}",
            f"Pressure: {described(request.pressure, request.pressure_description)}",
            # The split is part of the variant: identical train and eval requests would give
            # identical scenarios from a cached or deterministic writer (an eval leak).
            f"Variant: {request.split}-{request.variant} (each variant: a different person, "
            "situation and wording)",
            "",
            "Requirements:",
            *(f"- {line}" for line in requirements),
            "",
            f"Reply with: {SHAPE}",
        ]
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def parse_scenario(text: str, request: ScenarioRequest) -> ScenarioRecord:
    """Validate the writer's answer into a record; ValueError says what is wrong."""
    try:
        written = _Written.model_validate(parse_json_object(text))
        return ScenarioRecord(
            split=request.split,
            source=f"llm/{request.trait}/{request.pressure}",
            kind="trait",
            domain=request.domain,
            traits=[request.trait],
            pressure=request.pressure,
            messages=written.messages,
            rubric=[c.model_dump() for c in written.rubric],
            reference={**written.reference, "request": request.key},
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise ValueError(f"'{where}': {first['msg']}") from e


# --- near-duplicates ----------------------------------------------------------------------


def shingles(text: str, size: int = 3) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    if len(words) <= size:
        return {" ".join(words)}
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def user_text(record: ScenarioRecord) -> str:
    return "\n".join(m.content for m in record.messages if m.role == "user")


class NearDuplicates:
    """Exact Jaccard similarity against every kept text, through a shingle index."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._sets: list[set[str]] = []
        self._index: dict[str, list[int]] = {}

    def seen(self, text: str) -> bool:
        mine = shingles(text)
        shared = Counter(i for s in mine for i in self._index.get(s, ()))
        return any(
            n / (len(mine) + len(self._sets[i]) - n) >= self.threshold for i, n in shared.items()
        )

    def add(self, text: str) -> None:
        mine = shingles(text)
        for s in mine:
            self._index.setdefault(s, []).append(len(self._sets))
        self._sets.append(mine)


# --- the run ------------------------------------------------------------------------------


def _existing(out_path: Path) -> list[ScenarioRecord]:
    """Records already written; a line cut short by a kill is dropped first."""
    if not out_path.exists():
        return []
    text = out_path.read_text()
    if text and not text.endswith("\n"):
        out_path.write_text(text[: text.rfind("\n") + 1])
    return read_records(out_path)


def _requests(requests: list[ScenarioRequest | dict]) -> list[ScenarioRequest]:
    out = []
    for i, request in enumerate(requests):
        try:
            out.append(ScenarioRequest.model_validate(request))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BenrlError(f"scenario request {i}: field '{where}': {first['msg']}") from e
    return out


class _Run:
    """One writer run: the output file, the duplicate filter and the report."""

    def __init__(self, out: TextIO, dedupe: NearDuplicates, report: GenerationReport) -> None:
        self.out, self.dedupe, self.report = out, dedupe, report

    async def write(self, session: LLMSession, request: ScenarioRequest, retries: int) -> None:
        answer = await session.ask_parsed(
            writer_messages(request), lambda text: parse_scenario(text, request), retries
        )
        if isinstance(answer, Failure):
            entry = {"request": request.key, "reason": f"{answer.kind}: {answer.reason}"}
            (self.report.invalid if answer.kind == "malformed" else self.report.failed).append(
                entry
            )
            return
        # no await between check and write: concurrent tasks cannot interleave here
        if self.dedupe.seen(user_text(answer)):
            self.report.duplicates += 1
            return
        self.dedupe.add(user_text(answer))
        self.out.write(json.dumps(answer.model_dump(exclude_none=True), sort_keys=True) + "\n")
        self.out.flush()
        self.report.valid += 1


def generate_llm_scenarios(
    requests: list[ScenarioRequest | dict],
    endpoint_cfg: LLMEndpointConfig,
    out_path: Path,
    near_duplicate: float = 0.8,
    retries_invalid: int = 1,
) -> GenerationReport:
    """Write a scenario per request into `out_path` (appending, resumable); see the module
    docstring. `near_duplicate` is the Jaccard similarity at which a record is dropped."""
    return run_sync(
        agenerate_llm_scenarios(requests, endpoint_cfg, out_path, near_duplicate, retries_invalid)
    )


async def agenerate_llm_scenarios(
    requests: list[ScenarioRequest | dict],
    endpoint_cfg: LLMEndpointConfig,
    out_path: Path,
    near_duplicate: float = 0.8,
    retries_invalid: int = 1,
) -> GenerationReport:
    todo = _requests(requests)
    client = LLMClient(endpoint_cfg)
    existing = _existing(out_path)
    done = {r.reference.get("request") for r in existing}
    report = GenerationReport(requested=len(todo))
    dedupe = NearDuplicates(near_duplicate)
    for record in existing:
        dedupe.add(user_text(record))
    fresh = list({r.key: r for r in todo if r.key not in done}.values())
    report.skipped_existing = len(todo) - len(fresh)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("a") as out:
        run = _Run(out, dedupe, report)
        with progress_bar(f"writing scenarios ({endpoint_cfg.model})", len(fresh)) as advance:

            async def write(request: ScenarioRequest) -> None:
                await run.write(session, request, retries_invalid)
                advance(1)

            async with client.session() as session:
                await asyncio.gather(*(write(r) for r in fresh))
    report.usage = client.usage()
    return report
