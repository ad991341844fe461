"""Checks of a config against the registries, run when a command loads its config.

The config model (`config.py`) checks types and ranges; names that only the registries
know (judges, evals) are checked here, before any stage runs, so a typo fails in a
second instead of after the organism build and training.
"""

from __future__ import annotations

from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.evaluation.registry import eval_names
from benrl.judging.registry import known_judges


def check_names(cfg: RunConfig, where: str = "config") -> None:
    """Every judge and eval the config names is registered; errors name the key."""
    judges = known_judges()
    for key in ("trait", "task", "generic"):
        name = getattr(cfg.judge, key)
        if name not in judges:
            raise BenrlError(
                f"{where}: key 'judge.{key}': unknown judge '{name}' (known: {', '.join(judges)})"
            )
    for name in cfg.judge.options:
        if name not in judges:
            raise BenrlError(
                f"{where}: key 'judge.options.{name}': unknown judge (known: {', '.join(judges)})"
            )
    try:
        eval_names(cfg.eval.evals)
    except BenrlError as e:
        raise BenrlError(f"{where}: key 'eval.evals': {e}") from None
