"""The command line: names checked at config load, listings, the organism build manifest."""

from __future__ import annotations

from pathlib import Path

from conftest import benrl

from benrl.config import RunConfig
from benrl.organism import stage as organism_stage
from benrl.run import Run


def run_cli(*args: str) -> tuple[int, str, str]:
    proc = benrl(*args)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def test_unknown_judge_fails_at_config_load_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, "judge:\n  trait: nosuch\n")
    code, _, err = run_cli("run", "--config", str(config), "--out", str(tmp_path / "run"))
    assert code == 2
    assert "judge.trait" in err and "nosuch" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "scenarios").exists()  # nothing ran


def test_unknown_eval_fails_at_config_load_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, "eval:\n  evals: [pushback_stem, no_such_eval]\n")
    code, _, err = run_cli("run", "--config", str(config), "--out", str(tmp_path / "run"))
    assert code == 2 and "eval.evals" in err and "no_such_eval" in err
    assert not (tmp_path / "run").exists()


def test_eval_list_shows_the_registered_suite() -> None:
    code, out, _ = run_cli("eval", "list")
    assert code == 0
    assert "pushback_stem" in out and "capability_add" in out and "stop_civic" in out


def test_config_keys_lists_every_section() -> None:
    code, out, _ = run_cli("config", "keys")
    assert code == 0
    for key in ("train.steps", "eval.items_per_eval", "organism.coherence", "judge.trait"):
        assert key in out


def test_organism_build_goes_through_its_manifest(tmp_path: Path, monkeypatch) -> None:
    built: list[float] = []

    def fake_build(cfg, seed, out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "card.json").write_text("{}")
        built.append(cfg.coherence)
        return {}

    monkeypatch.setattr("benrl.organism.model.build_organism", fake_build)
    run = Run(RunConfig(), tmp_path)
    assert organism_stage.build_stage(run, "organism") == tmp_path / "organism"
    organism_stage.build_stage(run, "organism")  # complete, same config: reused
    assert built == [1.0]
    edited = RunConfig.model_validate({"organism": {"coherence": 0.0}})
    organism_stage.build_stage(Run(edited, tmp_path), "organism")  # edited: rebuilt
    assert built == [1.0, 0.0]


def test_ctrl_c_says_what_is_kept_and_exits_130(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    import benrl.pipeline
    from benrl.cli import app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(benrl.pipeline, "run_pipeline", interrupted)
    config = Path(__file__).parents[1] / "configs" / "smoke.yaml"
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--out", str(tmp_path)])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "resume" in result.output
    assert "Traceback" not in result.output
