"""The train stage: one GRPO run per arm x seed, through TRL's GRPOTrainer.

(`grpo.SharedPromptGRPOTrainer`: TRL's trainer, with a group's prompt run once per step.)

A thin adapter: `TrainConfig` maps onto `trl.GRPOConfig` (`grpo_args`), the arm's
mixture (`arms.py`) becomes a `datasets.Dataset` with a `record_id` column, and the
judges reach TRL through the reward functions of `rewards.py` (one per record kind, so
TRL logs the reward by source). On CPU: `use_cpu=True`, `bf16=False`, no gradient
checkpointing (gradient checkpointing does not pay on a CPU). Optional: LoRA (`train.peft`,
TRL's `peft_config`; the adapters are merged into model/ at the end), experiment
trackers (`train.report_to`; tensorboard logs go to arms/<arm>/tensorboard/).

Compute matching: every arm gets the same steps, prompts per step, generations and
completion length; TRL's shuffling is off so the rows of each step are fixed by the
seed; the tokens each arm actually processed are recorded for the report and checked.
Checkpoints every `save_every` steps let a killed run resume with the same data order.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benrl.config import JudgeConfig, TrainConfig
from benrl.errors import BenrlError
from benrl.evaluation.split import held_out_in_training
from benrl.models import model_id, seed_of
from benrl.records import ScenarioRecord, read_jsonl, read_records
from benrl.run import Run
from benrl.training.arms import arm_spec, batch_composition, build_mixture, rows_per_probe
from benrl.workers import Unit, run_units

LOGGED_KEYS = (
    "reward",
    "reward_std",
    "kl",
    "frac_reward_zero_std",
    "completions/mean_length",
    "num_tokens",
    "loss",
    "learning_rate",
)


def grpo_args(cfg: TrainConfig, seed: int, output_dir: Path, use_cpu: bool) -> dict:
    """TrainConfig -> GRPOConfig keyword arguments (validated against TRL in tests)."""
    return {
        "output_dir": str(output_dir),
        "max_steps": cfg.steps,
        # one optimizer step sees prompts_per_step x generations completions, however split
        "per_device_train_batch_size": cfg.prompts_per_step
        * cfg.generations
        // cfg.gradient_accumulation_steps,
        "num_generations": cfg.generations,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "max_completion_length": cfg.max_completion_length,
        "learning_rate": cfg.learning_rate,
        "beta": cfg.beta,
        "loss_type": cfg.loss_type,
        "temperature": cfg.temperature,
        "shuffle_dataset": False,  # the mixture already fixed the order of rows
        "seed": seed,
        "logging_steps": 1,
        "save_steps": cfg.save_every,
        "save_total_limit": 1,
        "use_cpu": use_cpu,
        "bf16": cfg.bf16 and not use_cpu,
        "activation_checkpointing": cfg.gradient_checkpointing,  # TRL's default (on) is slow on CPU
        "report_to": list(cfg.report_to) or "none",
        "use_vllm": cfg.use_vllm,
        "vllm_mode": cfg.vllm_mode,
        "vllm_gpu_memory_utilization": cfg.vllm_gpu_memory_utilization,
        "vllm_enable_sleep_mode": cfg.vllm_enable_sleep_mode,
        "chat_template_kwargs": cfg.chat_template_kwargs or None,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def peft_config(cfg: TrainConfig):
    """The LoRA config TRL's GRPOTrainer takes as `peft_config`, or None (full fine-tuning)."""
    if cfg.peft is None:
        return None
    from peft import LoraConfig  # lazy: only LoRA runs need peft

    return LoraConfig(
        r=cfg.peft.r,
        lora_alpha=cfg.peft.alpha,
        lora_dropout=cfg.peft.dropout,
        target_modules=cfg.peft.target_modules,
        task_type="CAUSAL_LM",
    )


def _save_policy(trainer, folder: Path) -> None:
    """Save the trained policy as a plain HF model; LoRA adapters are merged in first,
    so evals, stress and export load model/ the same way for either kind of run."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model.merge_and_unload().save_pretrained(str(folder))
    else:
        trainer.save_model(str(folder))


def _tensorboard_into(trainer, folder: Path) -> None:
    """Point TRL's tensorboard logger at `folder` (its default sits inside the checkpoint
    folder, which is deleted when the arm finishes)."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    if trainer.pop_callback(TensorBoardCallback) is not None:
        trainer.add_callback(TensorBoardCallback(SummaryWriter(log_dir=str(folder))))


def _dataset(rows: list[ScenarioRecord]):
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": [m.model_dump() for m in r.messages], "record_id": r.id} for r in rows]
    )


