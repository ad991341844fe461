"""`benrl run -c X.yaml key=value ...`: dotted overrides validated like the file; --version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benrl import __version__
from benrl.cli import app
from benrl.config import load_config
from benrl.errors import BenrlError


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text("name: x\ntrain:\n  steps: 60\n  arms: [baseline]\n")
    return path


def test_overrides_set_dotted_keys_with_yaml_values(config: Path) -> None:
    cfg = load_config(
        config,
        ["train.steps=10", "eval.items_per_eval=5", "train.arms=[baseline, beneficial]",
         "train.chat_template_kwargs.enable_thinking=false", "seed=3"],
    )  # fmt: skip
    assert cfg.train.steps == 10 and cfg.eval.items_per_eval == 5 and cfg.seed == 3
    assert cfg.train.arms == ["baseline", "beneficial"]
    assert cfg.train.chat_template_kwargs == {"enable_thinking": False}
    assert load_config(config).train.steps == 60  # the file itself is untouched


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.stepz=3", "override 'train.stepz=3': key 'train.stepz': Extra inputs"),
        ("train.steps=abc", "override 'train.steps=abc': key 'train.steps': Input should be"),
        ("train.steps=0", "override 'train.steps=0': key 'train.steps'"),
        ("trainsteps", "expected KEY=VALUE"),
        ("train..steps=1", "expected KEY=VALUE"),
        ("name.first=1", "key 'name' is a value, not a section"),
        ("train.arms=[a", "value is not valid YAML"),
    ],
)
def test_bad_overrides_name_the_override_and_key(config: Path, override, message) -> None:
    with pytest.raises(BenrlError, match=re.escape(message)) as err:
        load_config(config, [override])
    assert str(err.value).startswith(f"override '{override}'")


def test_file_errors_still_name_the_file(config: Path) -> None:
    config.write_text("train:\n  steps: -1\n")
    with pytest.raises(BenrlError, match=r"x\.yaml: key 'train\.steps'"):
        load_config(config, ["eval.items_per_eval=5"])


def test_run_takes_overrides_and_refuses_a_bad_one(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "-c", str(config), "--out", str(out), "train.steps=x"])
    assert result.exit_code == 2 and "override 'train.steps=x'" in result.output
    assert not out.exists()


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"benrl {__version__}"
