"""Checks of a config against the registries, run when a command loads its config.

The config model (`config.py`) checks types and ranges; names that only the registries
know (judges, evals) are checked here, before any stage runs, so a typo fails in a
second instead of after the organism build and training.
"""

from __future__ import annotations

from benrl.config import RunConfig
from benrl.data.chat_jsonl import check_chat_jsonl
from benrl.data.realdata import list_realdata
from benrl.errors import BenrlError
from benrl.evaluation.registry import eval_names
from benrl.evaluation.suites import realdata_records, register_byo
from benrl.judging.registry import known_judges

ORGANISM_GENERIC = "generic"  # the organism's offline generic judge: parses its language


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
    byo = register_byo(cfg)  # before eval names are resolved: eval.evals may name one
    try:
        eval_names(cfg.eval.evals)
    except BenrlError as e:
        raise BenrlError(f"{where}: key 'eval.evals': {e}") from None
    root = cfg.eval.realdata.root
    if cfg.eval.realdata.sets and root is not None and not root.is_dir():
        raise BenrlError(
            f"{where}: key 'eval.realdata.root': {root} is not a folder "
            "(get it with `benrl data fetch`)"
        )
    unknown = [s for s in cfg.eval.realdata.sets if s not in list_realdata()]
    if unknown:
        raise BenrlError(
            f"{where}: key 'eval.realdata.sets': unknown set(s) {unknown} "
            f"(known: {', '.join(list_realdata())})"
        )
    # public datasets load in seconds: a missing file or malformed row fails here, not at eval
    realdata_records(cfg, [*cfg.eval.evals, *cfg.eval.realdata.sets, *byo])
    check_real_model(cfg, where)


def check_real_model(cfg: RunConfig, where: str) -> None:
    """A real model gets real controls: no organism-language reward or fine-tuning rows."""
    if cfg.stress.harmful_data is not None:
        try:
            check_chat_jsonl(cfg.stress.harmful_data)
        except BenrlError as e:
            raise BenrlError(f"{where}: key 'stress.harmful_data': {e}") from None
    if cfg.model == "organism":
        return
    if "generic" in cfg.train.arms and cfg.judge.generic == ORGANISM_GENERIC:
        raise BenrlError(
            f"{where}: key 'judge.generic': '{ORGANISM_GENERIC}' grades the organism's "
            "language and gives a real model's generic arm no signal; use 'helpfulness' "
            "(model-graded, blind to the trait)"
        )
    stress = cfg.stress
    if stress.enabled and "finetune" in stress.parts and stress.harmful_data is None:
        raise BenrlError(
            f"{where}: key 'stress.harmful_data': a real model is fine-tuned on a chat JSONL "
            "of harmful advice (e.g. Turner et al. 2025's bad medical advice); name one, or "
            "drop 'finetune' from stress.parts"
        )
