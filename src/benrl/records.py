"""The data contracts every stage shares: scenario records and judge results.

A scenario record (one JSON object per line in `scenarios/{train,eval}.jsonl`) is what
the policy is prompted with and what a judge grades against. A `JudgeResult` is what
every judge returns. Changing a field here changes a contract: update every reader and
docs/architecture.md together.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from benrl.errors import BenrlError

Role = Literal["system", "user", "assistant"]
Split = Literal["train", "eval"]
Kind = Literal["trait", "task"]
Status = Literal["ok", "failed", "incoherent"]
Verdict = Literal["met", "not_met", "failed"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str


class Criterion(BaseModel):
    """One rubric line: an imperative a model judge can grade.

    `check` optionally names a machine-checkable predicate (see `judges.CHECKS`) that
    the offline `world` judge uses instead of a model. A negative weight marks a
    pitfall: meeting it lowers the score (as in HealthBench).
    """

    model_config = ConfigDict(extra="forbid")
    id: str
    text: str
    weight: float = 1.0
    check: str | None = None


class ScenarioRecord(BaseModel):
    """One prompt for the policy, with what is needed to grade the answer."""

    model_config = ConfigDict(extra="forbid")
    id: str = ""
    split: Split
    source: str = Field(description="template family or generator that wrote the record")
    kind: Kind
    domain: str
    traits: list[str] = Field(default_factory=list)
    pressure: str = "none"
    messages: list[Message]
    rubric: list[Criterion] = Field(default_factory=list)
    reference: dict = Field(default_factory=dict, description="facts a judge may need")
    answer: str | None = Field(default=None, description="verifiable answer (kind=task)")

    @field_validator("messages")
    @classmethod
    def _ends_before_assistant_turn(cls, messages: list[Message]) -> list[Message]:
        if not messages or messages[-1].role != "user":
            raise ValueError("messages must end with a user turn (the policy writes next)")
        return messages

    @model_validator(mode="after")
    def _complete(self) -> ScenarioRecord:
        if self.kind == "trait" and not 3 <= len(self.rubric) <= 5:
            raise ValueError(f"trait record needs 3-5 rubric criteria, has {len(self.rubric)}")
        if self.kind == "task" and self.answer is None:
            raise ValueError("task record needs an `answer`")
        if not self.id:
            self.id = content_id(self)
        return self


def content_id(record: ScenarioRecord) -> str:
    """A stable id derived from the content, so regeneration gives identical ids."""
    payload = record.model_dump(exclude={"id", "split"})
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"{record.source}-{digest[:12]}"


class JudgeResult(BaseModel):
    """What every judge returns. A failed verdict is a status, never a silent zero."""

    model_config = ConfigDict(extra="forbid")
    score: float | None = Field(description="in [0, 1]; None when status is not ok")
    verdicts: dict[str, Verdict] = Field(default_factory=dict)
    reason: str = ""
    status: Status = "ok"
    response_family: str | None = Field(
        default=None, description="the behaviour (response family) the judge parsed"
    )
    refusal: bool = False


def write_jsonl(path: Path, rows: list[BaseModel] | list[dict]) -> None:
    """Write rows atomically (temp file then rename), so a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        for row in rows:
            data = row.model_dump(exclude_none=True) if isinstance(row, BaseModel) else row
            f.write(json.dumps(data, sort_keys=True) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSONL file; a bad line (cut by a kill, edited) is a BenrlError naming it."""
    if not path.is_file():
        raise BenrlError(f"{path}: file not found")
    rows = []
    try:
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise BenrlError(f"{path}:{line_no}: not valid JSON ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise BenrlError(f"{path}: not UTF-8 text (byte {e.start})") from e
    return rows


def read_json(path: Path) -> dict | list:
    """One JSON document; unreadable is a BenrlError naming the file and line."""
    if not path.is_file():
        raise BenrlError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BenrlError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise BenrlError(f"{path}: not UTF-8 text (byte {e.start})") from e


def read_records(path: Path) -> list[ScenarioRecord]:
    """Read and validate scenario records, naming the file and line of a bad one."""
    records = []
    for line_no, row in enumerate(read_jsonl(path), 1):
        try:
            records.append(ScenarioRecord.model_validate(row))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BenrlError(f"{path}:{line_no}: bad record field '{where}': {first['msg']}") from e
    return records
