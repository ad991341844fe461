"""Where models run: device and dtype for inference, and the options that need CUDA.

On a CUDA machine every inference load (eval, stress, directions, the organism card)
puts the model on the GPU in bfloat16 (float16 where the card has no bf16), as vLLM
and inspect's hf provider do; on a CPU machine it stays float32 on the CPU. Training
loads on the CPU in float32 and lets the Trainer place it (its `bf16` flag runs mixed
precision over float32 master weights).

A config option that only works with CUDA (vLLM rollouts or eval generation, bf16
training) on a machine without it is a user error found at config check, one line
naming the key, instead of a crash deep inside TRL or vLLM after hours of work.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from benrl.errors import BenrlError

if TYPE_CHECKING:
    import torch

    from benrl.config import RunConfig


def cpu_threads() -> int:
    """OMP_NUM_THREADS when set (a machine shared with other jobs), else the usable cores."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cuda_available() -> bool:
    import torch  # lazy: config checks should not pay for torch when they fail early

    return torch.cuda.is_available()


def inference_dtype() -> torch.dtype:
    """bfloat16 on a CUDA card that supports it, float16 on older cards, float32 on CPU."""
    import torch

    if not torch.cuda.is_available():
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cuda_only_options(cfg: RunConfig) -> list[str]:
    """The dotted keys of `cfg` that are set to something only a CUDA machine can run."""
    keys = []
    if cfg.train.use_vllm:
        keys.append("train.use_vllm")
    if cfg.train.bf16:
        keys.append("train.bf16")
    if cfg.eval.backend == "vllm":
        keys.append("eval.backend")
    return keys


def check_cuda_options(cfg: RunConfig, where: str = "config") -> None:
    """Fail on the first CUDA-only option when this machine has no CUDA device."""
    keys = cuda_only_options(cfg)
    if keys and not cuda_available():
        raise BenrlError(
            f"{where}: key '{keys[0]}' needs a CUDA device and this machine has none "
            f"(CUDA-only keys set: {', '.join(keys)})"
        )
