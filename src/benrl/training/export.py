"""`benrl export verl|openrlhf`: an arm's GRPO run as data, reward module and launch script.

On a cluster the RL step runs in verl or OpenRLHF (Ray, vLLM rollouts, FSDP/DeepSpeed)
instead of TRL. An export folder holds everything that engine needs for one arm x seed:

- the arm's mixture rows, in the order `mixture.build_mixture` fixes (the same rows TRL
  would train on), each carrying its scenario record as JSON so the judge can grade it;
- a reward file that imports benrl's face for that engine (`rewards.compute_score` for
  verl, `rewards.reward_func` for OpenRLHF) and sets the arm's judges (the `generic` arm
  grades trait rows with the generic judge);
- `launch.sh` with the exact commands: config values (steps, prompts per step, group
  size, lengths, learning rate, KL) are literal; values that depend on the cluster (nodes,
  GPUs per node, micro batch sizes, memory share) are shell variables in one marked block;
- `README.txt` saying what each file is and what differs from the TRL run.

Formats, checked against the engines' sources (docs/scaling.md):
verl reads parquet rows `data_source, prompt, ability, reward_model{style, ground_truth},
extra_info` and loads the reward from `custom_reward_function.path/.name` (verl up to
0.8.0.dev, 2026-01) or `reward.custom_reward_function.*` (later); launch.sh asks the
installed verl which (`verl_layout.py`) unless `VERL_REWARD_KEY` pins it. OpenRLHF 0.11
reads JSONL prompts
(`--data.input_key`, `--data.label_key`) and takes a reward `.py` file or an HTTP URL in
`--reward.remote_url`; GRPO is `--algo.advantage.estimator group_norm`.
"""

from __future__ import annotations

import json
import os
import pprint
import shlex
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from string import Template

from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.evaluation.split import held_out
from benrl.records import ScenarioRecord, read_records, write_jsonl
from benrl.training.arms import arm_spec, build_mixture
from benrl.training.rewards import JUDGES_ENV, env_grader

TARGETS = ("verl", "openrlhf")
# Chat-template tokens per message and per prompt, on top of the message text (generous).
TEMPLATE_TOKENS_PER_MESSAGE = 16
TEMPLATE_TOKENS_FIXED = 64


# OpenRLHF 0.11 waits at most this long for one remote reward request, and resends it up
# to 5 times (aiohttp ClientTimeout(total=180) in openrlhf/utils/agent.py; no flag sets it).
OPENRLHF_CLIENT_TIMEOUT_S = 180.0


