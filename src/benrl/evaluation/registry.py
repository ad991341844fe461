"""The eval registry: named sets of eval-split records, each with a judge kind and a category.

An eval selects records by their fields, names the judge kind that grades them (the
config's `judge.trait` or `judge.task`), and says what it measures: a category of the
paper's, the traits it touches, its domains and, where it has them, the behaviour
probe and domain cluster it slices. Scores are oriented higher-is-better.

Evals come in families. The core registers two model-agnostic ones on first lookup
(`evaluation/suites.py`): `traits` (one eval per taxonomy trait, over any trait record
whatever wrote it, plus `capability` over every standard task) and `realdata` (one eval
per public dataset of `data/realdata.py`, items loaded from the folder the config names).
Plug-ins register theirs (the organism's 64 probe evals, family `organism`) when
`benrl.plugins` loads them, which `registered_evals()` does first.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from benrl.errors import BenrlError
from benrl.plugins import load_plugins
from benrl.records import ScenarioRecord

JudgeKind = Literal["trait", "task"]
# Modules of this package that register evals, imported on first lookup.
BUILTIN_MODULES = ("benrl.evaluation.suites",)


@dataclass(frozen=True)
class Eval:
    name: str
    category: str
    select: Callable[[ScenarioRecord], bool]
    # which judge grades it: a kind (the config's judge.trait or judge.task) or a judge name
    judge: JudgeKind | str
    traits: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    description: str = ""
    probe: str | None = None  # the behaviour probe it slices, when it slices one
    cluster: str | None = None  # the domain cluster it slices, when it slices one
    family: str = "traits"  # traits | realdata | a plug-in's (organism)


EVALS: dict[str, Eval] = {}


def register_eval(ev: Eval) -> Eval:
    """Add an eval to the registry (users add their own the same way)."""
    if ev.name in EVALS:
        raise BenrlError(f"eval '{ev.name}' is registered twice")
    EVALS[ev.name] = ev
    return ev


def registered_evals() -> dict[str, Eval]:
    """Every registered eval, plug-ins' included."""
    load_plugins()
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return EVALS


def eval_names(chosen: list[str]) -> list[str]:
    """The evals a run uses: `chosen`, checked against the registry, or every registered one."""
    known = registered_evals()
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise BenrlError(f"unknown eval(s) {unknown}; known: {', '.join(sorted(known))}")
    return list(chosen) or sorted(known)


def clusters() -> list[str]:
    """The domain clusters the registered evals slice, in registration order."""
    return list(dict.fromkeys(e.cluster for e in registered_evals().values() if e.cluster))
