"""Contrast pairs for trait directions: a registry of sources, one per model family.

A pair is one prompt read under two conditionings: `good`, the conversation under a
beneficial conditioning (a "careful assistant" system prompt, or an earlier answer that
was good), and `bad`, the same conversation under a non-beneficial one. Both end where
the assistant's answer would begin, and the directions read the model there, at the
last prompt token: the same token in both conversations, so the token embeddings
(layer 0) cannot tell the pair apart. A source gives `per_probe` pairs per probe
(trait) for a split: `train` estimates the directions, `eval` judges them and should
use a conditioning that shares no words with `train`'s, because attention copies a
conditioning word into the read-out state at any layer, even with random weights.
`neutral` is the conversation with no conditioning: the prompt every model is tracked on.
The organism registers `organism`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from benrl.plugins import Registry
from benrl.records import Message


class ContrastPair(Protocol):
    good: list[Message]
    bad: list[Message]
    neutral: list[Message]


PairSource = Callable[[int, int, str], dict[str, Sequence[ContrastPair]]]
PAIR_SOURCES: Registry[PairSource] = Registry("direction pair source")
register_pair_source = PAIR_SOURCES.register
pair_source = PAIR_SOURCES.get