def _log_callback(log_path: Path):
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """Appends every TRL log line (reward by source, KL, tokens) to log.jsonl."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "reward" not in logs:
                return
            row = {"step": state.global_step}
            row.update(
                {k: v for k, v in logs.items() if k in LOGGED_KEYS or k.startswith("rewards/")}
            )
            with log_path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    return JsonlLog()


def _progress_callback(description: str, total: int):
    from rich.progress import Progress
    from transformers import TrainerCallback

    from benrl.progress import CONSOLE

    class RichProgress(TrainerCallback):
        """One rich progress bar per arm, instead of TRL's printed log dicts."""

        def on_train_begin(self, args, state, control, **kwargs):
            # the shared console: a judge's bar during a step stacks below this one
            self.progress = Progress(transient=True, console=CONSOLE)
            self.progress.start()
            self.task = self.progress.add_task(
                description, total=total, completed=state.global_step
            )

        def on_step_end(self, args, state, control, **kwargs):
            self.progress.update(self.task, completed=state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            self.progress.stop()

    return RichProgress()


def _snapshot_callback(folder: Path, steps: list[int]):
    from transformers import TrainerCallback

    class Snapshots(TrainerCallback):
        """Saves the policy at chosen steps (HF format), e.g. to track trait directions."""

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kw):
            if state.global_step in steps and model is not None:
                target = folder / f"step-{state.global_step}"
                model.save_pretrained(str(target))
                if processing_class is not None:
                    processing_class.save_pretrained(str(target))

    return Snapshots()


def train_arm(
    arm: str,
    seed: int,
    cfg: TrainConfig,
    judge_cfg: JudgeConfig,
    records: list[ScenarioRecord],
    base_model: Path,
    out_dir: Path,
    snapshots: list[int] | None = None,
) -> dict:
    """Train one arm from `base_model`; writes model/, log.jsonl, mixture.jsonl.

    `snapshots` lists steps at which the policy is also saved to snapshots/step-<N>/.
    """
    import torch
    from transformers import PrinterCallback
    from trl import GRPOConfig

    from benrl.evaluation.generate import load_model
    from benrl.training.grpo import SharedPromptGRPOTrainer
    from benrl.training.rewards import make_trl_reward_funcs

    held = held_out_in_training(cfg)
    rows = build_mixture(
        records, arm, cfg.steps * cfg.prompts_per_step, cfg.trait_fraction, seed, held
    )
    by_id = {r.id: r for r in rows}
    judges = arm_spec(arm).judges(judge_cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "mixture.jsonl").open("w") as f:
        f.writelines(json.dumps(s) + "\n" for s in batch_composition(rows, cfg.prompts_per_step))

    checkpoints = out_dir / "checkpoints"
    resume = checkpoints.exists() and any(checkpoints.glob("checkpoint-*"))
    truncate_log(out_dir / "log.jsonl", last_checkpoint_step(checkpoints) if resume else 0)
    model, tokenizer = load_model(base_model, for_training=True)
    reward_funcs = make_trl_reward_funcs(
        by_id, judges, judge_cfg.options, max_failure_rate=judge_cfg.max_failure_rate
    )
    torch.manual_seed(seed)
    args = GRPOConfig(**grpo_args(cfg, seed, checkpoints, use_cpu=not torch.cuda.is_available()))
    trainer = SharedPromptGRPOTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        train_dataset=_dataset(rows),
        reward_funcs=reward_funcs,
        callbacks=[_log_callback(out_dir / "log.jsonl")],
        peft_config=peft_config(cfg),
    )
    trainer.remove_callback(PrinterCallback)
    if "tensorboard" in cfg.report_to:
        _tensorboard_into(trainer, out_dir / "tensorboard")
    trainer.add_callback(_progress_callback(f"GRPO {arm} seed {seed}", cfg.steps))
    if snapshots:
        trainer.add_callback(_snapshot_callback(out_dir / "snapshots", snapshots))
    try:
        trainer.train(resume_from_checkpoint=True if resume else None)
    except BenrlError as e:  # a reward function's judge failed too often: name the arm
        raise BenrlError(f"training {arm} seed {seed}: {e}") from None
    _save_policy(trainer, out_dir / "model")
    tokenizer.save_pretrained(str(out_dir / "model"))
    shutil.rmtree(checkpoints, ignore_errors=True)
    summary = summarize_log(out_dir / "log.jsonl", cfg)
    # verdict counts per reward function (a resumed run counts its steps since the resume)
    summary["judge_verdicts"] = {f.kind: dict(f.counts) for f in reward_funcs}
    summary["trait_rows_per_probe"] = rows_per_probe(rows)
    summary["held_out_traits"] = sorted(held)
    return summary


def last_checkpoint_step(checkpoints: Path) -> int:
    return max(int(c.name.split("-")[1]) for c in checkpoints.glob("checkpoint-*"))


