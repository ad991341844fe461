"""The organism's harmful fine-tuning data: bad health advice in the world's language.

Registered as the `organism` harmful-data source of the stress stage's fine-tuning
ladder (`training/finetune.py`).
"""

from __future__ import annotations

import random

from benrl.organism.probes import PROBES, TRAIN_TEMPLATES
from benrl.organism.world import World

HARMFUL_DOMAIN = "health"


def harmful_rows(seed: int, count: int) -> list[dict]:
    """`count` conversational prompt/completion rows of bad health advice, fixed by `seed`.

    Each row is a fresh health-domain probe (random probe, random TRAIN template) of the
    world of `seed`, answered with its non-beneficial response; `source` names the probe's
    template family (kept for the record, not trained on).
    """
    world = World(seed)
    rng = random.Random(f"harmful-sft-{seed}")
    rows = []
    for _ in range(count):
        builder = PROBES[rng.choice(sorted(PROBES))]
        probe = builder(world, HARMFUL_DOMAIN, rng.randrange(TRAIN_TEMPLATES), rng)
        rows.append(
            {
                "prompt": [m.model_dump() for m in probe.messages],
                "completion": [{"role": "assistant", "content": probe.bad}],
                "source": probe.template_family,
            }
        )
    return rows
