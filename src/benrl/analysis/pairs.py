"""Contrast pairs for trait directions: a registry of sources, one per model family.

A pair is a conversation (`messages`) with a beneficial (`good`) and a non-beneficial
(`bad`) response; a source gives `per_probe` pairs per probe (trait) for a split
(`train` estimates directions, `eval` judges them). The organism registers `organism`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from benrl.plugins import Registry
from benrl.records import Message


class ContrastPair(Protocol):
    messages: list[Message]
    good: str
    bad: str


PairSource = Callable[[int, int, str], dict[str, Sequence[ContrastPair]]]
PAIR_SOURCES: Registry[PairSource] = Registry("direction pair source")
register_pair_source = PAIR_SOURCES.register
pair_source = PAIR_SOURCES.get
