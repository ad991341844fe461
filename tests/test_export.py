"""Exports to verl and OpenRLHF: data loads back in the engines' formats, the generated
reward files import and grade with the arm's judges, launch scripts carry the config."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benrl.config import JudgeConfig, RunConfig, ScenariosConfig, TrainConfig, load_config
from benrl.data.scenarios import build_scenarios
from benrl.errors import BenrlError
from benrl.evaluation.split import held_out, touches
from benrl.judging.llm_client import LLMEndpointConfig
from benrl.judging.openai_judge import OpenAIJudgeConfig
from benrl.records import ScenarioRecord, read_records
from benrl.training.arms import build_mixture
from benrl.training.export import export_cli, export_openrlhf, export_verl, prompt_token_bound
from benrl.training.rewards import JUDGES_ENV, compute_score, env_grader

ROOT = Path(__file__).resolve().parents[1]
VERL_COLUMNS = ["data_source", "prompt", "ability", "reward_model", "extra_info"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    small = ScenariosConfig(train_per_cell=1, eval_per_cell=1, tasks_train=20, tasks_eval=5)
    build_scenarios(small, 0, run / "scenarios")
    return run


@pytest.fixture(scope="module")
def records(run_dir: Path) -> list[ScenarioRecord]:
    scenarios = run_dir / "scenarios"
    return read_records(scenarios / "train.jsonl") + read_records(scenarios / "eval.jsonl")


@pytest.fixture(autouse=True)
def default_judges(monkeypatch: pytest.MonkeyPatch):
    """Each test starts (and leaves) the file-loaded faces with the default judges."""
    monkeypatch.setenv(JUDGES_ENV, "{}")
    env_grader.cache_clear()
    yield
    env_grader.cache_clear()


def small_cfg(**train: object) -> RunConfig:
    return RunConfig(train=TrainConfig(steps=10, prompts_per_step=8, trait_fraction=0.25, **train))


def good_answer(record: ScenarioRecord) -> str:
    return record.reference["good"] if record.kind == "trait" else record.answer


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"generated_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- verl ---------------------------------------------------------------------------------


def test_verl_parquet_has_verl_columns_and_types(records, tmp_path) -> None:
    cfg = small_cfg()
    result = export_verl(cfg, records, "beneficial", 0, tmp_path)
    table = pq.read_table(tmp_path / "train.parquet")
    assert table.column_names == VERL_COLUMNS
    schema = table.schema
    assert schema.field("data_source").type == pa.string()
    assert schema.field("ability").type == pa.string()
    message = schema.field("prompt").type.value_type
    assert [message.field(i).name for i in range(message.num_fields)] == ["role", "content"]
    reward_model = schema.field("reward_model").type
    assert {reward_model.field(i).name for i in range(2)} == {"style", "ground_truth"}
    extra = schema.field("extra_info").type
    assert {"split", "index", "record"} <= {extra.field(i).name for i in range(extra.num_fields)}
    assert table.num_rows == result.rows == 10 * 8
    assert result.trait_rows == round(80 * 0.25)
    val = pq.read_table(tmp_path / "val.parquet")
    assert val.column_names == VERL_COLUMNS
    assert val.num_rows == result.val_rows == sum(r.split == "eval" for r in records)


def test_verl_rows_follow_the_mixture_and_score_their_good_answer(records, tmp_path) -> None:
    cfg = small_cfg()
    export_verl(cfg, records, "beneficial", 3, tmp_path)
    train = [r for r in records if r.split == "train"]
    expected = build_mixture(train, "beneficial", 80, 0.25, 3, held_out(cfg))
    rows = pq.read_table(tmp_path / "train.parquet").to_pylist()
    assert [row["extra_info"]["record_id"] for row in rows] == [r.id for r in expected]
    for row in rows + pq.read_table(tmp_path / "val.parquet").to_pylist():
        record = ScenarioRecord.model_validate_json(row["extra_info"]["record"])
        assert row["prompt"] == [m.model_dump() for m in record.messages]
        assert row["data_source"] == f"benrl/{record.kind}"
        score = compute_score(
            row["data_source"],
            good_answer(record),
            row["reward_model"]["ground_truth"],
            row["extra_info"],
        )
        assert score["score"] == 1.0, record.id
        assert score["judge_failed"] == 0.0


def test_prompt_token_bound_covers_every_prompt(records) -> None:
    bound = prompt_token_bound(records)
    assert bound % 64 == 0
    assert all(sum(len(m.content.encode()) for m in r.messages) < bound for r in records)


def test_reward_modules_grade_with_the_arms_judges(records, tmp_path) -> None:
    cfg = small_cfg()
    scores = {}
    for arm in ("beneficial", "generic"):
        export_verl(cfg, records, arm, 0, tmp_path / arm)
        module = load_module(tmp_path / arm / "benrl_reward.py")
        expected = cfg.judge.generic if arm == "generic" else cfg.judge.trait
        assert json.loads(os.environ[JUDGES_ENV])["trait"] == expected
        rows = pq.read_table(tmp_path / arm / "train.parquet").to_pylist()
        traits = [r for r in rows if r["data_source"] == "benrl/trait"]
        assert traits, "the mixture has trait rows"
        bad = [
            ScenarioRecord.model_validate_json(r["extra_info"]["record"]).reference["bad"]
            for r in traits
        ]
        scores[arm] = [
            module.compute_score(r["data_source"], b, None, r["extra_info"])["score"]
            for r, b in zip(traits, bad, strict=True)
        ]
    # The generic arm sees the same trait prompts but its reward is blind to the rubric.
    assert len(scores["generic"]) == len(scores["beneficial"])
    assert min(scores["beneficial"]) < 1.0
    assert sum(scores["generic"]) > sum(scores["beneficial"])


def test_judge_options_reach_the_file_loaded_grader(records, tmp_path) -> None:
    endpoint = {"base_url": "http://127.0.0.1:9/v1", "model": "judge", "api_key_env": "TEST_KEY"}
    judge = JudgeConfig(trait="openai", options={"openai": endpoint, "unused": {"x": 1}})
    cfg = small_cfg().model_copy(update={"judge": judge})
    result = export_verl(cfg, records, "beneficial", 0, tmp_path)
    assert result.judges == {"trait": "openai", "task": "verifiable"}
    text = (tmp_path / "benrl_reward.py").read_text()
    assert "TEST_KEY" in text and "unused" not in text
    load_module(tmp_path / "benrl_reward.py")
    grader = env_grader()
    assert grader.judge_by_kind["trait"] == "openai"
    assert grader.judge_options == {"openai": endpoint}


def test_unknown_or_untrained_arm_is_a_user_error(records, tmp_path) -> None:
    with pytest.raises(BenrlError, match="unknown arm 'pre'"):
        export_verl(small_cfg(), records, "pre", 0, tmp_path)


# --- OpenRLHF -----------------------------------------------------------------------------


def test_openrlhf_prompts_and_reward_func(records, tmp_path) -> None:
    result = export_openrlhf(small_cfg(), records, "beneficial", 0, tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "prompts.jsonl").read_text().splitlines()]
    assert len(lines) == result.rows == 80
    assert all({"input", "label"} <= line.keys() for line in lines)
    module = load_module(tmp_path / "reward_func.py")
    prompts, queries, labels = [], [], []
    for line in lines:
        record = ScenarioRecord.model_validate_json(line["label"])
        assert line["input"] == [m.model_dump() for m in record.messages]
        prompt = "".join(f"<|{m['role']}|>{m['content']}" for m in line["input"]) + "<|assistant|>"
        prompts.append(prompt)
        queries.append(prompt + good_answer(record) + "<|im_end|>")
        labels.append(line["label"])
    out = module.reward_func(queries, prompts, labels)
    assert out["rewards"].tolist() == [1.0] * len(lines)
    assert out["extra_logs"]["judge_failed"].sum().item() == 0.0
    evals = (tmp_path / "eval.jsonl").read_text().splitlines()
    assert len(evals) == result.val_rows


def test_reward_server_script_serves_the_arms_judges(records, tmp_path, monkeypatch) -> None:
    export_openrlhf(small_cfg(), records, "generic", 0, tmp_path)
    module = load_module(tmp_path / "reward_server.py")
    assert module.JUDGES == {"trait": "generic", "task": "verifiable"}
    served = {}
    monkeypatch.setattr(module, "run_server", lambda *a, **kw: served.update(args=a, **kw))
    monkeypatch.setattr(sys, "argv", ["reward_server.py", "--port", "5123"])
    module.main()
    assert served == {
        "args": ("0.0.0.0", 5123),
        "judge_by_kind": module.JUDGES,
        "judge_options": module.JUDGE_OPTIONS,
    }


# --- launch scripts -----------------------------------------------------------------------


def test_launch_scripts_carry_the_config_numbers(records, tmp_path) -> None:
    cfg = RunConfig(
        model="models/Some-Model",
        train=TrainConfig(
            steps=7,
            prompts_per_step=6,
            generations=5,
            max_completion_length=33,
            learning_rate=3e-6,
            beta=0.04,
            temperature=0.9,
            trait_fraction=0.25,
            save_every=3,
        ),
    )
    export_verl(cfg, records, "beneficial", 0, tmp_path / "verl")
    export_openrlhf(cfg, records, "beneficial", 2, tmp_path / "openrlhf")
    verl = (tmp_path / "verl" / "launch.sh").read_text()
    for piece in (
        "ray start --head",
        "ray job submit",
        "python3 -m verl.trainer.main_ppo",
        "algorithm.adv_estimator=grpo",
        "data.train_batch_size=6",
        "actor_rollout_ref.rollout.n=5",
        "data.max_response_length=33",
        "actor_rollout_ref.actor.optim.lr=3e-06",
        "actor_rollout_ref.actor.use_kl_loss=True",
        "actor_rollout_ref.actor.kl_loss_coef=0.04",
        "actor_rollout_ref.rollout.temperature=0.9",
        "trainer.total_training_steps=7",
        "trainer.save_freq=3",
        '"$VERL_REWARD_KEY.path=$EXPORT_DIR/benrl_reward.py"',
        '"$VERL_REWARD_KEY.name=compute_score"',
        "python3 -m benrl.training.verl_layout",
        str((Path("models/Some-Model")).resolve()),
        "CLUSTER-SPECIFIC",
    ):
        assert piece in verl, piece
    openrlhf = (tmp_path / "openrlhf" / "launch.sh").read_text()
    for piece in (
        "python3 -m openrlhf.cli.train_ppo_ray",
        "--algo.advantage.estimator group_norm",
        "--rollout.batch_size 6",
        "--rollout.n_samples_per_prompt 5",
        "--train.batch_size 30",
        "--rollout.max_new_tokens 33",
        "--data.max_samples 42",
        "--actor.adam.lr 3e-06",
        "--algo.kl.init_coef 0.04",
        "--algo.kl.use_loss",
        "--train.seed 2",
        '--reward.remote_url "$REWARD"',
        "reward_server.py",
        "CLUSTER-SPECIFIC",
    ):
        assert piece in openrlhf, piece
    bash = shutil.which("bash")
    if bash:
        for script in (tmp_path / "verl" / "launch.sh", tmp_path / "openrlhf" / "launch.sh"):
            assert subprocess.run([bash, "-n", str(script)]).returncode == 0
            assert os.access(script, os.X_OK)


def test_organism_model_path_is_required_from_the_environment(records, tmp_path) -> None:
    export_verl(small_cfg(), records, "baseline", 0, tmp_path)
    text = (tmp_path / "launch.sh").read_text()
    assert '"${MODEL_PATH:?' in text
    assert "use_kl_loss=False" in text


# --- CLI entry and configs ----------------------------------------------------------------


def test_export_cli_reads_the_run_and_uses_its_organism(run_dir, tmp_path) -> None:
    (run_dir / "organism" / "model").mkdir(parents=True, exist_ok=True)
    result = export_cli("openrlhf", run_dir, small_cfg(), "beneficial", 0, tmp_path / "out")
    assert result.rows == 80
    launch = (tmp_path / "out" / "launch.sh").read_text()
    assert str((run_dir / "organism" / "model").resolve()) in launch
    with pytest.raises(BenrlError, match="unknown export target"):
        export_cli("deepspeed", run_dir, small_cfg(), "beneficial", 0, tmp_path / "x")


def test_export_cli_without_scenarios_says_what_to_run(tmp_path) -> None:
    with pytest.raises(BenrlError, match="--only scenarios"):
        export_cli("verl", tmp_path, small_cfg(), "beneficial", 0, tmp_path / "out")


@pytest.mark.parametrize("name", ["qwen3-gpu.yaml", "verl-multinode.yaml"])
def test_gpu_configs_validate(name: str) -> None:
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.model != "organism" and not Path(cfg.model).is_absolute()
    assert cfg.judge.trait == "openai"
    OpenAIJudgeConfig.model_validate(cfg.judge.options["openai"])  # keys the judge accepts
    if cfg.scenarios.backend == "llm":
        LLMEndpointConfig.model_validate(cfg.scenarios.llm)
    assert cfg.train.trait_fraction == 0.05
    assert cfg.train.steps == 200
    assert set(cfg.train.arms) >= {"baseline", "beneficial"}


# --- verl config layout -------------------------------------------------------------------


def test_verl_reward_key_follows_the_installed_layout(tmp_path, monkeypatch) -> None:
    from benrl.training import verl_layout

    old = tmp_path / "old" / "verl" / "trainer" / "config"  # verl <= 0.8.0.dev (2026-01)
    old.mkdir(parents=True)
    (old / "ppo_trainer.yaml").write_text(
        "defaults:\n  - reward_manager@reward_manager\n"
        "custom_reward_function:\n  path: null\n  name: compute_score\n"
    )
    new = tmp_path / "new" / "verl" / "trainer" / "config"  # a `reward` config group
    (new / "reward").mkdir(parents=True)
    (new / "ppo_trainer.yaml").write_text("defaults:\n  - reward@reward: reward\n")
    (new / "reward" / "reward.yaml").write_text("custom_reward_function:\n  path: null\n")
    assert verl_layout.reward_function_key(old) == "custom_reward_function"
    assert verl_layout.reward_function_key(new) == "reward.custom_reward_function"
    (new / "reward" / "reward.yaml").write_text("reward_manager: naive\n")
    with pytest.raises(BenrlError, match="set VERL_REWARD_KEY"):
        verl_layout.reward_function_key(new)
    # the launch script's way: find the installed verl without importing it
    (old.parents[1] / "__init__.py").write_text("raise ImportError('never imported')\n")
    monkeypatch.syspath_prepend(str(old.parents[2]))
    assert verl_layout.installed_config_dir() == old


# --- OpenRLHF reward-request timeout --------------------------------------------------------


def test_judge_time_bound_and_the_openrlhf_remote_warning(records, tmp_path) -> None:
    from benrl.training.export import OPENRLHF_CLIENT_TIMEOUT_S, judge_seconds_bound

    judge = {"model": "j", "timeout_s": 10, "max_retries": 1, "backoff_s": 1, "concurrency": 8}
    whole = {"openai": {**judge, "mode": "whole_rubric"}}
    # one chain: 2 attempts x 10 s + 1 s backoff, twice (one re-ask) = 42 s; 16 requests / 8
    assert judge_seconds_bound(whole, completions=16, criteria=3) == 2 * 42
    per_criterion = {"openai": {**judge, "mode": "per_criterion"}}
    assert judge_seconds_bound(per_criterion, completions=16, criteria=3) == 6 * 42
    assert judge_seconds_bound({"world": {}}, completions=16, criteria=3) == 0
    cfg = small_cfg(generations=4).model_copy(
        update={"judge": JudgeConfig(trait="openai", options={"openai": per_criterion["openai"]})}
    )
    result = export_openrlhf(cfg, records, "beneficial", 0, tmp_path)
    trained = [r for r in records if not touches(r.traits, held_out(cfg))]  # what RL grades
    bound = judge_seconds_bound(per_criterion, 8 * 4, max(len(r.rubric) for r in trained))
    assert bound > OPENRLHF_CLIENT_TIMEOUT_S
    assert len(result.warnings) == 1 and f"up to {bound:.0f} s" in result.warnings[0]
    assert f"is {bound:.0f} s" in (tmp_path / "README.txt").read_text()
    quick = {**judge, "timeout_s": 1, "max_retries": 0, "mode": "whole_rubric"}
    fast = cfg.model_copy(update={"judge": JudgeConfig(trait="openai", options={"openai": quick})})
    assert export_openrlhf(fast, records, "beneficial", 0, tmp_path / "fast").warnings == []
