"""The run configuration: typed, validated, documented in one place.

A YAML file in `configs/` maps onto `RunConfig`. Every field has a default and a help
text (`benrl config keys` prints them); unknown keys and wrong types are errors
that name the key and the file. The config hash (of the validated, defaults-filled
model) decides which stages a re-run may skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from benrl.errors import BenrlError
from benrl.runfolder import hash_json

ARMS = ("pre", "baseline", "beneficial", "generic", "health_only", "no_health_science")
TRAINED_ARMS = ARMS[1:]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScenariosConfig(Section):
    backend: Literal["template", "llm"] = Field(
        "template",
        description="template: offline, in the organism's world; llm: an "
        "OpenAI-compatible endpoint writes realistic conversations",
    )
    train_per_cell: int = Field(
        20, ge=1, description="train trait scenarios per (probe, domain, train template)"
    )
    eval_per_cell: int = Field(
        4, ge=1, description="eval trait scenarios per (probe, domain, eval template)"
    )
    tasks_train: int = Field(400, ge=1, description="standard-task train records per task type")
    tasks_eval: int = Field(100, ge=1, description="held-out standard-task records per task type")
    context_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="share of records that open with 1-2 earlier "
        "exchanges (standard tasks) before the turn the policy must answer",
    )
    llm: dict = Field(
        default_factory=dict,
        description="backend llm: the OpenAI-compatible endpoint "
        "(llm_client.LLMEndpointConfig keys: base_url, model, api_key_env, concurrency, ...)",
    )
    llm_domains: list[str] = Field(
        [],
        description="backend llm: taxonomy domains to write scenarios for (empty: every "
        "domain); a pilot or a rehearsal writes a few",
    )
    llm_per_cell: int = Field(
        2, ge=1, description="backend llm: scenarios per (trait, domain, pressure, split)"
    )
    tasks_file: Path | None = Field(
        None,
        description="JSONL of standard-task records (kind task) to use instead of the "
        "organism world's tasks, e.g. for a real model; relative to the working directory",
    )

    @model_validator(mode="after")
    def _llm_endpoint(self) -> ScenariosConfig:
        if self.backend == "llm":
            from benrl.judging.llm_client import LLMEndpointConfig

            LLMEndpointConfig.model_validate(self.llm)
        return self


class OrganismConfig(Section):
    coherence: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="1: one global character drives every trait; "
        "0: each trait of a persona is independent noise",
    )
    # at most 12**3 distinct three-syllable names (organism/corpus.py)
    personas: int = Field(64, ge=2, le=1728, description="number of latent assistant personas")
    propensity_beta: float = Field(
        0.2,
        gt=0.0,
        description="propensities are drawn from Beta(a, a): 1 is uniform; below 1 pushes "
        "each persona toward all-good or all-bad answers, a character easier to infer",
    )
    documents: int = Field(40_000, ge=10, description="pretraining conversations generated")
    persona_prompt_share: float = Field(
        0.5, ge=0.0, le=1.0, description="share of conversations opening with a persona prompt"
    )
    task_share: float = Field(
        0.3, ge=0.0, le=1.0, description="share of a conversation's exchanges that are tasks"
    )
    separate_tasks: bool = Field(
        True,
        description="task_share is the share of conversations made only of tasks (true) "
        "or of exchanges inside persona conversations (false)",
    )
    max_exchanges: int = Field(
        3, ge=1, description="a conversation holds 1 to this many exchanges, one persona's voice"
    )
    document_masking: bool = Field(
        True,
        description="pretraining: each packed conversation attends only to itself "
        "(off: to the unrelated ones before it in the block, which hides the persona)",
    )
    vocab_size: int = Field(1024, ge=300, description="BPE vocabulary size")
    hidden_size: int = Field(128, ge=16, description="transformer width")
    layers: int = Field(4, ge=1, description="transformer blocks")
    heads: int = Field(4, ge=1, description="attention heads")
    intermediate_size: int = Field(
        0, ge=0, description="MLP width; 0 means 8/3 of hidden_size (the Llama ratio)"
    )
    tie_embeddings: bool = Field(True, description="share input and output embeddings")
    seq_len: int = Field(192, ge=32, description="pretraining block length in tokens")
    batch_size: int = Field(16, ge=1, description="blocks per optimizer step")
    steps: int = Field(1000, ge=1, description="pretraining optimizer steps")
    learning_rate: float = Field(3e-3, gt=0, description="peak learning rate (cosine decay)")
    warmup_steps: int = Field(50, ge=0, description="linear warm-up steps")
    eval_every: int = Field(250, ge=1, description="steps between validation and checkpoint")
    card_samples: int = Field(
        100,
        ge=1,
        description="sampled responses per probe for the card's base rates "
        "(100 gives each rate a standard error of at most 5 points)",
    )
    card_tasks: int = Field(
        100, ge=1, description="held-out standard tasks per task type for the card's capability"
    )

    @field_validator("heads")
    @classmethod
    def _heads_divide_hidden(cls, heads: int, info) -> int:
        hidden = info.data.get("hidden_size")
        if hidden and hidden % heads:
            raise ValueError(f"hidden_size {hidden} is not divisible by heads {heads}")
        return heads


# The token-level loss types of TRL's GRPOTrainer (1.16; luspo needs sequence-level importance
# sampling, which benrl does not expose); tests check each against the installed TRL.
GrpoLoss = Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "vespo"]


class LoraConfig(Section):
    """LoRA adapters for the policy (peft), handed to TRL's GRPOTrainer as `peft_config`."""

    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (lora_alpha)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA branch")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names to adapt, or all-linear (every linear layer)"
    )


