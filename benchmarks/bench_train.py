"""Benchmark: benrl's GRPO arm vs bare TRL GRPOTrainers on the same model and data.

    python benchmarks/bench_train.py RUN_DIR [STEPS]

RUN_DIR is a finished run folder (its organism and scenarios are used). Measures, in one
process so every side sees the same machine load:

- seconds per GRPO step of `benrl.train.train_arm` (mixture, judges, logging callbacks,
  `SharedPromptGRPOTrainer`) against a bare `GRPOTrainer` with the same GRPOConfig and a
  trivial reward, both timed from model load to saved model (< 1: the shared prompt
  pass and the decode loop are faster than TRL's own code; it was 1.03 before them);
- the reward path's share of benrl's step: time in `_calculate_rewards` (the world
  judge, through `benrl.training.rewards`) over the arm's time (goal: <= 5%);
- seconds per trained prompt of `train_arm` against a bare `GRPOTrainer` with TRL's
  default settings (only the task's shape set: 8 generations of at most
  `max_completion_length` tokens; TRL's batch of 8 completions, activation
  checkpointing, ...) on the same rows (issue 16's goal: ratio <= 0.25);
- rollout tokens/s of TRL's generation inside the step (completion tokens / step time
  is not generation alone, so we time `benrl.generate.generate` and a bare batched
  `model.generate` with KV cache on the same prompts instead; goal: ratio >= 0.5).

Prints the figures and writes them to benchmarks/results/bench_train.json.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from figures import save_figures

from benrl.config import load_config
from benrl.evaluation.generate import generate, load_model
from benrl.records import read_records
from benrl.training.arms import build_mixture
from benrl.training.grpo import SharedPromptGRPOTrainer
from benrl.training.train import _dataset, grpo_args, train_arm

ROUNDS = 2  # timed runs per side, alternating ours / bare


class RewardTimer:
    """Adds up the seconds `SharedPromptGRPOTrainer._calculate_rewards` takes."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.original = SharedPromptGRPOTrainer._calculate_rewards

    def __enter__(self) -> RewardTimer:
        def timed(trainer, *args, **kwargs):
            started = time.perf_counter()
            try:
                return self.original(trainer, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        SharedPromptGRPOTrainer._calculate_rewards = timed
        return self

    def __exit__(self, *exc) -> None:
        SharedPromptGRPOTrainer._calculate_rewards = self.original


def bare_grpo_seconds(cfg, model_dir: Path, rows, out: Path) -> float:
    """Load, train and save with a bare GRPOTrainer: the same work train_arm does."""
    from trl import GRPOConfig, GRPOTrainer

    started = time.perf_counter()
    model, tokenizer = load_model(model_dir)

    trainer = GRPOTrainer(
        model=model,
        args=GRPOConfig(**grpo_args(cfg, 0, out, True)),
        processing_class=tokenizer,
        train_dataset=_dataset(rows),
        reward_funcs=[_constant_reward],
    )
    trainer.train()
    trainer.save_model(str(out / "model"))
    return (time.perf_counter() - started) / cfg.steps


def trl_default_seconds_per_prompt(cfg, model_dir: Path, rows, out: Path, prompts: int) -> float:
    """Train on `prompts` rows with TRL's default GRPOConfig (the task's shape aside)."""
    from trl import GRPOConfig, GRPOTrainer

    started = time.perf_counter()
    model, tokenizer = load_model(model_dir)
    args = GRPOConfig(
        output_dir=str(out),
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        num_generations=cfg.generations,
        max_completion_length=cfg.max_completion_length,
    )
    args.max_steps = prompts * cfg.generations // args.per_device_train_batch_size
    trainer = GRPOTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        train_dataset=_dataset(rows[:prompts]),
        reward_funcs=[_constant_reward],
    )
    trainer.train()
    trainer.save_model(str(out / "model"))
    return (time.perf_counter() - started) / prompts


def _constant_reward(completions, **kwargs):
    return [float(len(str(c)) % 2) for c in completions]


def rollout_rates(model_dir: Path, rows, max_new_tokens: int) -> dict[str, float]:
    model, tokenizer = load_model(model_dir)
    prompts = [r.messages for r in rows]
    started = time.perf_counter()
    outs = generate(model, tokenizer, prompts, max_new_tokens, temperature=1.0, batch_size=64)
    ours = time.perf_counter() - started
    ours_tokens = sum(len(tokenizer(o[0])["input_ids"]) for o in outs)

    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template(
            [m.model_dump() for m in p], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    started, bare_tokens = time.perf_counter(), 0
    for i in range(0, len(texts), 64):
        batch = tokenizer(
            texts[i : i + 64], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        bare_tokens += int((new != tokenizer.pad_token_id).sum())
    bare = time.perf_counter() - started
    return {"ours_tokens_per_s": ours_tokens / ours, "bare_tokens_per_s": bare_tokens / bare}


def main() -> None:
    run_dir = Path(sys.argv[1])
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    cfg = load_config(Path("configs/default.yaml"))
    train_cfg = cfg.train.model_copy(update={"steps": steps, "save_every": 10_000})
    records = read_records(run_dir / "scenarios" / "train.jsonl")
    model_dir = run_dir / "organism" / "model"
    rows = build_mixture(
        records, "beneficial", steps * train_cfg.prompts_per_step, train_cfg.trait_fraction, 0
    )
    ours_runs, bare_runs, reward_seconds = [], [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        # Untimed warm-up: the first trainer in a process pays for imports and caches.
        bare_grpo_seconds(train_cfg.model_copy(update={"steps": 1}), model_dir, rows, Path(tmp))
        for round_no in range(ROUNDS):  # alternate, so drifting machine load hits both
            started = time.perf_counter()
            out = Path(tmp) / f"ours-{round_no}"
            with RewardTimer() as rewards:
                train_arm("beneficial", 0, train_cfg, cfg.judge, records, model_dir, out)
            ours_runs.append((time.perf_counter() - started) / steps)
            reward_seconds += rewards.seconds
            bare_runs.append(bare_grpo_seconds(train_cfg, model_dir, rows, Path(tmp) / "bare"))
        # TRL's defaults train one prompt per step: time as many prompts as one of our steps.
        default_prompts = train_cfg.prompts_per_step
        default_per_prompt = trl_default_seconds_per_prompt(
            train_cfg, model_dir, rows, Path(tmp) / "default", default_prompts
        )
    ours, bare = sum(ours_runs) / ROUNDS, sum(bare_runs) / ROUNDS
    ours_per_prompt = ours / train_cfg.prompts_per_step
    rates = rollout_rates(model_dir, rows[:256], train_cfg.max_completion_length)
    figures = {
        "steps": steps,
        "ours_seconds_per_step": round(ours, 3),
        "bare_seconds_per_step": round(bare, 3),
        "rounds": ROUNDS,
        "step_time_ratio": round(ours / bare, 3),
        "reward_share_of_step": round(reward_seconds / (sum(ours_runs) * steps), 4),
        "reward_share_goal": 0.05,
        "ours_seconds_per_prompt": round(ours_per_prompt, 4),
        "trl_default_seconds_per_prompt": round(default_per_prompt, 4),
        "trl_default_prompts_timed": default_prompts,
        "per_prompt_ratio_vs_trl_default": round(ours_per_prompt / default_per_prompt, 3),
        "per_prompt_goal": 0.25,
        **{k: round(v, 1) for k, v in rates.items()},
        "rollout_ratio": round(rates["ours_tokens_per_s"] / rates["bare_tokens_per_s"], 3),
    }
    save_figures("bench_train", figures)


if __name__ == "__main__":
    main()
