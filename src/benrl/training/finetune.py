"""Harmful fine-tuning for the persistence stress test: a dose ladder of SFT steps.

The attack (the paper's second persistence protocol) fine-tunes a model toward inaccurate,
over-confident medical advice and measures how much of its good behaviour survives. In the
organism's world that advice is the non-beneficial (`.bad`) answer of health-domain probes,
built from TRAIN template families only, so the evals (eval-only templates) measure how the
damage generalizes, not what was memorized. Every attacked model sees the same rows in the
same order for the same steps: the rows are drawn from the run seed, TRL's shuffling is off
and the sampler is sequential.

One run per model trains to the largest dose and saves the model whenever the step count
reaches a dose (a callback), instead of retraining per dose. The learning rate is constant,
so the model saved at dose N is the model that N steps alone would give. Dose 0, always on
the ladder, is the input model saved unchanged. Training goes through TRL's SFTTrainer on
conversational prompt/completion rows (loss on the completion only); on CPU `use_cpu`,
`bf16=False` and no gradient checkpointing (TRL on a CPU); LoRA via peft when
`stress.finetune_lora`, with the adapter merged into each saved dose so every dose folder
loads as a plain model.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from benrl.config import StressConfig
from benrl.errors import BenrlError
from benrl.plugins import Registry

# (seed, count) -> conversational prompt/completion rows of harmful advice
HarmfulData = Callable[[int, int], list[dict]]
HARMFUL_DATA: Registry[HarmfulData] = Registry("harmful fine-tuning data source")
register_harmful_data = HARMFUL_DATA.register
harmful_data = HARMFUL_DATA.get


def dose_dir(out_dir: Path, dose: int) -> Path:
    return out_dir / f"dose-{dose}"


def check_doses(doses: list[int]) -> list[int]:
    """The ladder sorted, deduplicated and with dose 0 (the reference of every degradation)."""
    if any(d < 0 for d in doses):
        raise BenrlError(f"stress.finetune_doses must be steps >= 0, got {doses}")
    return sorted({0, *doses})


def sft_args(cfg: StressConfig, max_steps: int, seed: int, output_dir: Path, use_cpu: bool) -> dict:
    """StressConfig -> trl.SFTConfig keyword arguments."""
    return {
        "output_dir": str(output_dir),
        "max_steps": max_steps,
        "per_device_train_batch_size": cfg.finetune_batch_size,
        "gradient_accumulation_steps": 1,
        "learning_rate": cfg.finetune_learning_rate,
        "lr_scheduler_type": "constant",  # dose N = N steps alone (see the docstring)
        "warmup_steps": 0,
        "train_sampling_strategy": "sequential",  # the rows' order is the data order
        "shuffle_dataset": False,
        "completion_only_loss": True,
        "packing": False,
        "seed": seed,
        "save_strategy": "no",  # doses are saved by the callback
        "logging_steps": 1,
        "use_cpu": use_cpu,
        "bf16": False,
        "activation_checkpointing": False,  # on by default, slow on CPU
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def _save(model, tokenizer, folder: Path) -> None:
    """Save a full model (a LoRA model merged into a copy) and its tokenizer."""
    if hasattr(model, "merge_and_unload"):  # a peft model: keep training the original
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def _dose_callback(doses: set[int], tokenizer, out_dir: Path, losses: list[float]):
    from transformers import TrainerCallback

    class SaveDoses(TrainerCallback):
        """Saves the model at every dose of the ladder; keeps the per-step loss."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(round(float(logs["loss"]), 5))

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in doses:
                _save(model, tokenizer, dose_dir(out_dir, state.global_step) / "model")

    return SaveDoses()


def finetune_ladder(
    model_dir: Path,
    doses: list[int],
    cfg: StressConfig,
    seed: int,
    out_dir: Path,
    data_source: str | Path = "organism",
    save_start: bool = True,
) -> dict:
    """Fine-tune `model_dir` toward harmful advice; save `out_dir/dose-<N>/model/` per dose.

    The rows come from the registered harmful-data source `data_source`, or from the
    chat JSONL file it names when it is a Path (`data/chat_jsonl.py`). Writes the
    training rows, in training order, to `out_dir/data.jsonl`. `save_start=False` skips
    the copy of the input model as dose 0 (a second ladder of one model needs it once).
    Returns the saved doses, the number of rows and the loss of every step.
    """
    import torch
    from transformers import PrinterCallback

    from benrl.evaluation.generate import load_model

    ladder = check_doses(doses)
    count = ladder[-1] * cfg.finetune_batch_size
    if isinstance(data_source, Path):
        from benrl.data.chat_jsonl import chat_rows

        rows = chat_rows(data_source, seed, count)
    else:
        rows = harmful_data(data_source)(seed, count)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("dose-*"):  # left by an earlier ladder or a killed run
        shutil.rmtree(stale)
    (out_dir / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    torch.manual_seed(seed)
    model, tokenizer = load_model(model_dir, for_training=True)
    if save_start:
        _save(model, tokenizer, dose_dir(out_dir, 0) / "model")
    losses: list[float] = []
    if ladder[-1] > 0:
        import datasets
        from trl import SFTConfig, SFTTrainer

        datasets.disable_progress_bars()  # SFTTrainer's tokenizing passes would print 4 bars

        scratch = out_dir / "trainer"
        args = SFTConfig(
            **sft_args(cfg, ladder[-1], seed, scratch, use_cpu=not torch.cuda.is_available())
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=datasets.Dataset.from_list(
                [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
            ),
            processing_class=tokenizer,
            peft_config=_lora_config() if cfg.finetune_lora else None,
            callbacks=[_dose_callback(set(ladder), tokenizer, out_dir, losses)],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        shutil.rmtree(scratch, ignore_errors=True)
    saved = ladder if save_start else [d for d in ladder if d]
    return {"doses": saved, "rows": len(rows), "losses": losses}


def _lora_config():
    from peft import LoraConfig

    return LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
