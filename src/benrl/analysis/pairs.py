"""Contrast pairs for trait directions: a registry of sources, one per model family.

A pair is a conversation (`messages`) with a beneficial (`good`) and a non-beneficial
(`bad`) response; a source gives `per_probe` pairs per probe (trait) for a split
(`train` estimates directions, `eval` judges them). The organism registers `organism`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from benrl.errors import BenrlError
from benrl.plugins import load_plugins
from benrl.records import Message


class ContrastPair(Protocol):
    messages: list[Message]
    good: str
    bad: str


PairSource = Callable[[int, int, str], dict[str, Sequence[ContrastPair]]]
PAIR_SOURCES: dict[str, PairSource] = {}


def register_pair_source(name: str, source: PairSource) -> None:
    PAIR_SOURCES[name] = source


def pair_source(name: str) -> PairSource:
    load_plugins()
    if name not in PAIR_SOURCES:
        known = ", ".join(sorted(PAIR_SOURCES)) or "none"
        raise BenrlError(f"no direction pair source '{name}' (known: {known})")
    return PAIR_SOURCES[name]
