"""The report with several training seeds, built from the session's smoke run (no new run).

The smoke run trains one seed per arm; here its eval samples are copied and two more
seeds of baseline and beneficial are made by flipping a few items' scores, then the
report is written in-process. That exercises the seed-level statistics, the seed A/A,
the per-probe summary and the analysis-plan check of the report end to end in ~1 s.
"""

import json
import shutil

import numpy as np
import pytest
from conftest import SMOKE

from benrl.config import load_config
from benrl.report.build import write_report
from benrl.run import Run

pytestmark = pytest.mark.slow


def _extra_seed(src, dst, rng, share: float = 0.08) -> None:
    """A copy of one model's eval folder with `share` of the scored items flipped."""
    shutil.copytree(src, dst)
    for path in dst.glob("*.jsonl"):
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        for row in rows:
            if row["score"] is not None and rng.random() < share:
                row["score"] = 1.0 - row["score"]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def seeded(smoke_run, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("seeded")
    shutil.copytree(smoke_run / "evals", run_dir / "evals")
    shutil.copy(smoke_run / "analysis_plan.json", run_dir / "analysis_plan.json")
    rng = np.random.default_rng(0)
    for arm in ("baseline", "beneficial"):
        for seed in (1, 2):
            _extra_seed(
                smoke_run / "evals" / f"{arm}-s0", run_dir / "evals" / f"{arm}-s{seed}", rng
            )
    cfg = load_config(SMOKE).model_copy(deep=True)
    cfg.train.seeds_by_arm = {"baseline": 3, "beneficial": 3}
    write_report(run_dir, cfg, Run(cfg, run_dir).model_ids(), run_dir / "report")
    results = json.loads((run_dir / "report" / "results.json").read_text())
    return results, (run_dir / "report" / "report.md").read_text()


def test_one_seed_report_says_its_cis_are_conditional_and_prints_the_plan(smoke_run):
    results = json.loads((smoke_run / "report" / "results.json").read_text())
    main = results["comparisons"]["beneficial_vs_baseline"]
    assert main["headline"].endswith("; conditional on one training run")
    assert {e["comparison"]["inference"] for e in main["evals"]} == {
        "conditional on one training run"
    }
    plan = json.loads((smoke_run / "analysis_plan.json").read_text())
    assert (
        results["analysis_plan"]["hash"] == plan["hash"]
        and results["analysis_plan"]["differences"] == []
    )
    report = (smoke_run / "report" / "report.md").read_text()
    assert (
        f"analysis plan {plan['hash']} (fixed before training); the analysis matches the plan"
        in report
    )
    assert "seed A/A: needs two or more baseline seeds (this run has 1)" in report


def test_multi_seed_report_uses_the_seed_as_a_unit(seeded):
    results, _ = seeded
    main = results["comparisons"]["beneficial_vs_baseline"]
    assert "hierarchical over training seeds (3 vs 3 seeds)" in main["headline"]
    for e in main["evals"]:
        c = e["comparison"]
        assert c["inference"] == "hierarchical over training seeds" and c["seed_df"] == 2.0
        assert c["ci_low"] <= c["diff"] <= c["ci_high"] and c["item_p_value"] is not None
        assert c["seed_sd_a"] is not None and c["n_discordant"] >= 0
    pre = results["comparisons"]["beneficial_vs_pre"]["evals"][0]["comparison"]
    assert (pre["n_seeds_a"], pre["n_seeds_b"]) == (3, 1)
    assert results["seeds"]["baseline"]["n_seeds"] == 3


def test_multi_seed_report_prints_the_seed_aa_probes_and_plan_differences(seeded):
    results, report = seeded
    aa = results["seed_aa"]
    assert aa["available"] and aa["halves"] == [[0], [1, 2]]
    headline = report.split("## Headline")[1].split("##")[0]
    assert aa["line"] in headline and results["probe_summary"]["headline"] in headline
    assert results["probe_summary"]["all_evals"]["line"] in headline
    assert "effective number of evals:" in headline
    # the smoke run's plan fixed one seed per arm; this analysis had three
    assert any(d.startswith("seeds:") for d in results["analysis_plan"]["differences"])
    assert "the analysis differs from the plan: " in headline
    assert "| seed SD (pp) | discordant |" in report
