"""GPU smoke: the smoke pipeline on CUDA, then GRPO steps with vLLM rollouts.

Skipped without a CUDA device (benrl's own CI is CPU-only, so these have never run
there). On a GPU machine: `pytest tests/gpu -m gpu`. The vLLM test also needs `vllm`
installed; it drives TRL directly because the config has no vLLM fields yet (see
docs/scaling.md).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "smoke.yaml"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benrl.config import load_config
    from benrl.pipeline import run_pipeline

    run_dir = tmp_path_factory.mktemp("gpu") / "smoke"
    run_pipeline(load_config(SMOKE), run_dir)
    return run_dir


def test_smoke_pipeline_trains_and_reports_on_cuda(smoke_run: Path) -> None:
    assert (smoke_run / "report" / "report.html").exists()
    for arm in ("baseline-s0", "beneficial-s0"):
        assert (smoke_run / "arms" / arm / "model" / "model.safetensors").exists()
        assert (smoke_run / "arms" / arm / "log.jsonl").read_text().strip()


def test_grpo_steps_with_vllm_rollouts(
    smoke_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("vllm")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from benrl.config import load_config
    from benrl.evaluation.generate import load_model
    from benrl.records import read_records
    from benrl.training.arms import build_mixture
    from benrl.training.rewards import make_trl_reward_funcs
    from benrl.training.train import grpo_args

    # vLLM colocate mode in one process expects a (single-rank) torch.distributed setup.
    for name, value in {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29517",
    }.items():
        monkeypatch.setenv(name, os.environ.get(name, value))

    cfg = load_config(SMOKE).train
    records = read_records(smoke_run / "scenarios" / "train.jsonl")
    rows = build_mixture(records, "beneficial", 2 * cfg.prompts_per_step, cfg.trait_fraction, 0)
    model, tokenizer = load_model(smoke_run / "organism" / "model")
    args = grpo_args(cfg, 0, tmp_path / "checkpoints", use_cpu=False) | {
        "max_steps": 2,
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": 0.3,
        "bf16": torch.cuda.is_bf16_supported(),
    }
    trainer = GRPOTrainer(
        model=model,
        args=GRPOConfig(**args),
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(
            [{"prompt": [m.model_dump() for m in r.messages], "record_id": r.id} for r in rows]
        ),
        reward_funcs=make_trl_reward_funcs(
            {r.id: r for r in rows}, {"trait": "world", "task": "verifiable"}
        ),
    )
    trainer.train()
    assert trainer.state.global_step == 2
    rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    assert rewards and all(0.0 <= r <= 1.0 for r in rewards)
