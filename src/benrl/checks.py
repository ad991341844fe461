"""Checks of a config against the registries and the files it names, before any stage runs.

The config model (`config.py`) checks types and ranges of single keys; what needs the
registries (judges, evals), files (personas, a model folder), the environment (API-key
variables) or several keys at once (eval.compare against eval.models, the directions
layer against the model's depth) is checked here, when a command loads its config, so
a typo fails in a second instead of after the organism build and training.
`check_endpoints` (a network round trip) runs with `benrl run --check` and before the
first stage that grades anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from benrl.config import RunConfig
from benrl.data.chat_jsonl import check_chat_jsonl
from benrl.data.realdata import list_realdata
from benrl.errors import BenrlError
from benrl.evaluation.registry import eval_names
from benrl.evaluation.suites import realdata_records, register_byo
from benrl.judging.llm_client import Failure, LLMClient, LLMEndpointConfig
from benrl.judging.registry import get_judge, judge_options, known_judges

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


def check_config(cfg: RunConfig, where: str = "config") -> None:
    """Everything any stage will need from the config, checked without running a stage."""
    try:
        _check_model(cfg)  # first: a wrong model path explains the errors that would follow
    except BenrlError as e:
        raise BenrlError(f"{where}: {e}") from None
    check_names(cfg, where)
    for check in (_check_arms, _check_stress, _check_directions, _check_judges, _check_workers):
        try:
            check(cfg)
        except BenrlError as e:
            raise BenrlError(f"{where}: {e}") from None


def used_judges(cfg: RunConfig) -> list[str]:
    """The judge names the stages will build: trait and task, and generic for its arm."""
    names = [cfg.judge.trait, cfg.judge.task]
    if "generic" in cfg.train.arms:
        names.append(cfg.judge.generic)
    return list(dict.fromkeys(names))


def _check_arms(cfg: RunConfig) -> None:
    trained = {"pre", *cfg.train.arms}
    for key, arms in (("eval.models", cfg.eval.models), ("stress.models", cfg.stress.models)):
        if key == "stress.models" and not cfg.stress.enabled:
            continue
        missing = [m for m in arms if m not in trained]
        if missing:
            raise BenrlError(f"key '{key}' names {missing}, which train.arms does not train")
    for key in ("compare", "against"):
        arm = getattr(cfg.eval, key)
        if arm not in cfg.eval.models:
            raise BenrlError(
                f"key 'eval.{key}': '{arm}' is not evaluated (eval.models: {cfg.eval.models})"
            )
    if cfg.eval.compare == cfg.eval.against:
        raise BenrlError(f"keys 'eval.compare' and 'eval.against' are both '{cfg.eval.compare}'")


def _check_workers(cfg: RunConfig) -> None:
    """vLLM takes the whole GPU from one process: its units cannot run side by side."""
    if cfg.workers > 1 and cfg.eval.backend == "vllm":
        raise BenrlError(
            f"key 'workers' is {cfg.workers} with eval.backend vllm, which holds the GPU in "
            "one process: set workers: 1"
        )


def _check_stress(cfg: RunConfig) -> None:
    from benrl.data.personas import PERSONAS_FILE, choose_personas, load_personas

    if not cfg.stress.enabled:
        return
    if "persona" in cfg.stress.parts:
        path = cfg.stress.personas_file or PERSONAS_FILE
        try:
            choose_personas(load_personas(path), cfg.stress.personas, cfg.model != "organism", path)
        except BenrlError as e:
            raise BenrlError(f"key 'stress.personas': {e}") from None
    if "finetune" in cfg.stress.parts and any(d < 0 for d in cfg.stress.finetune_doses):
        raise BenrlError(
            f"key 'stress.finetune_doses': doses are steps >= 0, got {cfg.stress.finetune_doses}"
        )


def model_layers(cfg: RunConfig) -> int | None:
    """Transformer blocks of the policy: the organism's config, or the HF model's config.json."""
    if cfg.model == "organism":
        return cfg.organism.layers
    path = Path(cfg.model) / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # _check_model reports a missing model folder
    layers = data.get("num_hidden_layers", data.get("n_layer"))
    return layers if isinstance(layers, int) else None


def _check_directions(cfg: RunConfig) -> None:
    if not cfg.directions.enabled:
        return
    layers = model_layers(cfg)
    if layers is not None and cfg.directions.layer > layers:
        raise BenrlError(
            f"key 'directions.layer': {cfg.directions.layer} is past the model's "
            f"{layers} layers (1..{layers}, or 0 for the best)"
        )
    bad = [s for s in cfg.directions.snapshots if not 1 <= s <= cfg.train.steps]
    if bad:
        raise BenrlError(
            f"key 'directions.snapshots': steps {bad} are outside 1..{cfg.train.steps} "
            "(train.steps)"
        )


def _check_model(cfg: RunConfig) -> None:
    if cfg.model == "organism":
        return
    if not (Path(cfg.model) / "config.json").is_file():
        raise BenrlError(
            f"key 'model': {cfg.model} is not a local Hugging Face model folder (no config.json)"
        )


def _check_judges(cfg: RunConfig) -> None:
    """Build every judge the stages will use: its options and API-key variable are checked."""
    for name in used_judges(cfg):
        try:
            get_judge(name, **judge_options(name, cfg.judge.options))
        except BenrlError as e:
            raise BenrlError(f"key 'judge.options.{name}': {e}") from None
        except TypeError as e:
            raise BenrlError(f"key 'judge.options.{name}': {e}") from None


def check_endpoints(cfg: RunConfig) -> None:
    """One test request to every model endpoint the run talks to: the scenario writer's
    (backend llm) and each used judge's (judges with a `preflight` method)."""
    if cfg.scenarios.backend == "llm":
        ping_endpoint(LLMEndpointConfig.model_validate(cfg.scenarios.llm), "scenarios.llm")
    for name in used_judges(cfg):
        judge = get_judge(name, **judge_options(name, cfg.judge.options))
        preflight = getattr(judge, "preflight", None)
        if preflight is not None:
            preflight()


def ping_endpoint(endpoint: LLMEndpointConfig, key: str) -> None:
    try:
        answer = LLMClient(endpoint).complete_many([[{"role": "user", "content": "Reply: ok"}]])
    except BenrlError as e:  # an unset API-key variable
        raise BenrlError(f"key '{key}': {e}") from None
    if isinstance(answer[0], Failure):
        raise BenrlError(
            f"key '{key}': the test request to model '{endpoint.model}' at {endpoint.base_url} "
            f"failed: {answer[0].kind}: {answer[0].reason}"
        )