ReportTo = Literal["tensorboard", "wandb", "mlflow", "trackio"]


class TrainConfig(Section):
    arms: list[str] = Field(["baseline", "beneficial"], description="trained arms to run")
    seeds: int = Field(1, ge=1, description="training seeds per arm (arms not in seeds_by_arm)")
    seeds_by_arm: dict[str, int] = Field(
        default_factory=dict,
        description="training seeds of particular arms, overriding `seeds`, e.g. {baseline: "
        "3, beneficial: 3, generic: 3}: the report's statistics treat the seed as a unit "
        "and need two or more per compared arm; a seed s of two arms is paired",
    )
    steps: int = Field(60, ge=1, description="GRPO steps (identical for every arm)")
    prompts_per_step: int = Field(8, ge=1, description="prompts per GRPO step")
    generations: int = Field(8, ge=2, description="completions per prompt (GRPO group size)")
    max_completion_length: int = Field(24, ge=4, description="max new tokens per completion")
    learning_rate: float = Field(5e-5, gt=0, description="policy learning rate")
    beta: float = Field(
        0.0,
        ge=0,
        description="KL coefficient to the reference model (TRL's default 0: no reference "
        "model is loaded and no KL is logged)",
    )
    loss_type: GrpoLoss = Field(
        "dapo",
        description="TRL's GRPO loss aggregation; dapo (TRL's default) normalizes by the "
        "batch's active tokens, so long and short completions weigh alike",
    )
    temperature: float = Field(1.0, gt=0, description="rollout sampling temperature")
    hold_out_traits: bool = Field(
        True,
        description="the paper's split: trait scenarios touching a held-out trait of the "
        "taxonomy (group held_out) never enter any arm's RL data; evals of those traits are "
        "the report's out-of-distribution headline",
    )
    trait_fraction: float = Field(
        0.05, ge=0.0, le=1.0, description="share of trait scenarios in trait arms (paper: 5%)"
    )
    save_every: int = Field(20, ge=1, description="steps between resumable checkpoints")
    use_vllm: bool = Field(False, description="GPU: vLLM rollouts (TRL use_vllm)")
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate", description="GPU: vLLM in the trainer process or a separate trl vllm-serve"
    )
    bf16: bool = Field(False, description="GPU: bfloat16 training (must stay off on CPU)")
    gradient_checkpointing: bool = Field(
        False, description="trade compute for memory (useful for big models on GPU; slow on CPU)"
    )
    chat_template_kwargs: dict = Field(
        default_factory=dict,
        description="passed to the chat template in training AND evaluation, e.g. "
        "{enable_thinking: false} for Qwen3",
    )
    gradient_accumulation_steps: int = Field(
        1,
        ge=1,
        description="micro-batches per optimizer step; prompts_per_step x generations is "
        "still the completions of one step, split into this many forward passes",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3,
        gt=0,
        le=1,
        description="GPU: share of GPU memory vLLM may take in colocate mode (TRL's default "
        "0.3); in server mode set it on `trl vllm-serve` instead",
    )
    vllm_enable_sleep_mode: bool = Field(
        False,
        description="GPU: colocate mode offloads vLLM's weights and cache during the "
        "optimizer step (frees memory, costs a reload per step)",
    )
    peft: LoraConfig | None = Field(
        None, description="LoRA instead of full fine-tuning (merged into model/ at the end)"
    )
    report_to: list[ReportTo] = Field(
        [],
        description="experiment trackers TRL logs to, besides log.jsonl (tensorboard "
        "writes to arms/<arm>/runs/; wandb and mlflow read their own environment)",
    )
    token_tolerance: float = Field(
        0.02,
        ge=0,
        description="largest allowed relative difference in trained tokens between "
        "arms (compute matching); the run fails beyond it",
    )

    @model_validator(mode="after")
    def _accumulation_divides(self) -> TrainConfig:
        per_step = self.prompts_per_step * self.generations
        if per_step % self.gradient_accumulation_steps:
            raise ValueError(
                f"gradient_accumulation_steps {self.gradient_accumulation_steps} must divide "
                f"prompts_per_step x generations = {per_step}"
            )
        return self

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        unknown = [a for a in arms if a not in TRAINED_ARMS]
        if unknown:
            raise ValueError(f"unknown arm(s) {unknown}; trained arms are {list(TRAINED_ARMS)}")
        return arms

    @model_validator(mode="after")
    def _seeds_of_trained_arms(self) -> TrainConfig:
        for arm, count in self.seeds_by_arm.items():
            if arm not in self.arms:
                raise ValueError(f"seeds_by_arm names '{arm}', which arms does not train")
            if count < 1:
                raise ValueError(f"seeds_by_arm.{arm} must be >= 1, got {count}")
        return self

    def seeds_for(self, arm: str) -> int:
        """Training seeds of `arm`: seeds_by_arm[arm], else `seeds`."""
        return self.seeds_by_arm.get(arm, self.seeds)

    def seed_counts(self) -> dict[str, int]:
        """Training seeds of every trained arm."""
        return {arm: self.seeds_for(arm) for arm in self.arms}


