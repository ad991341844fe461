"""The organism's scenario source: its probes and standard tasks instantiated in every domain.

Train and eval splits are disjoint by *template family* (the user's wording), not just
by item: templates 0..TRAIN_TEMPLATES-1 feed training, the rest exist only in eval.
Registered as the `template` trait source and the `world` task source of the scenarios
stage (`data/scenarios.py`).
"""

from __future__ import annotations

import random
from pathlib import Path

from benrl.config import ScenariosConfig
from benrl.data.scenarios import dedupe
from benrl.organism.probes import PROBES, TEMPLATES_PER_PROBE, TRAIN_TEMPLATES, Probe
from benrl.organism.tasks import TASKS, Task
from benrl.organism.world import DOMAINS, World
from benrl.records import Message, ScenarioRecord


def probe_record(probe: Probe, split: str) -> ScenarioRecord:
    return ScenarioRecord(
        split=split,
        source=probe.template_family,
        kind="trait",
        domain=probe.domain,
        traits=probe.traits,
        pressure=probe.pressure,
        messages=probe.messages,
        rubric=probe.rubric,
        reference={**probe.reference, "good": probe.good, "bad": probe.bad},
    )


def task_record(task: Task, split: str) -> ScenarioRecord:
    return ScenarioRecord(
        split=split,
        source=task.template_family,
        kind="task",
        domain=task.domain,
        messages=task.messages,
        answer=task.answer,
        reference={"value": task.value},
    )


def _templates(split: str) -> range:
    return (
        range(TRAIN_TEMPLATES) if split == "train" else range(TRAIN_TEMPLATES, TEMPLATES_PER_PROBE)
    )


def with_context(
    messages: list[Message], world: World, rng: random.Random, share: float
) -> list[Message]:
    """Prepend 0-2 earlier exchanges (standard tasks, answered right) to a conversation.

    Real conversations rarely open on the hard turn; earlier turns also make items
    varied enough that thousands of them are distinct.
    """
    if rng.random() >= share:
        return messages
    context: list[Message] = []
    for _ in range(rng.randint(1, 2)):
        task = rng.choice(list(TASKS.values()))(
            world, rng.choice(DOMAINS).name, rng.randrange(TEMPLATES_PER_PROBE), rng
        )
        context += [*task.messages, Message(role="assistant", content=task.answer)]
    system = [m for m in messages[:1] if m.role == "system"]
    return system + context + messages[len(system) :]


def trait_records(
    world: World, split: str, per_cell: int, seed: int, context_share: float = 0.0
) -> list[ScenarioRecord]:
    """Every probe x domain x template family of the split, `per_cell` draws each."""
    rng = random.Random(f"scenarios-{split}-{seed}")
    records = []
    for build in PROBES.values():
        for domain in DOMAINS:
            for template in _templates(split):
                for _ in range(per_cell):
                    probe = build(world, domain.name, template, rng)
                    probe.messages = with_context(probe.messages, world, rng, context_share)
                    records.append(probe_record(probe, split))
    return dedupe(records)


def task_records(
    world: World, split: str, per_type: int, seed: int, context_share: float = 0.0
) -> list[ScenarioRecord]:
    rng = random.Random(f"tasks-{split}-{seed}")
    templates = list(_templates(split))
    records = []
    for build in TASKS.values():
        for i in range(per_type):
            task = build(world, DOMAINS[i % len(DOMAINS)].name, templates[i % len(templates)], rng)
            task.messages = with_context(task.messages, world, rng, context_share)
            records.append(task_record(task, split))
    return dedupe(records)


def template_traits(
    cfg: ScenariosConfig, seed: int, split: str, _out_dir: Path
) -> list[ScenarioRecord]:
    """The `template` trait source: every probe x domain x template of the split."""
    per_cell = cfg.train_per_cell if split == "train" else cfg.eval_per_cell
    return trait_records(World(seed), split, per_cell, seed, cfg.context_share)


def world_tasks(cfg: ScenariosConfig, seed: int, split: str) -> list[ScenarioRecord]:
    """The `world` task source: the world's standard tasks of the split."""
    per_type = cfg.tasks_train if split == "train" else cfg.tasks_eval
    return task_records(World(seed), split, per_type, seed, cfg.context_share)