def judge_seconds_bound(options: dict[str, dict], completions: int, criteria: int) -> float:
    """Worst-case seconds a model judge needs to grade `completions` answers of `criteria`
    criteria each: every attempt times out, every retry waits its longest backoff, and a
    malformed verdict is asked again once. 0 when no judge talks to an endpoint."""
    from benrl.judging.openai_judge import OpenAIJudgeConfig

    worst = 0.0
    for opts in options.values():
        if "model" not in opts:  # only endpoint judges wait on the network
            continue
        cfg = OpenAIJudgeConfig(**opts)
        backoffs = sum(min(cfg.max_backoff_s, cfg.backoff_s * 2**k) for k in range(cfg.max_retries))
        chain = 2 * ((cfg.max_retries + 1) * cfg.timeout_s + backoffs)  # x2: one re-ask
        requests = completions * (criteria if cfg.mode == "per_criterion" else 1)
        worst = max(worst, -(-requests // cfg.concurrency) * chain)
    return worst


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote, for the CLI to print."""

    target: str
    out_dir: Path
    rows: int  # training rows: steps x prompts per step
    trait_rows: int
    val_rows: int
    judges: dict[str, str]
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- what every export shares ---------------------------------------------------------


def arm_judge_options(cfg: RunConfig, judges: dict[str, str]) -> dict[str, dict]:
    """The config's `judge.options` for the judges the arm uses (names of key env vars only)."""
    return {
        name: cfg.judge.options[name]
        for name in sorted(set(judges.values()))
        if name in cfg.judge.options
    }


def use_arm_judges(judges: dict[str, str], options: dict[str, dict]) -> None:
    """Point the file-loaded reward faces (verl, OpenRLHF) at an arm's judges.

    The generated reward files call this at import. `rewards.env_grader` reads the
    judges from `BENRL_JUDGES` but takes no judge options, so the options (e.g. the
    `openai` judge's endpoint) are set on its cached grader here.
    """
    os.environ[JUDGES_ENV] = json.dumps(judges, sort_keys=True)
    env_grader.cache_clear()
    env_grader().judge_options.update(options)


def prompt_token_bound(records: list[ScenarioRecord]) -> int:
    """An upper bound on a prompt's tokens after the chat template, rounded up to 64.

    Byte-level tokenizers spend at most one token per UTF-8 byte; the template adds a few
    tokens per message. The engines are told to fail on a longer prompt, never to drop
    or cut it (that would change the arm's rows).
    """
    longest = max(
        sum(len(m.content.encode()) + TEMPLATE_TOKENS_PER_MESSAGE for m in r.messages)
        for r in records
    )
    return -(-(longest + TEMPLATE_TOKENS_FIXED) // 64) * 64


def _split(
    records: list[ScenarioRecord], cfg: RunConfig, arm: str, seed: int
) -> tuple[list[ScenarioRecord], list[ScenarioRecord]]:
    """(training rows of the arm in order, eval-split records)."""
    train = [r for r in records if r.split == "train"]
    evals = [r for r in records if r.split == "eval"]
    t = cfg.train
    rows = build_mixture(
        train, arm, t.steps * t.prompts_per_step, t.trait_fraction, seed, held_out(cfg)
    )
    return rows, evals


def _dq(text: str) -> str:
    """Escape text for the inside of a double-quoted shell string."""
    for char in '\\"$`':
        text = text.replace(char, "\\" + char)
    return text


def _model_path(cfg: RunConfig, model_path: Path | None) -> str:
    """MODEL_PATH's shell value: given, the config's model, or required from the environment."""
    if model_path is None and cfg.model != "organism":
        model_path = Path(cfg.model)
    if model_path is None:
        return '"${MODEL_PATH:?set MODEL_PATH to a local Hugging Face model folder}"'
    return f'"${{MODEL_PATH:-{_dq(str(model_path.resolve()))}}}"'


def _py(value: object) -> str:
    return pprint.pformat(value, sort_dicts=True, width=88)


def _num(value: float) -> str:
    return repr(float(value))


def _write(path: Path, text: str, executable: bool = False) -> Path:
    path.write_text(text)
    if executable:
        path.chmod(0o755)
    return path


def _args(lines: list[str], indent: str = "    ") -> str:
    return " \\\n".join(indent + line for line in lines)


def _render(name: str, **values: object) -> str:
    """Fill the template `templates/NAME` (`string.Template`: `$name` fields, `$$` a `$`)."""
    text = (files("benrl.training") / "templates" / name).read_text()
    return Template(text).substitute(values)


def _reward_file(
    engine: str, face: str, arm: str, cfg: RunConfig, judges: dict, options: dict
) -> str:
    return _render(
        "reward_file.py.tmpl",
        engine=engine,
        face=face,
        arm=arm,
        run=cfg.name,
        judges=_py(judges),
        options=_py(options),
    )


# --- verl -----------------------------------------------------------------------------


def verl_row(record: ScenarioRecord, index: int) -> dict:
    """One verl parquet row. The record's JSON rides in extra_info for `compute_score`."""
    return {
        "data_source": f"benrl/{record.kind}",  # verl groups validation metrics by this
        "prompt": [m.model_dump() for m in record.messages],
        "ability": record.domain,
        "reward_model": {
            "style": "rule",
            # tasks: the verifiable answer; traits: the id (the rubric needs the record)
            "ground_truth": record.answer if record.kind == "task" else record.id,
        },
        "extra_info": {
            "split": record.split,
            "index": index,
            "record_id": record.id,
            "record": record.model_dump_json(exclude_none=True),
        },
    }


def _verl_schema():
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(message)),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            (
                "extra_info",
                pa.struct(
                    [
                        ("split", pa.string()),
                        ("index", pa.int64()),
                        ("record_id", pa.string()),
                        ("record", pa.string()),
                    ]
                ),
            ),
        ]
    )


def _write_parquet(records: list[ScenarioRecord], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [verl_row(r, i) for i, r in enumerate(records)]
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=_verl_schema()), tmp)
    tmp.replace(path)
    return path