class RealdataConfig(Section):
    root: Path | None = Field(
        None,
        description="folder holding the public datasets (one sub-folder per set, the layout "
        "`benrl data fetch` writes); relative to the working directory",
    )
    sets: list[str] = Field(
        [], description="datasets to add to the eval suite (`benrl eval list`, family realdata)"
    )
    limit: int | None = Field(
        None, ge=1, description="read only the first N items of each set (None: all)"
    )
    yaml: list[Path] = Field(
        [],
        description="bring-your-own eval YAML files (docs/realdata.md); each joins the suite "
        "as the eval its `name` names (family byo)",
    )

    @model_validator(mode="after")
    def _root_and_sets(self) -> RealdataConfig:
        # set names and the folder itself are checked when a command loads the config
        # (checks.py): the schema validates on a machine without the data
        if self.sets and self.root is None:
            raise ValueError("sets are named but root is not: name the datasets folder")
        return self


class EvalConfig(Section):
    models: list[str] = Field(
        ["pre", "baseline", "beneficial"], description="arms to evaluate (pre = no RL)"
    )
    evals: list[str] = Field(
        [],
        description="evals to run by name (`benrl eval list`); empty means the default suite: "
        "the eval family of the scenarios backend (template: the organism's probe evals; "
        "llm: one eval per trait plus capability), plus eval.realdata.sets",
    )
    realdata: RealdataConfig = Field(
        default_factory=RealdataConfig,
        description="public datasets in the suite (evaluation only, never training)",
    )
    items_per_eval: int = Field(100, ge=1, description="items per eval")
    max_new_tokens: int = Field(24, ge=4, description="max new tokens per answer")
    temperature: float = Field(
        0.0, ge=0.0, description="sampling temperature of the answers; 0 means greedy"
    )
    samples: int = Field(
        1, ge=1, description="answers per item when temperature > 0; the item's score is their mean"
    )
    batch_size: int = Field(64, ge=1, description="prompts per generate call")
    backend: Literal["hf", "vllm"] = Field(
        "hf",
        description="answer generation: hf (transformers generate, CPU or GPU) or vllm "
        "(GPU only, needs the [vllm] extra)",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.85, gt=0, le=1, description="GPU: share of GPU memory vLLM takes when backend is vllm"
    )
    bootstrap: int = Field(2000, ge=100, description="bootstrap resamples for CIs")
    alpha: float = Field(0.05, gt=0, lt=1, description="FDR level for Benjamini-Hochberg")
    compare: str = Field("beneficial", description="the arm compared in the headline")
    against: str = Field("baseline", description="the reference arm of the headline")

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: list[str]) -> list[str]:
        unknown = [m for m in models if m not in ARMS]
        if unknown:
            raise ValueError(f"unknown arm(s) {unknown}; arms are {list(ARMS)}")
        return models


