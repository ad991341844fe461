"""The TRL adapter: config fields exist in the installed TRL; every arm trains; resume."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import organism_tokenizer, tiny_llama
from trl import GRPOConfig

from benrl.config import JudgeConfig, RunConfig, ScenariosConfig, TrainConfig
from benrl.data.scenarios import build_scenarios
from benrl.devices import cpu_threads
from benrl.errors import BenrlError
from benrl.records import read_records, write_jsonl
from benrl.report.results import stage_spans
from benrl.run import Run
from benrl.training.arms import ARM_SPECS
from benrl.training.train import (
    arm_inputs,
    check_compute_matched,
    grpo_args,
    peft_config,
    run_stage,
    train_arm,
)


def test_grpo_args_are_fields_of_the_installed_trl(tmp_path):
    args = grpo_args(TrainConfig(), seed=3, output_dir=tmp_path, use_cpu=True)
    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert set(args) <= known, set(args) - known  # a renamed or removed field shows up here
    config = GRPOConfig(**args)
    assert config.num_generations == TrainConfig().generations
    assert config.per_device_train_batch_size == 64 and config.max_steps == 60
    assert config.seed == 3 and config.use_cpu and not config.bf16


def test_accumulation_lora_and_trackers_map_onto_the_installed_trl(tmp_path):
    cfg = TrainConfig(
        gradient_accumulation_steps=4,
        vllm_gpu_memory_utilization=0.5,
        report_to=["tensorboard"],
        peft={"r": 4, "target_modules": ["q_proj", "v_proj"]},
    )
    config = GRPOConfig(**grpo_args(cfg, seed=0, output_dir=tmp_path, use_cpu=True))
    # a step still sees prompts_per_step x generations completions, in 4 micro-batches
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps == 64
    assert config.vllm_gpu_memory_utilization == 0.5 and config.report_to == ["tensorboard"]
    lora = peft_config(cfg)
    assert (
        lora.r == 4 and lora.lora_alpha == 32 and set(lora.target_modules) == {"q_proj", "v_proj"}
    )
    assert peft_config(TrainConfig()) is None
    with pytest.raises(ValueError, match="must divide prompts_per_step x generations = 64"):
        TrainConfig(gradient_accumulation_steps=3)


def test_every_loss_type_is_one_the_installed_trl_documents():
    import typing

    from benrl.config import GrpoLoss

    field = {f.name: f for f in dataclasses.fields(GRPOConfig)}["loss_type"]
    supported = field.metadata["help"].split("Supported values are")[1].split(".")[0]
    for loss in typing.get_args(GrpoLoss):
        assert f"'{loss}'" in supported, loss  # removed from TRL: drop it from GrpoLoss too
    assert TrainConfig().loss_type == field.default  # our default is TRL's


def test_an_arms_identity_is_what_its_training_reads():
    cfg = TrainConfig(arms=["baseline", "beneficial"], seeds=1)
    more = cfg.model_copy(update={"arms": ["baseline", "beneficial", "generic"], "seeds": 3})
    dosed = cfg.model_copy(update={"trait_fraction": 0.25})
    for arm in ("baseline", "beneficial"):  # another seed or arm reuses the trained ones
        assert arm_inputs(more, arm) == arm_inputs(cfg, arm)
    assert arm_inputs(dosed, "baseline") == arm_inputs(cfg, "baseline")  # no trait rows
    assert arm_inputs(dosed, "beneficial") != arm_inputs(cfg, "beneficial")
    faster = cfg.model_copy(update={"learning_rate": 1e-4})
    assert arm_inputs(faster, "baseline") != arm_inputs(cfg, "baseline")


def test_compute_matching_check():
    close = {"a": {"tokens_trained": 1000}, "b": {"tokens_trained": 1015}}
    check_compute_matched(close, 0.02)
    far = {"a": {"tokens_trained": 1000}, "b": {"tokens_trained": 1100}}
    with pytest.raises(BenrlError, match="not compute-matched"):
        check_compute_matched(far, 0.02)


# --- real GRPO runs on a tiny organism-shaped model ----------------------------------------

TINY_TRAIN = TrainConfig(
    steps=2,
    prompts_per_step=2,
    generations=2,
    max_completion_length=8,
    save_every=2,
    trait_fraction=0.5,  # one trait prompt per step, so the arms' data differ
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[list, Path]:
    """Scenario records and a tiny random Llama with the organism's tokenizer."""
    root = tmp_path_factory.mktemp("train")
    small = ScenariosConfig(train_per_cell=1, eval_per_cell=1, tasks_train=30, tasks_eval=5)
    build_scenarios(small, 0, root / "scenarios")
    tokenizer = organism_tokenizer()
    tiny_llama(tokenizer).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return read_records(root / "scenarios" / "train.jsonl"), root / "model"


def log_rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]


