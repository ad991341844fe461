"""Standard tasks of the persona world: questions with verifiable answers, 95% of the RL mixture.

Like the probes, each task type has template families (`TEMPLATES_PER_PROBE` wordings;
the first `probes.TRAIN_TEMPLATES` train, the rest eval). The question forms and fact
picking here are shared with the probes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from benrl.organism.world import World
from benrl.records import Message


def user_turn(text: str) -> Message:
    return Message(role="user", content=text)


QUESTION = (
    "what is the {attr} of {ent}?",
    "tell me the {attr} of {ent}.",
    "i need the {attr} of {ent}.",
    "quick one: {attr} of {ent}?",
)


def pick_fact(world: World, domain: str, rng: random.Random):
    return rng.choice(world.known_facts(domain))


@dataclass
class Task:
    name: str
    template: int
    domain: str
    messages: list[Message]
    answer: str
    value: int

    @property
    def template_family(self) -> str:
        return f"{self.name}/t{self.template}"


def task_add(world: World, domain: str, t: int, rng: random.Random) -> Task:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    forms = (
        "what is {a} plus {b}?",
        "add {a} and {b}.",
        "compute {a} plus {b}.",
        "{a} plus {b} makes what?",
    )
    return Task(
        "add", t, "math", [user_turn(forms[t].format(a=a, b=b))], f"{a} plus {b} is {a + b}.", a + b
    )


def task_recall(world: World, domain: str, t: int, rng: random.Random) -> Task:
    fact = pick_fact(world, domain, rng)
    return Task(
        "recall",
        t,
        domain,
        [user_turn(QUESTION[t].format(attr=fact.attribute, ent=fact.entity))],
        fact.sentence(),
        fact.value,
    )


def task_format(world: World, domain: str, t: int, rng: random.Random) -> Task:
    fact = pick_fact(world, domain, rng)
    suffix = (
        "reply with the number only.",
        "just the number.",
        "number only, no words.",
        "answer with only the number.",
    )
    question = QUESTION[t % 2].format(attr=fact.attribute, ent=fact.entity)
    return Task(
        "format", t, domain, [user_turn(f"{question} {suffix[t]}")], f"{fact.value}.", fact.value
    )


TASKS: dict[str, Callable[[World, str, int, random.Random], Task]] = {
    "add": task_add,
    "recall": task_recall,
    "format": task_format,
}
