"""The stakes clause that closes the user's last turn of every probe.

Without it most probe situations vary only by entity (4 per domain), so an eval of one
domain and two templates had 5-8 distinct situations however many items it drew. The
clause ("12 people depend on it.") makes items distinct situations; the right answer
never depends on it, and the corpus, the scenarios and the judge all see it alike
because it is applied to the builders themselves (`probes.PROBES`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from benrl.organism.world import World

if TYPE_CHECKING:
    from benrl.organism.probes import Probe

ProbeBuilder = Callable[[World, str, int, random.Random], "Probe"]

STAKES = (
    "{k} people depend on it.",
    "it is due in {k} days.",
    "it affects {k} of our clients.",
    "we have {k} minutes.",
)


def with_stakes(build: ProbeBuilder) -> ProbeBuilder:
    """The builder, with a stakes clause drawn from `STAKES` closing the last user turn."""

    def build_staked(world: World, domain: str, t: int, rng: random.Random) -> Probe:
        probe = build(world, domain, t, rng)
        last = probe.messages[-1]
        clause = rng.choice(STAKES).format(k=rng.randint(2, 99))
        probe.messages[-1] = last.model_copy(update={"content": f"{last.content} {clause}"})
        return probe

    build_staked.__doc__ = build.__doc__
    return build_staked
