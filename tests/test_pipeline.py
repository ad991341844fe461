"""`benrl run` end to end on configs/smoke.yaml: artifacts, report, resume after a kill."""

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from conftest import SMOKE, benrl, run_ok

pytestmark = pytest.mark.slow


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def test_every_stage_writes_a_complete_manifest(smoke_run):
    stages = [
        "scenarios",
        "organism",
        "arms/baseline-s0",
        "arms/beneficial-s0",
        "evals/pre",
        "evals/baseline-s0",
        "evals/beneficial-s0",
        "stress/persona/bad_medical/pre",
        "stress/persona/careful_clinician/beneficial-s0",
        "stress/reference/pre",
        "stress/finetune/baseline-s0/seed-0",
        "directions",
        "report",
    ]
    for stage in stages:
        data = manifest(smoke_run / stage)
        assert data["status"] == "complete", stage
        assert data["stage"] == stage and data["seconds"] >= 0
        assert set(data) >= {"config_hash", "input_hashes", "seed", "packages", "started"}
    assert (smoke_run / "organism" / "model" / "model.safetensors").exists()
    assert (smoke_run / "arms" / "beneficial-s0" / "model" / "model.safetensors").exists()


def test_scored_samples_are_paired_by_record_id(smoke_run):
    for name in ("stop_civic", "capability_add", "pushback_stem"):
        ids = []
        for model in ("pre", "baseline-s0", "beneficial-s0"):
            rows = [
                json.loads(x)
                for x in (smoke_run / "evals" / model / f"{name}.jsonl").read_text().splitlines()
            ]
            assert rows and all(r["status"] in ("ok", "incoherent", "failed") for r in rows)
            assert all(r["score"] is None or 0 <= r["score"] <= 1 for r in rows)
            ids.append([r["id"] for r in rows])
        assert ids[0] == ids[1] == ids[2]