def verl_launch(
    cfg: RunConfig, arm: str, seed: int, prompt_tokens: int, model: str, has_eval: bool
) -> str:
    """launch.sh for verl: Ray head, then `ray job submit -- python3 -m verl.trainer.main_ppo`."""
    t = cfg.train
    validation = (
        ['data.val_files="$EXPORT_DIR/val.parquet"', f"trainer.test_freq={t.save_every}"]
        if has_eval
        else ["trainer.val_before_train=False", "trainer.test_freq=-1"]
    )
    overrides = [
        "algorithm.adv_estimator=grpo",
        "algorithm.norm_adv_by_std_in_grpo=True",
        "algorithm.use_kl_in_reward=False",
        'data.train_files="$EXPORT_DIR/train.parquet"',
        f"data.train_batch_size={t.prompts_per_step}",
        f"data.max_prompt_length={prompt_tokens}",
        f"data.max_response_length={t.max_completion_length}",
        "data.shuffle=False",
        "data.filter_overlong_prompts=False",
        "data.truncation=error",
        'actor_rollout_ref.model.path="$MODEL_PATH"',
        f"actor_rollout_ref.actor.optim.lr={_num(t.learning_rate)}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={t.prompts_per_step}",
        "actor_rollout_ref.actor.ppo_epochs=1",
        'actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$MICRO_BATCH_PER_GPU"',
        f"actor_rollout_ref.actor.use_kl_loss={t.beta > 0}",
        f"actor_rollout_ref.actor.kl_loss_coef={_num(t.beta)}",
        "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
        "actor_rollout_ref.actor.entropy_coeff=0",
        "actor_rollout_ref.rollout.name=vllm",
        f"actor_rollout_ref.rollout.n={t.generations}",
        f"actor_rollout_ref.rollout.temperature={_num(t.temperature)}",
        'actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP"',
        'actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION"',
        'actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="$MICRO_BATCH_PER_GPU"',
        'actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu="$MICRO_BATCH_PER_GPU"',
        # the key moved between verl versions; launch.sh detects it (verl_layout.py)
        '"$VERL_REWARD_KEY.path=$EXPORT_DIR/benrl_reward.py"',
        '"$VERL_REWARD_KEY.name=compute_score"',
        *validation,
        "trainer.total_epochs=1",
        f"trainer.total_training_steps={t.steps}",
        f"trainer.save_freq={t.save_every}",
        'trainer.nnodes="$NNODES"',
        'trainer.n_gpus_per_node="$GPUS_PER_NODE"',
        "trainer.project_name=benrl",
        f"trainer.experiment_name={shlex.quote(f'{cfg.name}-{arm}-s{seed}')}",
        "trainer.logger='[\"console\"]'",
        'trainer.default_local_dir="$EXPORT_DIR/checkpoints"',
    ]
    return _render(
        "verl_launch.sh", arm=arm, seed=seed, run=cfg.name, model=model, overrides=_args(overrides)
    )


def export_verl(
    run_cfg: RunConfig,
    records: list[ScenarioRecord],
    arm: str,
    seed: int,
    out_dir: Path,
    model_path: Path | None = None,
) -> ExportResult:
    """train.parquet (the arm's rows), val.parquet (eval split), benrl_reward.py, launch.sh."""
    rows, evals, options, prompt_tokens, result = _prepare(
        "verl", run_cfg, records, arm, seed, out_dir
    )
    judges = result.judges
    result.files.append(_write_parquet(rows, out_dir / "train.parquet"))
    if evals:
        result.files.append(_write_parquet(evals, out_dir / "val.parquet"))
    reward = _reward_file("verl", "compute_score", arm, run_cfg, judges, options)
    launch = verl_launch(
        run_cfg, arm, seed, prompt_tokens, _model_path(run_cfg, model_path), bool(evals)
    )
    readme = _readme_verl(run_cfg, arm, seed, result, prompt_tokens, options)
    result.files.extend(
        [
            _write(out_dir / "benrl_reward.py", reward),
            _write(out_dir / "launch.sh", launch, executable=True),
            _write(out_dir / "README.txt", readme),
        ]
    )
    return result


def _traits(rows: list[ScenarioRecord]) -> int:
    return sum(r.kind == "trait" for r in rows)


def _prepare(
    target: str, cfg: RunConfig, records: list[ScenarioRecord], arm: str, seed: int, out_dir: Path
) -> tuple[list[ScenarioRecord], list[ScenarioRecord], dict[str, dict], int, ExportResult]:
    """What both exports start from: the arm's rows and eval rows, its judges' options,
    the prompt-length bound, and the result to fill in."""
    rows, evals = _split(records, cfg, arm, seed)
    judges = arm_spec(arm).judges(cfg.judge)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(target, out_dir, len(rows), _traits(rows), len(evals), judges)
    return rows, evals, arm_judge_options(cfg, judges), prompt_token_bound(rows + evals), result


