"""Model ids: `pre` (the model before RL) or `<arm>-s<seed>` (one trained arm, one seed).

Every stage that names, finds or groups models goes through these helpers, so the id
format is written down once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

PRE = "pre"


def model_id(arm: str, seed: int) -> str:
    return PRE if arm == PRE else f"{arm}-s{seed}"


def expand(arms: list[str], seeds: int | Mapping[str, int]) -> list[str]:
    """The model ids of `arms` over their training seeds (`pre` has none).

    `seeds` is one count for every arm, or a count per arm (`TrainConfig.seed_counts`).
    """
    ids: list[str] = []
    for arm in arms:
        count = seeds if isinstance(seeds, int) else seeds[arm] if arm != PRE else 1
        ids += [PRE] if arm == PRE else [model_id(arm, s) for s in range(count)]
    return ids


def arm_of(model: str) -> str:
    return PRE if model == PRE else model.rsplit("-s", 1)[0]


def seed_of(model: str) -> int:
    """The training seed of a model id; `pre` counts as seed 0."""
    return 0 if model == PRE else int(model.rsplit("-s", 1)[1])


def model_dir(run_dir: Path, base_model: Path, model: str) -> Path:
    """Where a model's weights live in a run folder (`pre` is the base model)."""
    return base_model if model == PRE else run_dir / "arms" / model / "model"
