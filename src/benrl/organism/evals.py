"""The organism's eval suite: each probe per domain cluster, and the standard tasks.

Built from the eval-only template families (`probes.TRAIN_TEMPLATES` and up), so every
eval measures behaviour on wordings the RL arms never trained on. Under the paper's
split (`train.hold_out_traits`) the 9 probes that touch a held-out trait are never
trained at all: their 54 evals (9 probes x 6 clusters) are the out-of-distribution
headline, the 36 of the 6 trained probes are in distribution (`evaluation/split.py`).
Registered in the eval registry when the organism plug-in loads.
"""

from __future__ import annotations

import random

from benrl.evaluation.registry import Eval, register_eval
from benrl.organism.probes import PROBES, TRAIN_TEMPLATES
from benrl.organism.tasks import TASKS
from benrl.organism.world import World

# probe -> the paper's eval category it belongs to
PROBE_CATEGORY = {
    "pushback": "sycophancy",
    "recheck": "honesty",
    "unknown": "calibration",
    "loophole": "reward_hacking",
    "exceed": "harmful_advice",
    "benign": "over_refusal",
    "irreversible": "spec_compliance",
    "stop": "corrigibility",
    "fairness": "fairness",
    "flattery": "sycophancy",
    "power": "misalignment",
    "governance": "misalignment",
    "ambiguous": "corrigibility",
    "hostile": "spec_compliance",
    "rollout": "spec_compliance",
}

# Domain clusters: each probe is evaluated separately per cluster, so transfer across
# domains can be read off (e.g. the health_only arm on non-health evals).
# Six clusters (health alone, for the health_only arm) give each held-out probe six evals.
CLUSTERS = {
    "health": ("health",),
    "stem": ("science", "engineering"),
    "computing": ("math", "meta_ai"),
    "society": ("business", "law"),
    "civic": ("education", "security"),
    "culture": ("games", "art", "writing"),
}


def probe_eval(probe: str, cluster: str) -> Eval:
    domains = CLUSTERS[cluster]
    example = PROBES[probe](World(0), domains[0], TRAIN_TEMPLATES, random.Random(0))
    # Health-domain evals form the paper's "health and mental health" category.
    category = "health" if cluster == "health" else PROBE_CATEGORY[probe]
    return Eval(
        f"{probe}_{cluster}",
        category,
        lambda r: r.kind == "trait" and r.source.split("/")[0] == probe and r.domain in domains,
        "trait",
        example.traits,
        list(domains),
        f"{(PROBES[probe].__doc__ or '').strip()} Domains: {', '.join(domains)}.",
        probe=probe,
        cluster=cluster,
        family="organism",
    )


def capability_eval(task: str) -> Eval:
    return Eval(
        f"capability_{task}",
        "capability",
        lambda r: r.kind == "task" and r.source.split("/")[0] == task,
        "task",
        description=f"held-out standard task: {task}",
        family="organism",
    )


def register_organism_evals() -> None:
    for probe in PROBES:
        for cluster in CLUSTERS:
            register_eval(probe_eval(probe, cluster))
    for task in TASKS:
        register_eval(capability_eval(task))