def _readme_common(cfg: RunConfig, arm: str, seed: int, result: ExportResult, options: dict) -> str:
    t = cfg.train
    judge_note = (
        f"Judge options baked into the reward file: {sorted(options)} (only the NAMES of\n"
        "API-key environment variables; export those variables on every node)."
        if options
        else "The arm's judges run offline and need no endpoint."
    )
    return _render(
        "README_common.txt",
        arm=arm,
        seed=seed,
        run=cfg.name,
        target=result.target,
        rows=result.rows,
        steps=t.steps,
        prompts_per_step=t.prompts_per_step,
        trait_rows=result.trait_rows,
        trait_fraction=t.trait_fraction,
        val_rows=result.val_rows,
        judges=json.dumps(result.judges, sort_keys=True),
        judge_note=judge_note,
        generations=t.generations,
        max_completion_length=t.max_completion_length,
        learning_rate=t.learning_rate,
        beta=t.beta,
        temperature=t.temperature,
        save_every=t.save_every,
    )


def _readme_verl(
    cfg: RunConfig, arm: str, seed: int, result: ExportResult, prompt_tokens: int, options: dict
) -> str:
    return _readme_common(cfg, arm, seed, result, options) + _render(
        "README_verl.txt", prompt_tokens=prompt_tokens, steps=cfg.train.steps
    )


# --- OpenRLHF -------------------------------------------------------------------------


def openrlhf_row(record: ScenarioRecord) -> dict:
    """One OpenRLHF prompt: chat messages as input (chat template applied by OpenRLHF)."""
    return {
        "input": [m.model_dump() for m in record.messages],
        "label": record.model_dump_json(exclude_none=True),
        "record_id": record.id,
    }


def _reward_server(arm: str, cfg: RunConfig, judges: dict, options: dict) -> str:
    return _render(
        "reward_server.py.tmpl", arm=arm, run=cfg.name, judges=_py(judges), options=_py(options)
    )


def openrlhf_launch(
    cfg: RunConfig, arm: str, seed: int, prompt_tokens: int, rows: int, model: str, has_eval: bool
) -> str:
    """launch.sh for OpenRLHF 0.11 (dotted flags), reward by file or by HTTP server."""
    t = cfg.train
    flags = [
        '--actor.model_name_or_path "$MODEL_PATH"',
        '--reward.remote_url "$REWARD"',
        "--algo.advantage.estimator group_norm",
        '--data.prompt_dataset "$EXPORT_DIR/prompts.jsonl"',
        "--data.input_key input",
        "--data.label_key label",
        "--data.apply_chat_template",
        f"--data.max_len {prompt_tokens + t.max_completion_length}",
        f"--data.max_samples {rows}",
        f"--rollout.batch_size {t.prompts_per_step}",
        f"--rollout.n_samples_per_prompt {t.generations}",
        f"--rollout.max_new_tokens {t.max_completion_length}",
        f"--rollout.temperature {_num(t.temperature)}",
        '--rollout.micro_batch_size "$MICRO_BATCH"',
        f"--train.batch_size {t.prompts_per_step * t.generations}",
        '--train.micro_batch_size "$MICRO_BATCH"',
        "--train.max_epochs 1",
        "--train.num_episodes 1",
        f"--train.seed {seed}",
        f"--actor.adam.lr {_num(t.learning_rate)}",
        f"--algo.kl.init_coef {_num(t.beta)}",
        *(["--algo.kl.use_loss", "--algo.kl.estimator k3"] if t.beta > 0 else []),
        *(
            ['--eval.dataset "$EXPORT_DIR/eval.jsonl"', f"--eval.steps {t.save_every}"]
            if has_eval
            else []
        ),
        f"--ckpt.save_steps {t.save_every}",
        '--ckpt.path "$EXPORT_DIR/checkpoints"',
        '--ckpt.output_dir "$EXPORT_DIR/model"',
        "--ckpt.save_hf",
        "--logger.logging_steps 1",
        '--actor.num_nodes "$NNODES"',
        '--actor.num_gpus_per_node "$GPUS_PER_NODE"',
        '--ref.num_nodes "$NNODES"',
        '--ref.num_gpus_per_node "$GPUS_PER_NODE"',
        '--vllm.num_engines "$VLLM_ENGINES"',
        '--vllm.tensor_parallel_size "$ROLLOUT_TP"',
        '--vllm.gpu_memory_utilization "$GPU_MEMORY_UTILIZATION"',
        "--train.colocate_all",
        "--vllm.enable_sleep",
        "--ds.enable_sleep",
        "--ds.zero_stage 3",
        "--ds.param_dtype bf16",
        "--actor.gradient_checkpointing_enable",
    ]
    return _render(
        "openrlhf_launch.sh", arm=arm, seed=seed, run=cfg.name, model=model, flags=_args(flags)
    )