def test_every_arm_trains_with_the_same_compute(setup, tmp_path):
    records, model = setup
    summaries = {}
    for arm in ARM_SPECS:
        out = tmp_path / arm
        summaries[arm] = train_arm(arm, 0, TINY_TRAIN, JudgeConfig(), records, model, out)
        assert (out / "model" / "model.safetensors").is_file()
        assert not (out / "checkpoints").exists()  # removed once the model is saved
        assert [r["step"] for r in log_rows(out)] == [1, 2]
        composition = [json.loads(x) for x in (out / "mixture.jsonl").read_text().splitlines()]
        assert [c.get("task", 0) + c.get("trait", 0) for c in composition] == [2, 2]
        traits = sum(c.get("trait", 0) for c in composition)
        assert traits == (0 if arm == "baseline" else 2), arm
    assert {s["steps"] for s in summaries.values()} == {2}
    assert all(s["tokens_trained"] > 0 and s["tokens_generated"] > 0 for s in summaries.values())
    check_compute_matched(summaries, 1.0)  # every arm has a token count to compare


def test_lora_arm_saves_a_merged_model_and_logs_to_tensorboard(setup, tmp_path):
    from transformers import AutoModelForCausalLM

    records, model = setup
    cfg = TrainConfig.model_validate(
        {
            **TINY_TRAIN.model_dump(),
            "steps": 1,
            "gradient_accumulation_steps": 2,
            "peft": {"r": 2, "target_modules": ["q_proj", "v_proj"]},
            "report_to": ["tensorboard"],
        }
    )
    train_arm("baseline", 0, cfg, JudgeConfig(), records, model, tmp_path)
    assert not list((tmp_path / "model").glob("adapter_*"))  # merged, not an adapter folder
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    base = AutoModelForCausalLM.from_pretrained(model)
    assert merged.state_dict().keys() == base.state_dict().keys()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert [r["step"] for r in log_rows(tmp_path)] == [1]


KILL_AT_STEP_3 = """
import os, signal, sys
from pathlib import Path
import benrl.training.train as train
from benrl.config import JudgeConfig, TrainConfig
from benrl.records import read_records

make_log = train._log_callback

def killing_log(path):
    callback = make_log(path)
    on_log = callback.on_log
    def on_log_then_die(args, state, control, logs=None, **kw):
        on_log(args, state, control, logs=logs, **kw)
        if state.global_step == 3:  # checkpoint-2 is on disk, step 3 is logged
            os.kill(os.getpid(), signal.SIGKILL)
    callback.on_log = on_log_then_die
    return callback

train._log_callback = killing_log
cfg = TrainConfig.model_validate_json(sys.argv[1])
records = read_records(Path(sys.argv[2]))
train.train_arm("beneficial", 0, cfg, JudgeConfig(), records, Path(sys.argv[3]), Path(sys.argv[4]))
"""


def test_killed_training_resumes_from_its_checkpoint_with_the_same_data(setup, tmp_path):
    records, model = setup
    cfg = TINY_TRAIN.model_copy(update={"steps": 5})
    write_jsonl(tmp_path / "train.jsonl", records)
    killed = tmp_path / "killed"
    paths = (tmp_path / "train.jsonl", model, killed)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_STEP_3, cfg.model_dump_json(), *map(str, paths)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (killed / "checkpoints" / "checkpoint-2").is_dir()
    assert [r["step"] for r in log_rows(killed)] == [1, 2, 3]
    train_arm("beneficial", 0, cfg, JudgeConfig(), records, model, killed)
    straight = tmp_path / "straight"
    train_arm("beneficial", 0, cfg, JudgeConfig(), records, model, straight)
    resumed, reference = log_rows(killed), log_rows(straight)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5]  # step 3 re-logged once
    # Same prompts in the same order and the same sampling state after the checkpoint:
    # the resumed steps reproduce the uninterrupted run's rewards and lengths.
    for key in ("reward", "completions/mean_length", "num_tokens"):
        assert [r[key] for r in resumed] == pytest.approx([r[key] for r in reference]), key


@pytest.mark.skipif(cpu_threads() < 2, reason="workers need two cores")
def test_the_stage_trains_arms_side_by_side_in_workers(setup, tmp_path):
    """`workers: 2`: two arms train at once in worker processes, on a Hugging Face model."""
    records, model = setup
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    write_jsonl(scenarios / "train.jsonl", [r.model_dump(mode="json") for r in records])
    # two steps of two prompts: trait and task prompts differ in length (as in the smoke)
    more = {"arms": ["baseline", "beneficial"], "seeds": 1, "token_tolerance": 1.0}
    train = TINY_TRAIN.model_copy(update=more)
    cfg = RunConfig(model=str(model), train=train, workers=2)
    run_stage(Run(cfg, tmp_path))
    for arm in ("baseline-s0", "beneficial-s0"):
        manifest = json.loads((tmp_path / "arms" / arm / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["summary"]["steps"] == 2
        assert (tmp_path / "arms" / arm / "model" / "model.safetensors").is_file()
        assert [r["step"] for r in log_rows(tmp_path / "arms" / arm)] == [1, 2]
    summary = json.loads((tmp_path / "arms" / "summary.json").read_text())
    assert set(summary) == {"baseline-s0", "beneficial-s0"}
    spans = stage_spans(tmp_path)  # side by side: the two arms' spans overlap
    (a_start, a_end), (b_start, b_end) = spans["arms/baseline-s0"], spans["arms/beneficial-s0"]
    assert a_start < b_end and b_start < a_end
