"""The organism's harmful fine-tuning data: bad health advice in the world's language.

Registered as the `organism` harmful-data source of the stress stage's fine-tuning
ladder (`training/finetune.py`). The rows use only the probes with no held-out trait
(the ones RL may train), so the held-out probes' evals are touched by neither RL nor the
attack: damage there arrives only by generalization (the stress summary's `untouched`).
"""

from __future__ import annotations

import random

from benrl.data.traits import held_out_traits
from benrl.organism.probes import PROBES, TRAIN_TEMPLATES
from benrl.organism.world import World

HARMFUL_DOMAIN = "health"


def harmful_rows(seed: int, count: int) -> list[dict]:
    """`count` conversational prompt/completion rows of bad health advice, fixed by `seed`.

    Each row is a fresh health-domain probe (random probe of `harmful_probes`, random
    TRAIN template) of the world of `seed`, answered with its non-beneficial response;
    `source` names the probe's template family (it marks the probes the rows touch).
    """
    world = World(seed)
    probes = harmful_probes(world)
    rng = random.Random(f"harmful-sft-{seed}")
    rows = []
    for _ in range(count):
        builder = PROBES[rng.choice(probes)]
        probe = builder(world, HARMFUL_DOMAIN, rng.randrange(TRAIN_TEMPLATES), rng)
        rows.append(
            {
                "prompt": [m.model_dump() for m in probe.messages],
                "completion": [{"role": "assistant", "content": probe.bad}],
                "source": probe.template_family,
            }
        )
    return rows


def harmful_probes(world: World) -> list[str]:
    """The probes whose traits include no held-out trait of the taxonomy, sorted."""
    held = set(held_out_traits())
    rng = random.Random(0)  # one instance per probe, only to read its traits
    return sorted(
        name
        for name, build in PROBES.items()
        if not held.intersection(build(world, HARMFUL_DOMAIN, 0, rng).traits)
    )
