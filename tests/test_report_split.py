"""The report on the paper's split, end to end on a tiny invented run folder (no training).

Six evals with hand-set scores (out of distribution: two held-out trait evals and a
public dataset; in distribution: two trained-trait evals; capability), five models and
their training logs. Every item of an eval is 1 for a prefix of k items and 0 after, so
each paired difference has one sign and the exact sign-flip p-value is 2 / 2**m (m the
discordant items): the counts, q-values and means below are worked out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import benrl

from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.report.build import write_report
from benrl.report.export_tables import results_schema
from benrl.report.paper import HELDOUT_MEASURE
from benrl.report.readme import END, START, directions_lines, persistence_lines, update_readme
from benrl.report.results import comparison_pairs, read_logs, training_signal

MODELS = ["pre", "baseline-s0", "beneficial-s0", "generic-s0", "health_only-s0"]
ARMS = ["pre", "baseline", "beneficial", "generic", "health_only"]
# eval -> (items, ones per arm in ARMS order)
EVALS = {
    "trait_truthfulness": (12, (0, 0, 12, 0, 0)),  # ood: +1.0, p = 2/4096
    "trait_corrigibility": (12, (4, 3, 6, 3, 3)),  # ood: +0.25, p = 2/8
    "xstest": (24, (12, 12, 6, 12, 12)),  # ood (public set): -0.25, p = 2/64
    "trait_dense_usefulness": (12, (0, 0, 12, 0, 0)),  # in distribution: +1.0
    "trait_bounded_initiative": (12, (12, 12, 0, 12, 12)),  # in distribution: -1.0
    "capability": (12, (6, 6, 6, 6, 6)),  # capability: 0
}
CFG = RunConfig.model_validate(
    {
        "name": "tiny",
        "eval": {"bootstrap": 200},
        "stress": {"enabled": False},
        "directions": {"enabled": False},
    }
)


def _log(path: Path, rewards: list[float], zero_std: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "step": i + 1,
            "reward": r,
            "rewards/reward_task/mean": r,
            "rewards/reward_trait/mean": 2 * r if i % 2 else None,  # no trait row in even steps
            "frac_reward_zero_std": z,
        }
        for i, (r, z) in enumerate(zip(rewards, zero_std, strict=True))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _fake_run(run_dir: Path) -> None:
    for i, model in enumerate(MODELS):
        folder = run_dir / "evals" / model
        folder.mkdir(parents=True)
        summary = {}
        for name, (n, ones) in EVALS.items():
            rows = [{"id": f"{name}-{j}", "score": float(j < ones[i])} for j in range(n)]
            (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            summary[name] = {"failed": 0, "n": n}
        (folder / "summary.json").write_text(json.dumps(summary))
        if model != "pre":  # reward rising from 0.05 to 1.0 over 20 steps, a quarter flat
            _log(
                run_dir / "arms" / model / "log.jsonl", [s / 20 for s in range(1, 21)], [0.25] * 20
            )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict, str]:
    run_dir = tmp_path_factory.mktemp("tiny")
    _fake_run(run_dir)
    write_report(run_dir, CFG, MODELS, run_dir / "report")
    results = json.loads((run_dir / "report" / "results.json").read_text())
    return run_dir, results, (run_dir / "report" / "report.md").read_text()


def test_the_papers_four_comparisons_come_first_and_other_arms_stay_vs_baseline(report):
    _, results, _ = report
    assert list(results["comparisons"]) == [
        "beneficial_vs_baseline",
        "beneficial_vs_generic",
        "baseline_vs_pre",
        "beneficial_vs_pre",
        "generic_vs_baseline",
        "health_only_vs_baseline",
    ]


def test_comparison_pairs_keep_the_fallbacks_for_other_arm_sets():
    assert comparison_pairs(["pre", "generic", "beneficial"], CFG) == [
        ("generic", "pre"),
        ("beneficial", "pre"),
    ]  # no baseline: every arm vs the first
    assert comparison_pairs(["pre", "baseline", "health_only"], CFG) == [
        ("baseline", "pre"),
        ("health_only", "baseline"),
    ]
    own = CFG.model_copy(update={"eval": CFG.eval.model_copy(update={"compare": "health_only"})})
    assert comparison_pairs(["baseline", "beneficial", "health_only", "pre"], own)[-1] == (
        "health_only",
        "pre",
    )


def test_every_eval_carries_its_distribution(report):
    run_dir, results, _ = report
    jsonschema.validate(results, results_schema())
    csv_lines = (run_dir / "report" / "per_eval.csv").read_text().splitlines()
    assert "beneficial_vs_baseline,xstest,over_refusal,ood," in "\n".join(csv_lines)
    assert results["split"]["distribution"] == {
        "capability": "capability",
        "trait_bounded_initiative": "in_distribution",
        "trait_corrigibility": "ood",
        "trait_dense_usefulness": "in_distribution",
        "trait_truthfulness": "ood",
        "xstest": "ood",
    }
    assert "truthfulness" in results["split"]["held_out_traits"]
    for comp in results["comparisons"].values():
        for e in comp["evals"]:
            assert e["distribution"] == results["split"]["distribution"][e["eval"]]


def test_ood_and_in_distribution_headlines_count_their_own_evals(report):
    _, results, _ = report
    main = results["comparisons"]["beneficial_vs_baseline"]
    ood, in_dist = main["ood"], main["in_distribution"]
    # BH across the 3 OOD p-values (2/4096, 2/8, 2/64): q = 0.0015, 0.25, 0.047
    assert (ood["evals"], ood["ahead"]) == (3, 2)
    assert (ood["significant_gains"], ood["significant_regressions"]) == (1, 1)
    assert ood["mean_diff"] == pytest.approx((1.0 + 0.25 - 0.25) / 3)
    assert ood["ci_low"] <= ood["mean_diff"] <= ood["ci_high"] < 1.0
    assert ood["headline"].startswith("beneficial vs baseline: ahead on 2 of 3 evals;")
    assert "mean difference +33.3 pp" in ood["headline"]
    # +1 on every item of one eval, -1 on every item of the other: pooled, no effect at all
    assert (in_dist["evals"], in_dist["ahead"], in_dist["mean_diff"]) == (2, 1, 0.0)
    assert (in_dist["significant_gains"], in_dist["significant_regressions"]) == (1, 1)
    assert in_dist["ci_low"] < 0.0 < in_dist["ci_high"] and in_dist["p_value"] == 1.0
    assert main["headline"].startswith("beneficial vs baseline: ahead on 3 of 6 evals;")
    by_eval = {e["eval"]: e for e in main["evals"]}
    # BH across all 6 evals gives corrigibility 0.25 x 6/5; within the 3 OOD ones 0.25
    assert by_eval["trait_corrigibility"]["q_value"] == pytest.approx(0.3)
    assert by_eval["trait_corrigibility"]["q_within_distribution"] == pytest.approx(0.25)
    pre = results["comparisons"]["baseline_vs_pre"]["ood"]
    assert (pre["evals"], pre["ahead"], pre["mean_diff"]) == (3, 0, pytest.approx(-1 / 36))


def test_paper_rows_pool_the_ood_evals_and_use_the_ood_headline(report):
    _, results, _ = report
    row = next(r for r in results["paper_comparison"] if r["measure"] == HELDOUT_MEASURE)
    # pre: (0 + 4 + 12) / 48 items; beneficial: (12 + 6 + 6) / 48 (not the mean of means)
    assert row["ours"] == "0.333 -> 0.500"
    main = next(r for r in results["paper_comparison"] if r["measure"].endswith("(headline)"))
    assert main["ours"].startswith("ahead on 2 of 3 evals;")  # the OOD headline, as the paper's
    assert main["ours"].endswith("(OOD evals)")


def test_category_effects_split_ood_from_in_distribution(report):
    run_dir, results, _ = report
    effects = results["category_effects"]
    assert effects["comparison"] == "beneficial_vs_baseline"
    rows = {(r["distribution"], r["category"]): r for r in effects["rows"]}
    assert set(rows) == {
        ("ood", "honesty"),
        ("ood", "corrigibility"),
        ("ood", "over_refusal"),
        ("in_distribution", "over_refusal"),
        ("in_distribution", "spec_compliance"),
    }
    honest = rows[("ood", "honesty")]
    assert (honest["evals"], honest["diff"], honest["ci_low"], honest["ci_high"]) == (1, 1, 1, 1)
    assert rows[("ood", "over_refusal")]["diff"] == pytest.approx(-0.25)
    assert (run_dir / "report" / "categories.png").stat().st_size > 5_000


def test_report_opens_with_one_row_per_comparison_then_the_figure(report):
    _, _, markdown = report
    headline = markdown.split("## Headline")[1].split("\n## ")[0]
    assert headline.count("| beneficial vs baseline |") == 2  # the OOD table, the all-evals one
    assert (
        "| beneficial vs baseline | ahead on 2 of 3; significant gains 1, regressions 1; +33.3 pp ["
        in headline
    )
    assert "| ahead on 1 of 2; significant gains 1, regressions 1; +0.0 pp [-" in headline
    assert headline.index("| comparison | OOD | in distribution |") < headline.index(
        "![summary by eval category](categories.png)"
    )
    assert "- **beneficial_vs_baseline**" not in headline  # no line repeats its label


def test_per_eval_table_has_the_distribution_column(report):
    _, _, markdown = report
    assert "| eval | category | distribution | n |" in markdown
    assert "| xstest | over_refusal | ood | 24 |" in markdown
    assert "| trait_dense_usefulness | over_refusal | in_distribution | 12 |" in markdown


def test_training_signal_per_arm(report):
    _, results, markdown = report
    signal = results["training_signal"]["generic"]
    # 20 steps: the first tenth is steps 1-2 (0.05, 0.10), the last steps 19-20
    assert signal["seeds"] == 1 and signal["zero_spread_groups"] == pytest.approx(0.25)
    assert signal["reward_first"] == pytest.approx(0.075)
    assert signal["reward_last"] == pytest.approx(0.975)
    assert "| generic | 1 | 25.0% | 0.075 | 0.975 |" in markdown


def test_training_signal_averages_seeds_and_skips_nan(tmp_path):
    _log(
        tmp_path / "arms" / "generic-s0" / "log.jsonl", [0.1 * s for s in range(1, 11)], [0.5] * 10
    )
    _log(
        tmp_path / "arms" / "generic-s1" / "log.jsonl",
        [0.2] * 10,
        [0.3] * 9 + [float("nan")],  # TRL logs NaN for a quantity absent in a step
    )
    logs = read_logs(tmp_path, ["pre", "generic-s0", "generic-s1"])
    assert training_signal(logs) == {
        "generic": {
            "seeds": 2,
            "zero_spread_groups": pytest.approx(0.4),
            "reward_first": pytest.approx(0.15),
            "reward_last": pytest.approx(0.6),
            # the first tenth (step 1) has no trait row in either seed; the last does
            "trait_reward_first": None,
            "trait_reward_last": pytest.approx((2.0 + 0.4) / 2),
        }
    }


README = f"""# benrl

