"""Which evals are out of distribution for a run: the paper's train / held-out trait split.

The paper trains on scenarios of some traits and reads its headline off evals of the
others. With `train.hold_out_traits` on, no arm's RL data holds a trait scenario that
touches a held-out trait of the taxonomy (`data/traits.py`, group `held_out`), so:

- `ood`: an eval of a held-out trait (any of its traits is held out), or a public or
  bring-your-own dataset (never trained on by construction): the headline;
- `in_distribution`: a trait eval whose traits were all trained (on templates or
  wordings the arms never saw, but the same behaviours);
- `capability`: the standard tasks.

With the split off every trait eval is in distribution, and only the public sets are OOD.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from benrl.data.traits import held_out_traits
from benrl.evaluation.registry import Eval

if TYPE_CHECKING:
    from benrl.config import RunConfig, TrainConfig

Distribution = Literal["ood", "in_distribution", "capability"]
UNTRAINED_FAMILIES = ("realdata", "byo")


def held_out(cfg: RunConfig) -> frozenset[str]:
    """The traits no arm trains on in this run (empty with `train.hold_out_traits` off)."""
    return held_out_in_training(cfg.train)


def held_out_in_training(train: TrainConfig) -> frozenset[str]:
    """The traits the training config keeps out of every arm's RL data."""
    return frozenset(held_out_traits()) if train.hold_out_traits else frozenset()


def touches(traits: list[str], held: frozenset[str]) -> bool:
    """Whether a record or eval with these traits belongs to the held-out side."""
    return bool(held.intersection(traits))


def distribution(ev: Eval, held: frozenset[str]) -> Distribution:
    """Where an eval stands relative to the run's RL data."""
    if ev.family in UNTRAINED_FAMILIES:
        return "ood"
    if ev.judge == "task" or ev.category == "capability":
        return "capability"
    return "ood" if touches(ev.traits, held) else "in_distribution"
