"""The organism's contrast pairs for trait directions: each probe's good and bad response.

Registered as the `organism` pair source of the directions stage (`analysis/pairs.py`):
train-template items estimate the directions, eval-template items judge them.
"""

from __future__ import annotations

import random

from benrl.organism.probes import PROBES, TEMPLATES_PER_PROBE, TRAIN_TEMPLATES, Probe
from benrl.organism.world import DOMAINS, World


def probe_pairs(seed: int, per_probe: int, split: str) -> dict[str, list[Probe]]:
    """`per_probe` items of every probe on the split's templates, spread over the domains."""
    templates = (
        range(TRAIN_TEMPLATES) if split == "train" else range(TRAIN_TEMPLATES, TEMPLATES_PER_PROBE)
    )
    world = World(seed)
    items = {}
    for name, build in PROBES.items():
        rng = random.Random(f"directions-{split}-{seed}-{name}")
        items[name] = [
            build(world, DOMAINS[i % len(DOMAINS)].name, templates[i % len(templates)], rng)
            for i in range(per_probe)
        ]
    return items
