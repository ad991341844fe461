"""GPU smoke: the smoke pipeline on CUDA, then GRPO steps with vLLM rollouts.

Skipped without a CUDA device (benrl's own CI is CPU-only, so these have never run
there). On a GPU machine: `pytest tests/gpu -m gpu`. The vLLM tests also need `vllm`
installed (`pip install -e '.[vllm]'`): GRPO steps with vLLM rollouts through TRL, and
the `eval.backend: vllm` answers against the hf backend's.
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
    model, tokenizer = load_model(smoke_run / "organism" / "model", for_training=True)
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


def test_vllm_eval_backend_answers_like_the_hf_backend(smoke_run: Path) -> None:
    """eval.backend vllm: same prompts (chat template rendered by benrl), greedy answers."""
    pytest.importorskip("vllm")
    from benrl.evaluation.generate import generate, load_model
    from benrl.evaluation.vllm_generate import generate_vllm
    from benrl.records import Message

    model_dir = smoke_run / "arms" / "beneficial-s0" / "model"
    conversations = [[Message(role="user", content=f"what is {i} plus 2?")] for i in range(4)]
    got = generate_vllm(model_dir, conversations, 0.3, max_new_tokens=8, num_samples=2)
    assert len(got) == 4 and all(len(a) == 2 and a[0] == a[1] for a in got)
    model, tokenizer = load_model(model_dir)
    assert model.device.type == "cuda"
    hf = generate(model, tokenizer, conversations, max_new_tokens=8)
    # greedy on both; bf16 kernels may differ in a late token, so compare the openings
    assert sum(a[0][:5] == b[0][:5] for a, b in zip(got, hf, strict=True)) >= 3