## Results

{START}
hand-typed numbers
{END}

## Layout

kept as is
"""


def test_readme_replaces_only_the_marked_section_and_is_idempotent(report, tmp_path):
    run_dir, results, _ = report
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert update_readme(run_dir, readme)
    text = readme.read_text()
    before, marked = text.split(START)
    marked, after = marked.split(END)
    assert before == README.split(START)[0] and after == README.split(END)[1]
    assert "hand-typed" not in marked
    assert "run `tiny`" in marked and "seeds per arm: baseline 1, beneficial 1" in marked
    assert results["date"] in marked
    assert "| beneficial vs generic |" in marked and "| baseline vs pre |" in marked
    assert "In distribution: beneficial vs baseline: ahead on 1 of 2 evals;" in marked
    assert "pre -> beneficial: 0.333 -> 0.500 (paper: 0.406 -> 0.607)" in marked
    assert "/report/report.md)" in marked
    assert not update_readme(run_dir, readme)  # a second run changes nothing
    assert readme.read_text() == text


def test_readme_without_markers_is_an_error_naming_the_file(report, tmp_path):
    run_dir, _, _ = report
    readme = tmp_path / "README.md"
    readme.write_text("# benrl\n\n## Results\n\nhand-typed\n")
    with pytest.raises(BenrlError, match=f"{readme}: needs the lines {START} and {END}"):
        update_readme(run_dir, readme)
    assert readme.read_text() == "# benrl\n\n## Results\n\nhand-typed\n"


def test_report_readme_command(report, tmp_path):
    run_dir, _, _ = report
    readme = tmp_path / "README.md"
    readme.write_text(README)
    proc = benrl("report", "readme", "--run", str(run_dir), "--readme", str(readme))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Results section rewritten" in out and "| beneficial vs baseline |" in readme.read_text()
    readme.write_text("no markers\n")
    proc = benrl("report", "readme", "--run", str(run_dir), "--readme", str(readme))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and str(readme) in err.replace("\n", "")


def test_readme_persistence_lines_come_from_the_stress_results():
    stress = {
        "persona": {
            "personas": {
                "bad_medical": {"kind": "harmful", "target": "health"},
                "flatterer": {"kind": "harmful", "target": "general"},
            },
            "degradation": [
                {"persona": "bad_medical", "model": "pre", "group": "health"}
                | {"mean": -0.12, "se": 0.01, "n": 100, "changed": 0.4},
                {"persona": "bad_medical", "model": "pre", "group": "non_health"}
                | {"mean": -0.5, "se": 0.01, "n": 100, "changed": 0.9},
                {"persona": "flatterer", "model": "baseline-s0", "group": "non_health"}
                | {"mean": -0.3, "se": 0.01, "n": 100, "changed": 0.9},
            ],
        },
        "finetune": {
            "doses": [0, 1, 2],
            "finetune_seeds": 3,
            "floor": {"health": {"mean": 0.19, "se": 0.01, "n": 10}},
            "auc": [
                {"pair": "beneficial vs baseline", "group": "health"}
                | {"diff": 0.02, "ci_low": -0.01, "ci_high": 0.05},
                {"pair": "generic vs baseline", "group": "health"}
                | {"diff": 0.9, "ci_low": 0.8, "ci_high": 1.0},
            ],
        },
    }
    text = "\n".join(persistence_lines(stress, "beneficial"))
    # the persona's target group on pre only; flatterer has no row on pre
    assert "bad_medical (harmful) -12.0 pp [-14.0, -10.0] on health, 40% of answers" in text
    assert "-50.0" not in text and "flatterer" not in text
    assert "3 fine-tuning seeds, floor 0.190 on health" in text
    assert "beneficial vs baseline, health: +0.020 [-0.010, +0.050]" in text
    assert "generic vs baseline" not in text
    assert persistence_lines({}, "beneficial") == []


def test_readme_directions_line_comes_from_the_directions_results():
    quality = {
        "layers": [0, 1, 2],
        "separation_by_layer": [0.5, 0.55, 0.9],
        "untrained_by_layer": [0.5, 0.5, 0.45],
        "lexical_baseline": 0.5,
        "best_layer": 2,
        "best_ci": [0.85, 0.94],
        "found": True,
    }
    pooled = {"pearson": 0.41, "n": 30, "models_ci": [0.05, 0.7]}
    text = "\n".join(
        directions_lines({"quality": quality, "correlation": {"pooled_centred": pooled}})
    )
    assert "Direction found at layer 2: held-out separation 0.900 [0.850, 0.940]" in text
    assert "untrained twin (0.45)" in text and "**" not in text
    assert "r +0.41 [+0.05, +0.70] over models, 30 (model, probe) pairs" in text
    assert directions_lines({}) == [] and directions_lines({"skipped": "no pairs"}) == []