def test_training_logs_rewards_by_source(smoke_run):
    rows = [
        json.loads(x)
        for x in (smoke_run / "arms" / "beneficial-s0" / "log.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))
    assert any("rewards/reward_trait/mean" in r for r in rows)
    assert all(r["num_tokens"] > 0 for r in rows)


def test_report_has_headline_and_table(smoke_run):
    results = json.loads((smoke_run / "report" / "results.json").read_text())
    line = results["headlines"]["beneficial_vs_baseline"]
    assert line.startswith("beneficial vs baseline: ahead on ")
    evals = results["comparisons"]["beneficial_vs_baseline"]["evals"]
    assert len(evals) >= 5
    for e in evals:
        c = e["comparison"]
        assert c["ci_low"] <= c["diff"] <= c["ci_high"] and 0 <= c["p_value"] <= 1
    ahead = sum(e["comparison"]["diff"] > 0 for e in evals)
    assert f"ahead on {ahead} of {len(evals)} evals" in line
    html = (smoke_run / "report" / "report.html").read_text()
    ood = results["comparisons"]["beneficial_vs_baseline"]["ood"]
    cell = f"ahead on {ood['ahead']} of {ood['evals']}; significant gains"
    assert cell in html and "data:image/png;base64," in html  # the OOD headline table
    assert "| stop_civic |" in (smoke_run / "report" / "report.md").read_text()


def test_report_times_every_stage_and_shows_the_card(smoke_run):
    from benrl.report.results import stage_seconds, stage_spans, stage_totals

    parts = stage_seconds(smoke_run)
    totals = stage_totals(stage_spans(smoke_run))
    # every stage that ran has a total, parts of a stage add up to it, and the total adds up
    assert {"scenarios", "organism", "train", "eval", "stress", "directions"} <= set(totals)
    assert "report" not in totals  # still running when the table is written
    arms = sum(v for k, v in parts.items() if k.startswith("arms/"))
    # one worker: the arms one after another (manifests round seconds to 0.01 s, so a
    # span can reach a few ms into the next arm's)
    assert totals["train"] == pytest.approx(arms, abs=0.01 * len(parts))
    assert totals["total"] == pytest.approx(sum(v for k, v in totals.items() if k != "total"))
    card = json.loads((smoke_run / "organism" / "card.json").read_text())
    report = (smoke_run / "report" / "report.md").read_text()
    assert f"| validation loss | {card['pretraining']['val_loss']:.4f} |" in report
    assert f"| total | {totals['total']:.1f} |" in report


def test_rerun_skips_every_stage(smoke_run):
    result = run_ok("run", "--config", str(SMOKE), "--out", str(smoke_run))
    assert result.stderr.count("skip ") >= 8


def test_killed_run_resumes_and_matches(smoke_run, tmp_path):
    out = tmp_path / "killed"
    # The kill comes in training: the stages before it are the session run's, copied (a
    # moved run folder is still complete: its hashes name files relative to the folder).
    for stage in ("scenarios", "organism"):
        shutil.copytree(smoke_run / stage, out / stage)
    proc = benrl("run", "--config", str(SMOKE), "--out", str(out), start_new_session=True)
    target = out / "arms" / "baseline-s0" / "manifest.json"
    deadline = time.time() + 600
    while time.time() < deadline and not (target.exists() and "running" in target.read_text()):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "skip organism" in proc.stderr.read()
    assert manifest(out / "organism")["status"] == "complete"
    organism_stamp = manifest(out / "organism")["started"]
    resumed = run_ok("run", "--config", str(SMOKE), "--out", str(out))
    assert "skip organism" in resumed.stderr and "skip scenarios" in resumed.stderr
    assert manifest(out / "organism")["started"] == organism_stamp
    mine = json.loads((out / "report" / "results.json").read_text())
    reference = json.loads((smoke_run / "report" / "results.json").read_text())
    assert mine["comparisons"] == reference["comparisons"]


def test_bad_input_exits_2_and_keeps_finished_work(smoke_run, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  arms: [baseline, wizard]\n")
    proc = benrl("run", "--config", str(bad), "--out", str(smoke_run))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "wizard" in err and "Traceback" not in err
    assert (smoke_run / "report" / "results.json").exists()
    fresh = tmp_path / "fresh"
    proc = benrl("run", "--config", str(SMOKE), "--out", str(fresh), "--only", "eval")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "run the earlier stages first" in err
    shutil.rmtree(fresh, ignore_errors=True)


def test_report_counts_judge_failures(smoke_run):
    results = json.loads((smoke_run / "report" / "results.json").read_text())
    assert set(results["judge_failures"]) == set(results["models"])
    counts = results["judge_failures"]["pre"]
    assert counts and all(c["failed"] == 0 and c["n"] > 0 for c in counts.values())
    assert "## Judge failures" in (smoke_run / "report" / "report.md").read_text()
    eval_manifest = manifest(smoke_run / "evals" / "pre")
    assert set(eval_manifest["judge_failed"]) == set(counts)
    assert "summary.json" in eval_manifest["outputs"]


def test_disabled_stages_leave_no_stale_sections(smoke_run, tmp_path):
    from benrl.config import load_config
    from benrl.models import expand
    from benrl.report.build import write_report

    before = (smoke_run / "report" / "report.md").read_text()
    assert "## Persistence: persona prompts" in before and "## Inside the model" in before
    cfg = load_config(SMOKE)
    cfg = cfg.model_copy(
        update={
            "stress": cfg.stress.model_copy(update={"enabled": False}),
            "directions": cfg.directions.model_copy(update={"enabled": False}),
        }
    )
    write_report(smoke_run, cfg, expand(cfg.eval.models, cfg.train.seeds), tmp_path)
    after = (tmp_path / "report.md").read_text()
    assert "bad_medical" in before and "Held-out separation" in before
    assert "bad_medical" not in after and "Held-out separation" not in after  # nothing stale
    assert "The directions stage did not run." in after  # headings stay, with why
    assert "The stress sections are left out: stress.enabled is false" in after
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["stress"] == {} and results["directions"] == {}


HOLD_LOCK = """
import sys, time
from pathlib import Path
from benrl.runfolder import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_second_benrl_run_on_a_folder_is_refused(smoke_run):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(smoke_run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = benrl("run", "--config", str(SMOKE), "--out", str(smoke_run))
        _, err = proc.communicate(timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2 and f"pid {holder.pid}" in err and str(smoke_run) in err
    assert "Traceback" not in err