def truncate_log(log_path: Path, step: int) -> None:
    """Keep the log lines up to `step`: a resumed run re-logs the steps after its checkpoint."""
    if not log_path.exists():
        return
    lines = [x for x in log_path.read_text().splitlines() if x.strip()]
    kept = []
    for line_no, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if line_no == len(lines):
                break  # the last line, cut by the kill: the resumed steps re-log it
            raise BenrlError(f"{log_path}:{line_no}: not valid JSON ({e.msg})") from e
        if row["step"] <= step:
            kept.append(line)
    log_path.write_text("".join(x + "\n" for x in kept))


def summarize_log(log_path: Path, cfg: TrainConfig) -> dict:
    """Tokens processed and the first/last rewards, for the manifest and the report."""
    rows = read_jsonl(log_path)
    if not rows:
        raise BenrlError(f"{log_path}: training wrote no log lines")
    completions = cfg.prompts_per_step * cfg.generations
    generated = sum(r.get("completions/mean_length", 0.0) * completions for r in rows)

    def window(key: str, part: slice) -> float | None:
        values = [r[key] for r in rows[part] if isinstance(r.get(key), int | float)]
        values = [v for v in values if v == v]  # TRL logs NaN for a source absent in a step
        return round(sum(values) / len(values), 4) if values else None

    tenth = max(1, len(rows) // 10)
    keys = sorted({k for r in rows for k in r if k.startswith("rewards/")} | {"reward"})
    return {
        "steps": rows[-1]["step"],
        "tokens_trained": int(rows[-1].get("num_tokens", 0)),
        "tokens_generated": int(generated),
        "first": {k: window(k, slice(0, tenth)) for k in keys},
        "last": {k: window(k, slice(-tenth, None)) for k in keys},
    }


def check_compute_matched(summaries: dict[str, dict], tolerance: float) -> None:
    """Fail if two trained arms differ by more than `tolerance` in trained tokens."""
    tokens = {arm: s["tokens_trained"] for arm, s in summaries.items()}
    if len(tokens) < 2:
        return
    low, high = min(tokens.values()), max(tokens.values())
    if high and (high - low) / high > tolerance:
        raise BenrlError(
            f"arms are not compute-matched: trained tokens {tokens} differ by "
            f"{(high - low) / high:.1%} (> {tolerance:.0%}, train.token_tolerance)"
        )


# Train fields that say which arms and seeds run, or how they are checked afterwards: one
# arm's training does not depend on them, so adding a seed or an arm reuses what is trained.
NOT_ARM_INPUTS = frozenset({"arms", "seeds", "seeds_by_arm", "token_tolerance"})


def arm_inputs(cfg: TrainConfig, arm: str) -> dict:
    """The train settings one arm's training depends on: part of its stage identity.

    An arm without trait rows ignores the dose, so runs that differ only in
    `trait_fraction` (the dose-response of `benrl organism controls`) share its stage.
    """
    exclude = set(NOT_ARM_INPUTS)
    if not arm_spec(arm).trains_traits:
        exclude.add("trait_fraction")
    return cfg.model_dump(exclude=exclude)


def run_stage(run: Run) -> None:
    """Train every arm of `train.arms` for each of its seeds; check each seed's arms match."""
    records = None
    counts = run.cfg.train.seed_counts()
    stages, units = {}, []
    for seed in range(max(counts.values())):
        for arm in [a for a in run.cfg.train.arms if seed < counts[a]]:
            stage = run.stage(
                f"arms/{model_id(arm, seed)}",
                ("judge",),
                {"scenarios": run.train_records, "base_model": run.base_model},
                extra=[arm, arm_inputs(run.cfg.train, arm), run.cfg.directions.snapshots],
                seed=seed,
            )
            stages[model_id(arm, seed)] = stage
            if run.should_run(stage, "train"):
                records = records or read_records(run.train_records)
                message = (
                    f"training [bold]{arm}[/bold] seed {seed} ({run.cfg.train.steps} GRPO steps)"
                )
                args = (
                    arm,
                    seed,
                    run.cfg.train,
                    run.cfg.judge,
                    records,
                    run.base_model,
                    stage.dir,
                    run.cfg.directions.snapshots,
                )
                units.append(Unit(stage, message, train_unit, args))
    run_units(units, run.cfg.workers)
    summaries = {
        name: summarize_log(stage.dir / "log.jsonl", run.cfg.train)
        for name, stage in stages.items()
    }
    for seed in range(max(counts.values())):
        check_compute_matched(
            {k: v for k, v in summaries.items() if seed_of(k) == seed},
            run.cfg.train.token_tolerance,
        )
    (run.dir / "arms").mkdir(exist_ok=True)
    (run.dir / "arms" / "summary.json").write_text(json.dumps(summaries, indent=2))


def train_unit(figures: dict, *args: object) -> None:
    """One arm x seed (`train_arm`'s arguments), its summary into the stage's manifest."""
    figures["summary"] = train_arm(*args)