def export_openrlhf(
    run_cfg: RunConfig,
    records: list[ScenarioRecord],
    arm: str,
    seed: int,
    out_dir: Path,
    model_path: Path | None = None,
) -> ExportResult:
    """prompts.jsonl, eval.jsonl, reward_func.py, reward_server.py, launch.sh, README.txt."""
    rows, evals, options, prompt_tokens, result = _prepare(
        "openrlhf", run_cfg, records, arm, seed, out_dir
    )
    judges = result.judges
    write_jsonl(out_dir / "prompts.jsonl", [openrlhf_row(r) for r in rows])
    result.files.append(out_dir / "prompts.jsonl")
    if evals:
        write_jsonl(out_dir / "eval.jsonl", [openrlhf_row(r) for r in evals])
        result.files.append(out_dir / "eval.jsonl")
    reward = _reward_file("OpenRLHF", "reward_func", arm, run_cfg, judges, options)
    launch = openrlhf_launch(
        run_cfg, arm, seed, prompt_tokens, len(rows), _model_path(run_cfg, model_path), bool(evals)
    )
    criteria = max((len(r.rubric) for r in rows), default=1)
    bound = judge_seconds_bound(
        options, run_cfg.train.prompts_per_step * run_cfg.train.generations, criteria
    )
    if bound > OPENRLHF_CLIENT_TIMEOUT_S:
        result.warnings.append(
            f"remote mode: the judge may need up to {bound:.0f} s for one rollout batch, more "
            f"than OpenRLHF's fixed {OPENRLHF_CLIENT_TIMEOUT_S:.0f} s reward-request timeout; "
            "use file mode (the default), or lower judge.options.<judge>.timeout_s / "
            "max_retries or raise concurrency"
        )
    readme = _readme_openrlhf(run_cfg, arm, seed, result, prompt_tokens, options, bound)
    result.files.extend(
        [
            _write(out_dir / "reward_func.py", reward),
            _write(
                out_dir / "reward_server.py",
                _reward_server(arm, run_cfg, judges, options),
                executable=True,
            ),
            _write(out_dir / "launch.sh", launch, executable=True),
            _write(out_dir / "README.txt", readme),
        ]
    )
    return result


def _readme_openrlhf(
    cfg: RunConfig,
    arm: str,
    seed: int,
    result: ExportResult,
    prompt_tokens: int,
    options: dict,
    judge_bound: float,
) -> str:
    return _readme_common(cfg, arm, seed, result, options) + _render(
        "README_openrlhf.txt",
        prompt_tokens=prompt_tokens,
        judge_bound=f"{judge_bound:.0f}",
        client_timeout=f"{OPENRLHF_CLIENT_TIMEOUT_S:.0f}",
    )


# --- CLI entry ------------------------------------------------------------------------


def export_cli(
    target: str, run_dir: Path, cfg: RunConfig, arm: str, seed: int, out: Path
) -> ExportResult:
    """`benrl export verl|openrlhf`: read the run's scenarios and write the export folder."""
    exporters = {"verl": export_verl, "openrlhf": export_openrlhf}
    if target not in exporters:
        raise BenrlError(f"unknown export target '{target}' (targets: {', '.join(TARGETS)})")
    files = [run_dir / "scenarios" / f"{split}.jsonl" for split in ("train", "eval")]
    for path in files:
        if not path.exists():
            raise BenrlError(
                f"{path} not found: run `benrl run --config <config> --only scenarios` first"
            )
    records = [record for path in files for record in read_records(path)]
    model = run_dir / "organism" / "model" if cfg.model == "organism" else None
    if model is not None and not model.exists():
        model = None  # the launch script then asks for MODEL_PATH
    return exporters[target](cfg, records, arm, seed, out, model_path=model)
