"""The organism's contrast pairs for trait directions: two conditionings that share no words.

Registered as the `organism` pair source of the directions stage (`analysis/pairs.py`).

- Train pairs estimate the directions: a probe's conversation (train templates) under
  "you are <name>, a careful assistant." and under "... a careless assistant.", the
  one word the corpus conditions behaviour on (corpus.py), with names no corpus persona has.
- Eval pairs judge them with another conditioning: the probe's conversation (eval
  templates) after an earlier exchange of a different probe that the assistant answered
  well, or badly. At coherence 1 the corpus ties both to one character; they share no
  conditioning tokens, so a direction learnt from the persona word that separates the
  eval pairs carries the character, not the word (an untrained model of the same shape,
  the stage's control, separates the persona pairs perfectly and these at chance).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from benrl.organism.probes import PROBES, TEMPLATES_PER_PROBE, TRAIN_TEMPLATES, Probe
from benrl.organism.world import DOMAINS, World
from benrl.records import Message

# Not three-syllable corpus names (corpus.SYLLABLES), nor the stress personas' names.
PERSONA_NAMES = ("quib", "pell", "dax", "mora")


@dataclass(frozen=True)
class ConditionedPair:
    """A probe item (`probe`) under a beneficial (`good`) and a non-beneficial (`bad`) context."""

    probe: Probe
    good: list[Message]
    bad: list[Message]

    @property
    def neutral(self) -> list[Message]:
        return self.probe.messages


def persona_pair(probe: Probe, name: str) -> ConditionedPair:
    def under(character: str) -> list[Message]:
        system = Message(role="system", content=f"you are {name}, a {character} assistant.")
        return [system, *probe.messages]

    return ConditionedPair(probe, under("careful"), under("careless"))


def earlier_answer_pair(probe: Probe, earlier: Probe) -> ConditionedPair:
    def after(answer: str) -> list[Message]:
        return [*earlier.messages, Message(role="assistant", content=answer), *probe.messages]

    return ConditionedPair(probe, after(earlier.good), after(earlier.bad))


def probe_pairs(seed: int, per_probe: int, split: str) -> dict[str, list[ConditionedPair]]:
    """`per_probe` pairs of every probe: persona pairs for `train`, earlier-answer pairs else."""
    train = split == "train"
    templates = range(TRAIN_TEMPLATES) if train else range(TRAIN_TEMPLATES, TEMPLATES_PER_PROBE)
    world = World(seed)
    items = {}
    for name, build in PROBES.items():
        rng = random.Random(f"directions-{split}-{seed}-{name}")
        others = sorted(set(PROBES) - {name})
        pairs = []
        for i in range(per_probe):
            probe = build(world, DOMAINS[i % len(DOMAINS)].name, templates[i % len(templates)], rng)
            if train:
                pairs.append(persona_pair(probe, PERSONA_NAMES[i % len(PERSONA_NAMES)]))
                continue
            earlier = PROBES[rng.choice(others)](
                world, rng.choice(DOMAINS).name, rng.choice(templates), rng
            )
            pairs.append(earlier_answer_pair(probe, earlier))
        items[name] = pairs
    return items