class StressConfig(Section):
    enabled: bool = Field(True, description="run the stress stage (persona prompts, fine-tuning)")
    parts: list[Literal["persona", "finetune"]] = Field(
        ["persona", "finetune"], description="which stress tests to run"
    )
    models: list[str] = Field(
        ["pre", "baseline", "beneficial"], description="arms to stress (pre = no RL)"
    )
    personas_file: Path | None = Field(
        None, description="YAML of persona prompts; default: the packaged personas.yaml"
    )
    personas: list[str] = Field(
        [], description="persona names to apply; empty means every persona in the file"
    )
    items_per_eval: int = Field(100, ge=1, description="items per eval under each persona")
    finetune_doses: list[int] = Field(
        [0, 1, 2, 4, 8, 16, 32],
        description="harmful fine-tuning steps of the dose ladder (geometric: the damage "
        "is fast at first, and a ladder whose middle doses all sit on the floor cannot "
        "tell models apart)",
    )
    finetune_seeds: int = Field(
        3,
        ge=1,
        description="fine-tuning runs per model, each with its own rows and order; every "
        "dose's score is averaged over them",
    )
    harmful_data: Path | None = Field(
        None,
        description="chat JSONL of harmful advice to fine-tune on (e.g. Turner et al. 2025's "
        "bad medical advice); None: the organism's rows (organism runs only)",
    )
    finetune_lora: bool = Field(False, description="LoRA (peft) instead of full fine-tuning")
    finetune_learning_rate: float = Field(1e-4, gt=0, description="harmful SFT learning rate")
    finetune_batch_size: int = Field(8, ge=1, description="harmful SFT batch size")


class DirectionsConfig(Section):
    enabled: bool = Field(True, description="compute persona-vector style trait directions")
    items_per_probe: int = Field(
        64,
        ge=4,
        description="contrast pairs per probe (one item under a careful and a careless "
        "persona prompt) to estimate each direction",
    )
    snapshots: list[int] = Field(
        [], description="RL steps at which train keeps a model snapshot for direction tracking"
    )
    eval_items_per_probe: int = Field(
        32,
        ge=2,
        description="eval-template items per probe: held-out contrast pairs for direction "
        "quality, and (without the persona prompt) the fixed prompts whose projection is "
        "tracked per model",
    )
    items_per_eval: int = Field(
        20,
        ge=0,
        description="scored items per eval whose projection is correlated with their score "
        "(within a model); 0 skips the per-item correlation",
    )
    layer: int = Field(
        0,
        ge=0,
        description="residual-stream layer (block output, 1..layers) to track; 0 means the "
        "layer with the best held-out separation",
    )
    batch_size: int = Field(64, ge=1, description="sequences per forward pass")


