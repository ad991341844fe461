"""Tests for analysis/plan.py: the plan is written before training and guarded after it."""

import json

import pytest

from benrl.analysis.plan import (
    PLAN_FILE,
    analysis_plan,
    fix_plan,
    plan_check,
    plan_hash,
    read_plan,
)
from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.pipeline import run_pipeline, stage_times_line


def _cfg(**eval_keys) -> RunConfig:
    return RunConfig.model_validate(
        {
            "eval": {"evals": ["stop_health", "capability_add"], **eval_keys},
            "train": {"arms": ["baseline", "beneficial"], "seeds_by_arm": {"baseline": 3}},
        }
    )


def _start_training(run_dir):
    (run_dir / "arms" / "baseline-s0").mkdir(parents=True)
    (run_dir / "arms" / "baseline-s0" / "manifest.json").write_text("{}")


def test_plan_holds_what_the_report_will_test(tmp_path):
    data = fix_plan(tmp_path, _cfg())
    plan = data["plan"]
    assert plan["primary_comparison"] == "beneficial vs baseline" and plan["alpha"] == 0.05
    assert plan["evals"] == ["stop_health", "capability_add"]
    assert plan["seeds"] == {"baseline": 3, "beneficial": 1}
    assert plan["test"].startswith("hierarchical")  # baseline has three seeds
    assert json.loads((tmp_path / PLAN_FILE).read_text())["hash"] == data["hash"]
    assert fix_plan(tmp_path, _cfg())["written"] == data["written"]  # unchanged: kept as is


def test_changed_plan_is_replaced_before_training_and_refused_after(tmp_path):
    first = fix_plan(tmp_path, _cfg())
    second = fix_plan(tmp_path, _cfg(alpha=0.1))  # nothing trained yet: free to change
    assert second["hash"] != first["hash"] and second["replaced"] == []
    _start_training(tmp_path)
    with pytest.raises(BenrlError, match=r"alpha: 0\.1 -> 0\.01.*--force plan"):
        fix_plan(tmp_path, _cfg(alpha=0.01))
    assert read_plan(tmp_path)["hash"] == second["hash"]  # the fixed plan is untouched
    with pytest.raises(BenrlError, match="evals: added"):
        run_pipeline(_cfg(evals=["stop_health", "capability_add", "capability_recall"]), tmp_path)


def test_forced_change_is_recorded_and_reported(tmp_path):
    first = fix_plan(tmp_path, _cfg())
    _start_training(tmp_path)
    forced = fix_plan(tmp_path, _cfg(alpha=0.01), force=True)
    assert [r["hash"] for r in forced["replaced"]] == [first["hash"]]
    check = plan_check(tmp_path, {"alpha": 0.01, "evals": ["stop_health", "capability_add"]})
    assert check["forced_changes"] == [first["hash"]] and check["differences"] == []
    assert "CHANGED after training began (forced)" in check["line"]


def test_report_check_names_what_differs_from_the_plan(tmp_path):
    fix_plan(tmp_path, _cfg())
    analysed = {"alpha": 0.05, "evals": ["capability_add", "stop_health", "pushback_stem"]}
    check = plan_check(tmp_path, analysed)
    assert check["differences"] == ["evals: added ['pushback_stem']"]
    assert "fixed before training" in check["line"] and "pushback_stem" in check["line"]
    assert plan_check(tmp_path / "none", analysed)["hash"] is None


def test_plan_written_late_says_so(tmp_path):
    _start_training(tmp_path)
    assert fix_plan(tmp_path, _cfg())["after_training"] is True
    assert "written after training" in plan_check(tmp_path, {})["line"]


def test_unseen_domain_evals_are_those_the_arm_never_trained_on():
    cfg = RunConfig.model_validate(
        {"train": {"arms": ["baseline", "health_only"]}, "eval": {"compare": "health_only"}}
    )
    plan = analysis_plan(cfg)
    unseen = plan["unseen_domain_evals"]
    assert unseen and "pushback_health" not in unseen and set(unseen) < set(plan["evals"])


def test_the_plan_fixes_the_ood_headline_evals_before_training():
    """The headline's eval set (the trait split's OOD evals) is part of the hashed plan."""
    plan = analysis_plan(RunConfig.model_validate({"train": {"arms": ["baseline", "beneficial"]}}))
    assert len(plan["ood_evals"]) == 54 and "stop_health" in plan["ood_evals"]
    assert "exceed_health" not in plan["ood_evals"]  # a trained probe: in distribution
    off = RunConfig.model_validate({"train": {"hold_out_traits": False}})
    assert analysis_plan(off)["ood_evals"] == []
    assert plan_hash(plan) != plan_hash(analysis_plan(off))


def test_stage_times_line_lists_each_stage_and_the_total():
    line = stage_times_line({"scenarios": 7.6, "organism": 175.1, "train": 1017.3})
    assert line == "stage times: scenarios 8 s, organism 175 s, train 1017 s; total 20.0 min"
