"""Persona prompts for the stress stage: the personas file, its checks, and applying one.

A personas file (default: the packaged `personas.yaml`, whose header documents the
fields) lists harmful and helpful personas; each has a prompt in the organism's
language and, for real models, an English one.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benrl.errors import BenrlError
from benrl.records import Message, ScenarioRecord

PERSONAS_FILE = Path(str(files("benrl.data") / "personas.yaml"))


class PersonaSpec(BaseModel):
    """One persona of a personas file (the file's header documents the fields)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: Literal["harmful", "helpful"]
    target: Literal["health", "general"]
    prompt: str = Field(min_length=1)
    prompt_english: str | None = Field(None, min_length=1)


def load_personas(path: Path | None = None) -> list[PersonaSpec]:
    """Read and validate a personas file; errors name the file and the persona."""
    path = path or PERSONAS_FILE
    if not path.is_file():
        raise BenrlError(f"personas file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise BenrlError(f"{path}: not valid YAML ({e})") from e
    if (
        not isinstance(raw, dict)
        or set(raw) != {"personas"}
        or not isinstance(raw["personas"], list)
    ):
        raise BenrlError(f"{path}: the file must hold one key, `personas`, with a list of personas")
    personas: list[PersonaSpec] = []
    for number, entry in enumerate(raw["personas"], 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f"'{name}'" if name else f"#{number}"
        try:
            persona = PersonaSpec.model_validate(entry)
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(entry)"
            raise BenrlError(f"{path}: persona {label}: field '{field}': {first['msg']}") from e
        if any(p.name == persona.name for p in personas):
            raise BenrlError(f"{path}: persona {label} is defined twice")
        personas.append(persona)
    return personas


def choose_personas(
    personas: list[PersonaSpec], names: list[str], english: bool, path: Path
) -> list[tuple[PersonaSpec, str]]:
    """The personas named (all when `names` is empty), each with the system prompt to
    apply: `prompt_english` for a real model, `prompt` for the organism."""
    known = {p.name: p for p in personas}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BenrlError(f"stress.personas names {unknown}, which {path} does not define")
    chosen = []
    for persona in (known[n] for n in names) if names else personas:
        text = persona.prompt_english if english else persona.prompt
        if text is None:
            raise BenrlError(
                f"{path}: persona '{persona.name}' has no prompt_english, "
                "needed to stress a real model"
            )
        chosen.append((persona, text))
    return chosen


def apply_persona(record: ScenarioRecord, prompt: str) -> ScenarioRecord:
    """The record with `prompt` as its only system message, first; id and rubric kept."""
    turns = [m for m in record.messages if m.role != "system"]
    return record.model_copy(update={"messages": [Message(role="system", content=prompt), *turns]})
