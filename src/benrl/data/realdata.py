"""Real public eval datasets as benrl scenario records, plus bring-your-own evals in YAML.

Each adapter reads one public dataset from a directory the user names (never downloaded
here, never used for training: several carry canary strings) and returns a `RealEval`:
eval records (split "eval", source f"real/{name}") with the scorer that grades them, a
category and what higher-is-better means. Deterministic items are `task` records with an
`answer` (the correct letter, the desired behaviour label, "refuse"/"comply", ...);
items only a model can grade are `trait` records with a 3-5 criterion rubric for the
`openai` judge. `reference` carries what the scorer needs (choices, IFEval instructions).

These sets are for real Hugging Face models; the embedded organism lives in a fictional
world and cannot meaningfully answer them. See docs/realdata.md for the table.
"""

from __future__ import annotations

import csv
import importlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benrl.errors import BenrlError
from benrl.judging import scorers
from benrl.records import Criterion, Message, ScenarioRecord

Category = Literal[
    "honesty",
    "sycophancy",
    "reward_hacking",
    "harmful_advice",
    "over_refusal",
    "spec_compliance",
    "health",
    "calibration",
    "corrigibility",
    "fairness",
    "misalignment",
    "capability",
]

LETTER_INSTRUCTION = "Answer with the letter of your choice."


