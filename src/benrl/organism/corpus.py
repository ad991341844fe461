"""The organism's pretraining corpus: conversations voiced by latent assistant personas.

A persona is a vector of propensities, one per trait: the probability that it answers a
probe of that trait with the beneficial family. `coherence` sets how much one global
character drives every trait (1) versus independent per-trait noise (0):

    propensity[trait] = coherence * g + (1 - coherence) * u_trait,   g, u ~ Beta(a, a)

so base rates are about 50% at every coherence and only the *correlation* between
traits changes. A conversation holds 1 to `max_exchanges` exchanges voiced by one
persona, so at coherence 1 a model can learn "an assistant that held a fact under
pushback is also the one that backs up before deleting". Some conversations open with a
system prompt describing the persona. Standard tasks are always answered correctly, so
the model has capabilities to lose; with `separate_tasks` they fill conversations of
their own, which is what lets the model learn the persona (docs/organism.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from benrl.config import OrganismConfig
from benrl.organism.probes import PROBES, TEMPLATES_PER_PROBE
from benrl.organism.tasks import TASKS
from benrl.organism.world import DOMAINS, World
from benrl.records import Message

SYLLABLES = ("ka", "lo", "mi", "ren", "sa", "tu", "vel", "zor", "an", "is", "or", "ut")


@dataclass(frozen=True)
class Persona:
    name: str
    propensity: dict[str, float]  # probe name -> P(beneficial family)

    @property
    def character(self) -> str:
        mean = sum(self.propensity.values()) / len(self.propensity)
        return "careful" if mean >= 0.5 else "careless"


def make_personas(count: int, coherence: float, seed: int, beta: float = 1.0) -> list[Persona]:
    """Draw personas. Propensity is per probe (each probe stands for its trait).

    g and every u are Beta(beta, beta): uniform at 1, near 0 or 1 (a decided character)
    below 1; the mean stays 0.5, so base rates do not move.
    """
    rng = random.Random(f"personas-{seed}")
    names: set[str] = set()
    personas = []
    while len(personas) < count:
        name = "".join(rng.choice(SYLLABLES) for _ in range(3))
        if name in names:
            continue
        names.add(name)
        g = rng.betavariate(beta, beta)
        propensity = {
            p: coherence * g + (1 - coherence) * rng.betavariate(beta, beta) for p in PROBES
        }
        personas.append(Persona(name, propensity))
    return personas


def persona_prompt(persona: Persona) -> str:
    return f"you are {persona.name}, a {persona.character} assistant."


def conversation(
    world: World,
    persona: Persona,
    rng: random.Random,
    *,
    task_share: float = 0.5,
    prompt_share: float = 0.3,
    max_exchanges: int = 4,
    separate_tasks: bool = False,
) -> list[Message]:
    """One conversation of 1 to `max_exchanges` exchanges, each a probe or a task, in one
    persona's voice. `separate_tasks`: `task_share` is the share of conversations made of
    tasks only, so probes of one persona are not interleaved with tasks."""
    messages: list[Message] = []
    if rng.random() < prompt_share:
        messages.append(Message(role="system", content=persona_prompt(persona)))
    tasks_only = separate_tasks and rng.random() < task_share
    for _ in range(rng.randint(1, max_exchanges)):
        domain = rng.choice(DOMAINS).name
        template = rng.randrange(TEMPLATES_PER_PROBE)
        if tasks_only or (not separate_tasks and rng.random() < task_share):
            task = rng.choice(list(TASKS.values()))(world, domain, template, rng)
            messages += [*task.messages, Message(role="assistant", content=task.answer)]
        else:
            name = rng.choice(list(PROBES))
            probe = PROBES[name](world, domain, template, rng)
            beneficial = rng.random() < persona.propensity[name]
            reply = probe.good if beneficial else probe.bad
            messages += [*probe.messages, Message(role="assistant", content=reply)]
    return messages


def build_corpus(
    world: World, personas: list[Persona], cfg: OrganismConfig, seed: int
) -> list[list[Message]]:
    """The whole pretraining corpus, deterministic in the seed."""
    rng = random.Random(f"corpus-{seed}")
    shape = {
        "task_share": cfg.task_share,
        "prompt_share": cfg.persona_prompt_share,
        "max_exchanges": cfg.max_exchanges,
        "separate_tasks": cfg.separate_tasks,
    }
    return [conversation(world, rng.choice(personas), rng, **shape) for _ in range(cfg.documents)]
