"""Early validation: every bad config fails when it loads, in one line naming the key.

Each case is a YAML snippet and a phrase of the expected error; `load_config` plus
`check_config` run in-process (what `benrl run` and `benrl run --check` do before any
stage), so the whole table costs well under a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from benrl.checks import check_config, check_endpoints
from benrl.cli import app
from benrl.config import load_config
from benrl.errors import BenrlError

BAD_CONFIGS = [
    ("", "config is empty"),
    ("# only a comment\n", "config is empty"),
    ("name: a\nname: b\n", "duplicate key 'name'"),
    ("train:\n  steps: 2\ntrain:\n  steps: 3\n", "duplicate key 'train'"),
    ("eval:\n  items_per_eval: 3\n  items_per_eval: 4\n", "duplicate key 'items_per_eval'"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
    ("judge:\n  trait: nosuch\n", "judge.trait"),
    ("judge:\n  task: nosuch\n", "judge.task"),
    ("judge:\n  options:\n    nosuch: {}\n", "judge.options.nosuch"),
    ("eval:\n  evals: [no_such_eval]\n", "eval.evals"),
    ("stress:\n  personas: [nobody]\n", "stress.personas"),
    ("stress:\n  personas_file: missing.yaml\n", "not found"),
    ("stress:\n  finetune_doses: [0, -5]\n", "stress.finetune_doses"),
    ("directions:\n  layer: 99\n", "directions.layer"),
    ("directions:\n  snapshots: [500]\n", "directions.snapshots"),
    ("eval:\n  compare: generic\n", "eval.compare"),
    ("eval:\n  against: health_only\n", "eval.against"),
    ("eval:\n  compare: baseline\n", "both 'baseline'"),
    ("eval:\n  models: [pre, generic]\n", "eval.models"),
    ("stress:\n  models: [pre, generic]\n", "stress.models"),
    ("model: /nonexistent/model\n", "key 'model'"),
    ("judge:\n  trait: openai\n", "judge.options.openai"),
    (
        "judge:\n  trait: openai\n  options:\n    openai: {base_url: 'not a url at all', "
        "model: m}\n",
        "base_url",
    ),
    (
        "judge:\n  trait: openai\n  options:\n    openai: {model: m, api_key_env: "
        "BENRL_TEST_UNSET_KEY}\n",
        "BENRL_TEST_UNSET_KEY",
    ),
    ("judge:\n  max_failure_rate: 1.5\n", "judge.max_failure_rate"),
    ("train:\n  arms: [baseline, wizard]\n", "wizard"),
    ("train:\n  steps: 0\n", "train.steps"),
    ("workers: 0\n", "workers"),
    ("workers: 2\neval:\n  backend: vllm\n", "key 'workers'"),
]


@pytest.mark.parametrize(("text", "said"), BAD_CONFIGS)
def test_bad_config_fails_at_load_naming_the_key(
    tmp_path: Path, monkeypatch, text: str, said: str
) -> None:
    monkeypatch.delenv("BENRL_TEST_UNSET_KEY", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BenrlError) as caught:
        check_config(load_config(path), str(path))
    message = str(caught.value)
    assert said in message and "\n" not in message


def test_config_path_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(BenrlError, match="is not a file"):
        load_config(tmp_path)


def test_config_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(BenrlError, match=r"not UTF-8|not valid YAML"):
        load_config(path)


def test_shipped_configs_pass_the_checks() -> None:
    for name in ("smoke", "default"):
        path = Path(__file__).parents[1] / "configs" / f"{name}.yaml"
        check_config(load_config(path), str(path))


def test_endpoint_check_names_judge_and_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "judge:\n  trait: openai\n  options:\n    openai: {base_url: 'http://127.0.0.1:9/v1', "
        "model: m, max_retries: 0, timeout_s: 2}\n"
    )
    cfg = load_config(path)
    check_config(cfg)  # the options are fine; the endpoint is not
    with pytest.raises(BenrlError, match=r"judge 'openai'.*127\.0\.0\.1:9.*connection"):
        check_endpoints(cfg)


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_run_check_reports_ok_and_runs_nothing(tmp_path: Path) -> None:
    config = Path(__file__).parents[1] / "configs" / "smoke.yaml"
    result = cli("run", "--check", "--config", str(config), "--out", str(tmp_path / "r"))
    assert result.exit_code == 0 and "ok" in result.output
    assert not (tmp_path / "r").exists()


def test_run_check_fails_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("directions:\n  layer: 99\n")
    result = cli("run", "--check", "--config", str(path))
    assert result.exit_code == 2 and "directions.layer" in result.output
    assert "Traceback" not in result.output


def test_run_folder_below_a_file_is_one_line(tmp_path: Path) -> None:
    config = Path(__file__).parents[1] / "configs" / "smoke.yaml"
    (tmp_path / "f").write_text("")
    out = tmp_path / "f" / "run"
    result = cli("run", "--config", str(config), "--out", str(out))
    assert result.exit_code == 2 and "not writable" in result.output and str(out) in result.output


def test_file_where_a_stage_folder_should_be_is_one_line(tmp_path: Path) -> None:
    # (a read-only folder cannot be tested here: tests may run as root)
    config = Path(__file__).parents[1] / "configs" / "smoke.yaml"
    out = tmp_path / "run"
    out.mkdir()
    (out / "scenarios").write_text("not a folder")
    result = cli("run", "--config", str(config), "--out", str(out), "--only", "scenarios")
    assert result.exit_code == 2 and str(out / "scenarios") in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_scenario_writer_endpoint_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "scenarios:\n  backend: llm\n  llm: {base_url: 'http://127.0.0.1:9/v1', model: w, "
        "max_retries: 0, timeout_s: 2}\n"
    )
    with pytest.raises(BenrlError, match=r"key 'scenarios\.llm'.*model 'w'.*connection"):
        check_endpoints(load_config(path))
