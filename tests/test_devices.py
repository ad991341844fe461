"""Device placement and CUDA-only options: what a CPU machine refuses, and where it says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from benrl import devices
from benrl.cli import app
from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.evaluation.runner import RunnerOptions


def gpu_config(**sections: dict) -> RunConfig:
    return RunConfig.model_validate(sections)


def test_cuda_only_options_fail_on_a_cpu_machine_naming_the_key(monkeypatch) -> None:
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    cfg = gpu_config(train={"use_vllm": True, "bf16": True}, eval={"backend": "vllm"})
    assert devices.cuda_only_options(cfg) == ["train.use_vllm", "train.bf16", "eval.backend"]
    with pytest.raises(BenrlError, match=r"^my.yaml: key 'train.use_vllm' needs a CUDA device"):
        devices.check_cuda_options(cfg, "my.yaml")
    devices.check_cuda_options(RunConfig(), "my.yaml")  # the CPU default asks for nothing
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    devices.check_cuda_options(cfg, "my.yaml")


def test_run_refuses_a_cuda_only_option_before_any_stage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    config = tmp_path / "gpu.yaml"
    config.write_text("train:\n  bf16: true\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 2
    assert "key 'train.bf16' needs a CUDA device" in result.output
    assert not out.exists()


def test_evaluation_uses_the_training_chat_template_kwargs() -> None:
    cfg = gpu_config(train={"chat_template_kwargs": {"enable_thinking": False}})
    options = RunnerOptions.from_config(cfg)
    assert options.chat_template_kwargs == {"enable_thinking": False}
    assert RunnerOptions.from_config(RunConfig()).chat_template_kwargs is None


def test_cpu_inference_stays_float32() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CPU behaviour")
    assert devices.inference_dtype() == torch.float32
