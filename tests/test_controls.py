"""The organism controls: one protocol run per coherence, read into one table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.organism.controls import (
    control_config,
    control_row,
    controls_markdown,
    row_folder,
    run_controls,
    share_stages,
)
from benrl.report.paper import HELDOUT_MEASURE


def _effect(diff: float) -> dict:
    return {
        "evals": 54,
        "ahead": 30,
        "mean_diff": diff,
        "ci_low": diff - 0.01,
        "ci_high": diff + 0.01,
        "p_value": 0.01,
        "inference": "hierarchical over training seeds",
        "headline": "ignored",
    }


def _write_results(folder: Path, ood: float, shift: float) -> None:
    results = {
        "comparisons": {
            "beneficial_vs_baseline": {"ood": _effect(ood), "in_distribution": _effect(0.1)}
        },
        "paper_comparison": [
            {
                "measure": HELDOUT_MEASURE,
                "paper": "x",
                "ours": "0.4 -> 0.5",
            }
        ],
        "organism_card": {
            "in_context_persona": {"shift": shift, "ci": [shift - 0.01, shift + 0.01], "ideal": 0.7}
        },
        "seeds": {"baseline": {"n_seeds": 3}, "beneficial": {"n_seeds": 3}},
        "training": {
            "baseline-s0": {"tokens_trained": 1000},
            "baseline-s1": {"tokens_trained": 1000},
            "beneficial-s0": {"tokens_trained": 1100},
            "beneficial-s1": {"tokens_trained": 1000},
        },
    }
    (folder / "report").mkdir(parents=True)
    (folder / "report" / "results.json").write_text(json.dumps(results))


def test_control_config_changes_only_coherence_and_dose():
    cfg = RunConfig()
    zero = control_config(cfg, 0.0, None)
    assert zero.organism.coherence == 0.0 and zero.train == cfg.train
    assert zero.organism.model_copy(update={"coherence": cfg.organism.coherence}) == cfg.organism
    dosed = control_config(cfg, 1.0, 0.25)
    assert dosed.train.trait_fraction == 0.25 and dosed.train.steps == cfg.train.steps
    assert row_folder(Path("x"), 1.0, 0.25).name == "coherence-1-fraction-0.25"
    fewer = control_config(cfg, 1.0, 0.1, seeds=1)  # a dose row with its own seed count
    assert fewer.train.seed_counts() == {arm: 1 for arm in cfg.train.arms}
    assert control_config(cfg, 1.0, None, seeds=1).train == cfg.train  # main rows keep theirs
    assert row_folder(Path("x"), 0.0, None).name == "coherence-0"


def test_rows_and_table_come_from_each_runs_results(tmp_path):
    for coherence, ood in ((0.0, -0.002), (1.0, 0.05)):
        _write_results(row_folder(tmp_path, coherence, None), ood, shift=0.3 * coherence)
    rows = [control_row(row_folder(tmp_path, c, None), c, 0.05) for c in (0.0, 1.0)]
    assert [r["ood"]["mean_diff"] for r in rows] == [-0.002, 0.05]
    assert rows[1]["in_context_persona"]["shift"] == pytest.approx(0.3)
    table = controls_markdown({"config": "default", "rows": rows})
    assert "| 1 | 0.05 | +0.300 [+0.290, +0.310] (ideal +0.700) | +5.0 pp [+4.0, +6.0]" in table
    assert "| 0 | 0.05 |" in table and "-0.2 pp" in table and "baseline 3, beneficial 3" in table
    assert rows[0]["token_ratio"] == 1.05  # beneficial's tokens over baseline's, all seeds


def _finished_stage(folder: Path, name: str) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "manifest.json").write_text('{"status": "complete"}')
    (folder / name / "weights").write_text(name)


def test_dose_rows_share_the_stages_a_dose_does_not_change(tmp_path):
    source, dose = row_folder(tmp_path, 1.0, None), row_folder(tmp_path, 1.0, 0.25)
    shared = ["scenarios", "organism", "evals/pre", "arms/baseline-s0", "evals/baseline-s0"]
    for name in [*shared, "arms/beneficial-s0", "evals/beneficial-s0"]:
        _finished_stage(source, name)
    (source / "arms" / "baseline-s1").mkdir()  # killed mid-training: nothing to share
    cfg = control_config(RunConfig(), 1.0, 0.25, seeds=2)
    assert sorted(share_stages(source, dose, cfg)) == sorted(shared)
    assert (dose / "arms" / "baseline-s0" / "weights").read_text() == "arms/baseline-s0"
    assert not (dose / "arms" / "beneficial-s0").exists()
    assert not (dose / "arms" / "baseline-s1").exists()
    # the plan is written before the copied arms, so it still reads "fixed before training"
    assert json.loads((dose / "analysis_plan.json").read_text())["after_training"] is False
    assert share_stages(source, dose, cfg) == []  # a resumed row keeps its own stages


def test_unreadable_results_name_the_file(tmp_path):
    with pytest.raises(BenrlError, match=r"results\.json: cannot read"):
        control_row(tmp_path, 1.0, 0.05)


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"model": "some/hf-model"}, "need `model: organism`"),
        ({"eval": {"models": ["pre", "baseline"]}}, "need baseline and beneficial"),
    ],
)
def test_controls_refuse_a_config_they_cannot_run(tmp_path, update, message):
    data = RunConfig().model_dump()
    for key, value in update.items():
        data[key] = value if not isinstance(value, dict) else {**data[key], **value}
    with pytest.raises(BenrlError, match=message):
        run_controls(RunConfig.model_validate(data), tmp_path)