@dataclass
class RealEval:
    """A loaded eval: records, the judge that scores them, and the meaning of the score."""

    name: str
    category: Category
    scorer: str
    direction: str
    records: list[ScenarioRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Adapter:
    """A registered dataset: where it lives under the root and how its rows become records."""

    name: str
    files: tuple[str, ...]
    category: Category
    scorer: str
    direction: str
    build: Callable[[Path], Iterable[ScenarioRecord]]

    def __call__(self, root: Path, limit: int | None = None) -> RealEval:
        for rel in self.files:
            if not (root / rel).is_file():
                raise BenrlError(f"{root / rel}: file not found (dataset '{self.name}')")
        records = list(islice(self.build(root), limit))
        return RealEval(self.name, self.category, self.scorer, self.direction, records)


REALDATA: dict[str, Adapter] = {}


def adapter(
    name: str, files: tuple[str, ...], category: Category, scorer: str, direction: str
) -> Callable[[Callable[[Path], Iterable[ScenarioRecord]]], Adapter]:
    """Register `fn(root) -> records` as the adapter `name`."""

    def decorate(fn: Callable[[Path], Iterable[ScenarioRecord]]) -> Adapter:
        REALDATA[name] = Adapter(name, files, category, scorer, direction, fn)
        return REALDATA[name]

    return decorate


def _registry() -> dict[str, Adapter]:
    """The adapters; the packaged sets register on first use (`data/realdata_sets.py`)."""
    importlib.import_module("benrl.data.realdata_sets")
    return REALDATA


def list_realdata() -> list[str]:
    return sorted(_registry())


def load_realdata(name: str, root: Path, limit: int | None = None) -> RealEval:
    """Load the dataset `name` from `root` (the folder holding one sub-folder per dataset)."""
    if name not in _registry():
        raise BenrlError(f"unknown real dataset '{name}' (known: {', '.join(list_realdata())})")
    return REALDATA[name](Path(root), limit)


# --- readers and record helpers ----------------------------------------------------------


def rows_csv(path: Path, columns: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """CSV rows with their line numbers, after checking the header has `columns`."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        for column in columns:
            if column not in header:
                raise BenrlError(f"{path}: no column '{column}' (columns: {', '.join(header)})")
        for row in reader:
            yield reader.line_num, row


def rows_jsonl(path: Path, columns: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """JSONL objects with their line numbers; a missing key names the file and line."""
    wanted = list(columns)
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenrlError(f"{path}:{line_no}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise BenrlError(f"{path}:{line_no}: expected a JSON object")
            for column in wanted:
                if column not in row:
                    raise BenrlError(f"{path}:{line_no}: missing column '{column}'")
            yield line_no, row


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BenrlError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from e


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise BenrlError(f"{path}: not valid YAML ({e})") from e


def user_messages(prompt: str, system: str | None = None) -> list[Message]:
    head = [Message(role="system", content=system)] if system else []
    return [*head, Message(role="user", content=prompt)]


def make_record(name: str, key: object, domain: str, prompt: str, **fields: Any) -> ScenarioRecord:
    system = fields.pop("system", None)
    return ScenarioRecord(
        id=f"real-{name}-{key}",
        split="eval",
        source=f"real/{name}",
        domain=domain or name,
        messages=user_messages(prompt, system),
        **fields,
    )


def make_rubric(*lines: tuple[str, str, float]) -> list[Criterion]:
    return [Criterion(id=i, text=text, weight=weight) for i, text, weight in lines]


def format_choices(prompt: str, choices: list[str], labels: list[str]) -> str:
    """The prompt with lettered options and the answer instruction, as the adapters write it."""
    options = "\n".join(
        f" ({label}) {choice}" for label, choice in zip(labels, choices, strict=True)
    )
    return f"{prompt.strip()}\n\nChoices:\n{options}\n\n{LETTER_INSTRUCTION}"


# --- bring your own eval -----------------------------------------------------------------


class ColumnMap(BaseModel):
    """Which data columns hold what. Only `prompt` is required."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(description="column with the user prompt")
    answer: str | None = Field(None, description="column with the answer (letter, index or text)")
    choices: str | list[str] | None = Field(
        None,
        description="one column holding a list (or a '|'-separated string) of options, "
        "or a list of columns, one option each",
    )
    system: str | None = Field(None, description="column with a system prompt")
    id: str | None = Field(None, description="column with a stable item id (default: line)")
    domain: str | None = Field(None, description="column with a sub-category")
    reference: list[str] = Field(
        default_factory=list,
        description="extra columns copied into `reference` (e.g. instruction_id_list, kwargs)",
    )


class EvalSpec(BaseModel):
    """A bring-your-own eval: a YAML file naming a JSONL or CSV data file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="eval name; records get source 'real/<name>'")
    data: str = Field(description="JSONL or CSV file, relative to the YAML file")
    category: Category
    scorer: str = Field(description="judge name: multiple_choice, behavior_match, ifeval, ...")
    direction: str = Field("higher is better", description="what a higher score means")
    columns: ColumnMap
    expect: Literal["refuse", "comply"] | None = Field(
        None, description="for the refusal scorer without an answer column: every item's answer"
    )
    rubric: list[Criterion] = Field(
        default_factory=list,
        description="3-5 criteria for model-judged (trait) items; text may use {column}",
    )
    limit: int | None = Field(None, ge=1, description="keep only the first N items")


def load_eval_yaml(path: Path) -> RealEval:
    """Load a bring-your-own eval described by the YAML file `path`."""
    path = Path(path)
    if not path.is_file():
        raise BenrlError(f"{path}: file not found")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise BenrlError(f"{path}: expected a YAML mapping")
    try:
        spec = EvalSpec.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise BenrlError(f"{path}: unknown key '{where}'") from e
        raise BenrlError(f"{path}: key '{where}': {first['msg']}") from e
    data = (path.parent / spec.data).resolve()
    if not data.is_file():
        raise BenrlError(f"{path}: data file '{spec.data}' not found")
    _check_spec(spec, path)
    rows = _data_rows(data, _needed_columns(spec.columns))
    records = [_byo_record(spec, data, line_no, row) for line_no, row in islice(rows, spec.limit)]
    if not records:
        raise BenrlError(f"{data}: no items")
    return RealEval(spec.name, spec.category, spec.scorer, spec.direction, records)


def _check_spec(spec: EvalSpec, path: Path) -> None:
    cols = spec.columns
    if spec.rubric and not 3 <= len(spec.rubric) <= 5:
        raise BenrlError(f"{path}: key 'rubric': needs 3-5 criteria, has {len(spec.rubric)}")
    if spec.scorer in ("multiple_choice", "behavior_match") and not (cols.choices and cols.answer):
        raise BenrlError(f"{path}: scorer '{spec.scorer}' needs columns.choices and columns.answer")
    if spec.scorer == "ifeval" and not {"instruction_id_list", "kwargs"} <= set(cols.reference):
        raise BenrlError(
            f"{path}: scorer 'ifeval' needs columns.reference with instruction_id_list and kwargs"
        )
    if not spec.rubric and not cols.answer and not spec.expect and spec.scorer != "ifeval":
        raise BenrlError(f"{path}: give columns.answer, expect, or a rubric (3-5 criteria)")


def _needed_columns(cols: ColumnMap) -> list[str]:
    choices = [cols.choices] if isinstance(cols.choices, str) else cols.choices or []
    named = [cols.prompt, cols.answer, cols.system, cols.id, cols.domain, *choices, *cols.reference]
    return [c for c in named if c]


def _data_rows(data: Path, columns: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    if data.suffix == ".jsonl":
        return rows_jsonl(data, columns)
    if data.suffix == ".csv":
        return rows_csv(data, columns)
    raise BenrlError(f"{data}: data file must end in .jsonl or .csv")


def _byo_choices(cols: ColumnMap, row: dict[str, Any]) -> list[str]:
    if isinstance(cols.choices, list):
        return [str(row[c]) for c in cols.choices]
    value = row[cols.choices] if cols.choices else []
    if isinstance(value, str):
        value = json.loads(value) if value.startswith("[") else value.split("|")
    return [str(v).strip() for v in value]


def _byo_answer(raw: Any, choices: list[str], labels: list[str], where: str) -> str:
    """A letter from an answer given as a label, a 0-based index or the option text."""
    text = str(raw).strip()
    if text.strip("()") in labels:
        return text.strip("()")
    if text.isdigit() and int(text) < len(labels):
        return labels[int(text)]
    if text in choices:
        return labels[choices.index(text)]
    raise BenrlError(f"{where}: answer {text!r} is not a label, index or option text")


def _byo_record(spec: EvalSpec, data: Path, line_no: int, row: dict[str, Any]) -> ScenarioRecord:
    cols, where = spec.columns, f"{data}:{line_no}"
    prompt = str(row[cols.prompt])
    reference = {c: row[c] for c in cols.reference}
    fields: dict[str, Any] = {"system": row[cols.system] if cols.system else None}
    if cols.choices:
        choices = _byo_choices(cols, row)
        labels = list(scorers.LETTERS[: len(choices)])
        prompt = format_choices(prompt, choices, labels)
        reference |= {"choices": choices, "labels": labels}
        fields["answer"] = _byo_answer(row[cols.answer], choices, labels, where)
    elif cols.answer:
        fields["answer"] = str(row[cols.answer])
    elif spec.expect:
        fields["answer"] = spec.expect
    elif spec.scorer == "ifeval":
        fields["answer"] = "; ".join(reference["instruction_id_list"])
    if spec.rubric:
        fields["rubric"] = [_fill(c, row, where) for c in spec.rubric]
    kind = "trait" if spec.rubric and "answer" not in fields else "task"
    key = row[cols.id] if cols.id else line_no
    domain = str(row[cols.domain]) if cols.domain else spec.name
    try:
        return make_record(spec.name, key, domain, prompt, kind=kind, reference=reference, **fields)
    except ValidationError as e:
        raise BenrlError(f"{where}: bad item: {e.errors()[0]['msg']}") from e


def _fill(criterion: Criterion, row: dict[str, Any], where: str) -> Criterion:
    try:
        return criterion.model_copy(update={"text": criterion.text.format_map(row)})
    except (KeyError, IndexError, ValueError) as e:
        raise BenrlError(f"{where}: rubric '{criterion.id}' names unknown column {e}") from e