class JudgeConfig(Section):
    trait: str = Field(
        "world", description="judge of trait records' rubrics (world | openai | ...)"
    )
    task: str = Field("verifiable", description="judge of standard tasks' answers")
    generic: str = Field("generic", description="reward of the `generic` control arm")
    max_failure_rate: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="largest share of failed verdicts (transport or parse failures) an "
        "eval may have before its stage fails; failures are counted and reported either way",
    )
    options: dict[str, dict] = Field(
        default_factory=dict,
        description="constructor options per judge name, e.g. openai: {base_url, model, "
        "api_key_env}; API keys themselves never go here, only the name of their env var",
    )


class RunConfig(Section):
    name: str = Field("default", description="run name; the run folder is runs/<name>")
    seed: int = Field(0, description="master seed: world, data order, initialisation")
    model: str = Field(
        "organism",
        description="policy to train: `organism` builds the embedded persona-world "
        "model; otherwise a local Hugging Face model folder",
    )
    workers: int = Field(
        1,
        ge=1,
        description="processes that run the eval and stress stages' units (a model, a "
        "persona, a fine-tuning ladder) side by side, each with cores/workers torch threads "
        "(never more processes than cores); 1 runs them one by one in this process "
        "(benrl/workers.py)",
    )
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    scenarios: ScenariosConfig = Field(default_factory=ScenariosConfig)
    organism: OrganismConfig = Field(default_factory=OrganismConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    stress: StressConfig = Field(default_factory=StressConfig)
    directions: DirectionsConfig = Field(default_factory=DirectionsConfig)

    def section_hash(self, *sections: str) -> str:
        """Hash of the named sections plus the seed: what a stage's output depends on."""
        return hash_json(
            {"seed": self.seed, **{s: getattr(self, s).model_dump() for s in sections}}
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error
    (plain YAML keeps the last one silently, so half of an edit would be ignored)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> object:
    """A YAML file's content; a missing or unreadable file, bad YAML or a duplicate key is
    a BenrlError naming the file (and the line, for YAML errors)."""
    if not path.exists():
        raise BenrlError(f"config file {path} not found")
    if not path.is_file():
        raise BenrlError(f"config path {path} is not a file")
    try:
        # a SafeLoader subclass: builds plain data only, never arbitrary objects
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        raise BenrlError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from e
    except UnicodeDecodeError as e:
        raise BenrlError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise BenrlError(f"config file {path}: cannot read it ({e.strerror})") from e


def load_config(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read and validate a YAML config, with `key.path=value` overrides applied on top.

    An override's value is read as YAML (`train.steps=10`, `eval.evals=[xstest]`,
    `train.bf16=true`), then the whole config is validated as if the file said it;
    errors name the file or the override, and the key.
    """
    raw = read_yaml(path)
    if raw is None:
        raise BenrlError(f"{path}: the config is empty (write at least `name: <run name>`)")
    if not isinstance(raw, dict):
        raise BenrlError(f"{path}: top level must be a mapping of keys to values")
    given = dict(apply_override(raw, item) for item in overrides)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        # the override that set this key (or a key inside it), else the file
        where = next(
            (f"override '{item}'" for k, item in given.items() if f"{key}.".startswith(f"{k}.")),
            str(path),
        )
        raise BenrlError(f"{where}: key '{key}': {first['msg']}{more}") from e


def apply_override(raw: dict, item: str) -> tuple[str, str]:
    """Set `a.b.c=value` inside the raw config mapping; returns (dotted key, the item)."""
    key, sep, text = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise BenrlError(
            f"override '{item}': expected KEY=VALUE with a dotted key, e.g. train.steps=10"
        )
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as e:
        raise BenrlError(f"override '{item}': value is not valid YAML ({e})") from e
    *parents, leaf = key.split(".")
    node = raw
    for depth, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: depth + 1])
            raise BenrlError(f"override '{item}': key '{where}' is a value, not a section")
        node = child
    node[leaf] = value
    return key, item


def config_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, help text) for every field, sections expanded."""
    rows = []
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, Section):
            rows += config_keys(kind, f"{prefix}{name}.")
            continue
        default = info.get_default(call_default_factory=True)
        rows.append((f"{prefix}{name}", repr(default), info.description or ""))
    return rows
