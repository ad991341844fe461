"""Tests for evaluation/stats.py: hand-checked values, scipy oracles, null calibration, A/A."""

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from benrl.errors import BenrlError
from benrl.evaluation.headlines import headline, pooled_comparison, restrict, tally
from benrl.evaluation.stats import (
    EvalComparison,
    aa_false_discovery,
    aggregate_seeds,
    benjamini_hochberg,
    compare_evals,
    paired_comparison,
    seed_spread,
    summarize,
)


def _ids(values: list[float], prefix: str = "r") -> dict[str, float]:
    return {f"{prefix}{i}": float(v) for i, v in enumerate(values)}


def _bernoulli_pair(rng: np.random.Generator, n: int, shift: float = 0.0):
    """Two score sets on the same n items with item-specific success rates."""
    p = rng.uniform(0.1, 0.9, n)
    a = (rng.random(n) < np.clip(p + shift, 0, 1)).astype(float)
    b = (rng.random(n) < p).astype(float)
    return _ids(a), _ids(b)


# --- summarize ---------------------------------------------------------------------


def test_summarize_hand_checked():
    s = summarize(_ids([0, 1, 1, 0]), refusals={"r0": True, "r1": False, "r2": False, "r3": False})
    assert s.n == 4
    assert s.mean == 0.5
    assert s.se == pytest.approx(math.sqrt(1 / 3) / 2)  # sd = sqrt(1/3) with ddof=1
    assert s.refusal_rate == 0.25
    assert summarize(_ids([0.7])).se is None
    assert summarize(_ids([0.7])).refusal_rate is None


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_summarize_rejects_scores_outside_unit_interval(bad):
    with pytest.raises(BenrlError, match="'r1'"):
        summarize(_ids([0.5, bad]), what="eval 'x'")


def test_summarize_needs_a_flag_per_item_and_some_scores():
    with pytest.raises(BenrlError, match="'r1' has no refusal flag"):
        summarize(_ids([0, 1]), refusals={"r0": False})
    with pytest.raises(BenrlError, match="no scores"):
        summarize({})


# --- paired_comparison -------------------------------------------------------------


def test_paired_comparison_pairs_by_id_and_reports_unpaired():
    a = {"x": 1.0, "y": 0.0, "z": 1.0, "only_a": 1.0}
    b = {"z": 0.0, "y": 0.0, "x": 0.5, "only_b1": 0.0, "only_b2": 1.0}
    c = paired_comparison(a, b, n_boot=500)
    assert (c.n, c.n_unpaired_a, c.n_unpaired_b) == (3, 1, 2)
    assert c.mean_a == pytest.approx(2 / 3)
    assert c.mean_b == pytest.approx(0.5 / 3)
    d = np.array([0.5, 0.0, 1.0])  # x, y, z
    assert c.diff == pytest.approx(d.mean())
    assert c.se == pytest.approx(d.std(ddof=1) / math.sqrt(3))
    assert c.ci_low <= c.diff <= c.ci_high
    assert c.ci_low >= 0.0 and c.ci_high <= 1.0
    # two non-zero differences: 4 sign patterns, |sum| >= 1.5 for 2 of them
    assert (c.p_value, c.p_method) == (0.5, "exact sign-flip")


def test_paired_comparison_needs_common_ids():
    with pytest.raises(BenrlError, match="no common record ids"):
        paired_comparison({"a": 1.0}, {"b": 1.0})


def test_all_zero_differences_give_p_one_and_point_ci():
    a = _ids([1, 0, 1, 1, 0])
    c = paired_comparison(a, dict(a))
    assert (c.diff, c.p_value, c.p_method) == (0.0, 1.0, "degenerate")
    assert (c.ci_low, c.ci_high, c.se) == (0.0, 0.0, 0.0)


def test_exact_p_value_hand_checked():
    # differences 1,1,0,1,-1,1,0,1: six non-zero +-1, sum 4; |S| >= 4 for 14 of 64 patterns
    a = _ids([1, 1, 0, 1, 0, 1, 1, 1])
    b = _ids([0, 0, 0, 0, 1, 0, 1, 0])
    c = paired_comparison(a, b)
    assert c.p_value == pytest.approx(14 / 64)
    assert c.p_method == "exact sign-flip"


@pytest.mark.parametrize("case", range(6))
def test_exact_p_value_matches_scipy_permutation_test(case):
    rng = np.random.default_rng(case)
    n = 6 + case
    a = rng.choice([0.0, 0.25, 0.5, 1.0], n)
    b = rng.choice([0.0, 0.5, 1.0], n)
    ours = paired_comparison(_ids(a), _ids(b), n_boot=100).p_value
    d = a - b
    d = d[d != 0]
    ref = sps.permutation_test(
        (d,), lambda x, axis: np.sum(x, axis=axis), permutation_type="samples", n_resamples=10**6
    ).pvalue
    assert ours == pytest.approx(min(1.0, ref))


def test_monte_carlo_p_value_close_to_exact_and_never_zero():
    # 16 non-zero differences (11 of +1, 5 of -1), sum 6; P(|S| >= 6) = 2 * 6885 / 2**16
    a = _ids([1] * 11 + [0] * 5 + [0.5] * 10)
    b = _ids([0] * 11 + [1] * 5 + [0.5] * 10)
    exact = paired_comparison(a, b, n_boot=100, n_perm=2**16)
    mc = paired_comparison(a, b, n_boot=100, n_perm=20_000)
    assert exact.p_method == "exact sign-flip"
    assert exact.p_value == pytest.approx(2 * 6885 / 2**16)
    assert mc.p_method == "monte-carlo sign-flip"
    assert abs(mc.p_value - exact.p_value) < 0.01
    strong = paired_comparison(_ids([1] * 60), _ids([0] * 60), n_boot=100, n_perm=1000)
    assert strong.p_value == pytest.approx(1 / 1001)


def test_bootstrap_ci_matches_normal_approximation_for_large_n():
    rng = np.random.default_rng(3)
    a, b = _bernoulli_pair(rng, 2000, shift=0.05)
    c = paired_comparison(a, b, n_boot=4000)
    assert c.ci_low == pytest.approx(c.diff - 1.96 * c.se, abs=0.15 * c.se)
    assert c.ci_high == pytest.approx(c.diff + 1.96 * c.se, abs=0.15 * c.se)


def test_paired_comparison_is_deterministic_per_seed():
    rng = np.random.default_rng(4)
    a, b = _bernoulli_pair(rng, 50)
    assert paired_comparison(a, b, seed=1) == paired_comparison(a, b, seed=1)
    assert paired_comparison(a, b, seed=1).p_value != paired_comparison(a, b, seed=2).p_value


def test_sign_flip_p_values_are_calibrated_under_the_null():
    rng = np.random.default_rng(5)
    pairs = [_bernoulli_pair(rng, 30) for _ in range(600)]
    p = [paired_comparison(a, b, n_boot=10, n_perm=2000).p_value for a, b in pairs]
    share = np.mean(np.array(p) < 0.05)
    assert 0.02 <= share <= 0.07  # valid (not above alpha) and not uselessly conservative


# --- benjamini_hochberg ------------------------------------------------------------


def test_benjamini_hochberg_hand_checked():
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([0.5, 0.9]) == pytest.approx([0.9, 0.9])  # monotone
    assert benjamini_hochberg([0.8, 0.9, 0.95]) == pytest.approx([0.95, 0.95, 0.95])
    assert benjamini_hochberg([0.6, 0.7]) == pytest.approx([0.7, 0.7])
    assert benjamini_hochberg([0.9, 1.0, 1.0]) == [1.0, 1.0, 1.0]  # capped at 1
    assert benjamini_hochberg([]) == []


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(6)
    for size in (1, 2, 7, 53):
        p = np.concatenate([rng.uniform(0, 0.01, size // 3), rng.uniform(0, 1, size - size // 3)])
        ours = benjamini_hochberg(list(p))
        assert ours == pytest.approx(sps.false_discovery_control(p, method="bh"))
        order = np.argsort(p)
        assert np.all(np.diff(np.array(ours)[order]) >= 0)


def test_benjamini_hochberg_rejects_invalid_p():
    with pytest.raises(BenrlError, match="p-values"):
        benjamini_hochberg([0.1, 1.2])


# --- seeds ---------------------------------------------------------------------------


def test_aggregate_seeds_means_per_item_over_available_seeds():
    per_seed = {0: {"a": 1.0, "b": 0.0}, 1: {"a": 0.0, "b": 0.0}, 2: {"a": 1.0}}
    assert aggregate_seeds(per_seed) == pytest.approx({"a": 2 / 3, "b": 0.0})
    with pytest.raises(BenrlError):
        aggregate_seeds({})


def test_seed_spread_is_sd_of_per_seed_means():
    s = seed_spread({2: _ids([1, 1]), 0: _ids([0, 1]), 1: _ids([0, 0])})
    assert (s.n_seeds, s.seeds, s.seed_means) == (3, [0, 1, 2], [0.5, 0.0, 1.0])
    assert s.mean == 0.5
    assert s.sd == pytest.approx(0.5)
    assert seed_spread({0: _ids([1.0])}).sd is None


# --- compare_evals and headline ----------------------------------------------------


def _three_evals(rng):
    n = 40
    gain = {"m": _ids([1] * 30 + [0] * 10), "base": _ids([0] * 30 + [0] * 10)}
    loss = {"m": _ids([0] * 35 + [1] * 5), "base": _ids([1] * 40)}
    null_a, null_b = _bernoulli_pair(rng, n)
    return {"gain": gain, "null": {"m": null_a, "base": null_b}, "loss": loss}


def test_compare_evals_flags_gains_and_regressions_after_bh():
    rows = compare_evals(_three_evals(np.random.default_rng(8)), "m", "base", n_boot=200)
    assert [r.eval for r in rows] == ["gain", "null", "loss"]
    assert [r.q_value for r in rows] == benjamini_hochberg([r.comparison.p_value for r in rows])
    by = {r.eval: r for r in rows}
    assert by["gain"].significant_gain and not by["gain"].significant_regression
    assert by["loss"].significant_regression and not by["loss"].significant_gain
    assert not (by["null"].significant_gain or by["null"].significant_regression)
    assert by["gain"].comparison.diff == pytest.approx(0.75)
    assert by["gain"].model_summary.mean == 0.75 and by["gain"].against_summary.mean == 0.0


def test_compare_evals_results_are_json_serialisable_and_stable_per_eval():
    scores = _three_evals(np.random.default_rng(9))
    rows = compare_evals(scores, "m", "base", n_boot=200)
    text = json.dumps([dataclasses.asdict(r) for r in rows], allow_nan=False)
    assert json.loads(text)[0]["comparison"]["n"] == 40
    # an eval's numbers do not depend on which other evals are compared with it
    alone = compare_evals({"null": scores["null"]}, "m", "base", n_boot=200)
    assert alone[0].comparison == rows[1].comparison


def test_compare_evals_names_the_eval_with_missing_model():
    with pytest.raises(BenrlError, match="eval 'e1': no scores for model 'base'"):
        compare_evals({"e1": {"m": _ids([1.0])}}, "m", "base")
    with pytest.raises(BenrlError, match=r"eval 'e1'.*no common record ids"):
        compare_evals({"e1": {"m": {"x": 1.0}, "base": {"y": 1.0}}}, "m", "base")


def test_excluding_refusals_removes_a_gain_that_only_comes_from_refusing():
    # base refuses (score 0) on 20 of 40 items; otherwise both models are the same
    answered = [1.0, 0.0] * 10
    m = _ids(answered + answered)
    base = _ids(answered + [0.0] * 20)
    scores = {"e": {"m": m, "base": base}}
    flags = {
        "e": {"m": {k: False for k in m}, "base": {f"r{i}": i >= 20 for i in range(40)}},
    }
    full = compare_evals(scores, "m", "base", n_boot=200, refusals=flags)[0]
    assert full.significant_gain
    assert (full.model_summary.refusal_rate, full.against_summary.refusal_rate) == (0.0, 0.5)
    assert not full.refusals_excluded and full.n_excluded_refusals == 0
    kept = compare_evals(scores, "m", "base", n_boot=200, refusals=flags, exclude_refusals=True)[0]
    assert kept.refusals_excluded and kept.n_excluded_refusals == 20
    assert kept.comparison.n == 20
    assert (kept.comparison.diff, kept.comparison.p_value) == (0.0, 1.0)
    assert not kept.significant_gain
    assert kept.against_summary.refusal_rate == 0.5  # reported before exclusion


def test_excluding_refusals_needs_flags_for_every_eval():
    scores = {"e": {"m": _ids([1.0, 0.0]), "base": _ids([0.0, 0.0])}}
    with pytest.raises(BenrlError, match="needs refusal flags"):
        compare_evals(scores, "m", "base", exclude_refusals=True)
    with pytest.raises(BenrlError, match="eval 'e': no refusal flags"):
        compare_evals(scores, "m", "base", refusals={}, exclude_refusals=True)
    partial = {"e": {"m": {"r0": False, "r1": False}, "base": {"r0": True}}}
    with pytest.raises(BenrlError, match="'r1' has no refusal flag"):
        compare_evals(scores, "m", "base", refusals=partial, exclude_refusals=True)


def _fake(name: str, diff: float, q: float, excluded: bool = False) -> EvalComparison:
    rows = compare_evals({name: {"m": _ids([0.5]), "b": _ids([0.5])}}, "m", "b", n_boot=1)
    comparison = dataclasses.replace(rows[0].comparison, diff=diff)
    return dataclasses.replace(
        rows[0], comparison=comparison, q_value=q, refusals_excluded=excluded
    )


def test_headline_in_the_papers_form():
    rows = [
        _fake("a", 0.20, 0.01),
        _fake("b", 0.05, 0.20),
        _fake("c", 0.0, 1.0),  # a tie is not "ahead"
        _fake("d", -0.10, 0.04),
    ]
    assert headline(rows, "m", "b", 0.05) == (
        "m vs b: ahead on 2 of 4 evals; significant gains 1, significant regressions 1 "
        "(BH q < 0.05); mean difference +3.8 pp"
    )
    assert "significant regressions 0 (BH q < 0.01)" in headline(rows, "m", "b", 0.01)
    negative = headline([_fake("a", -0.00004, 0.9, excluded=True)], "m", "b")
    assert negative.endswith("mean difference +0.0 pp; refusals excluded")
    assert headline([_fake("a", -0.123, 0.9)], "m", "b").endswith("-12.3 pp")


def test_tally_counts_what_the_headline_prints():
    rows = [_fake("a", 0.20, 0.01), _fake("b", 0.05, 0.20), _fake("d", -0.10, 0.04)]
    t = tally(rows, 0.05)
    assert (t.evals, t.ahead, t.significant_gains, t.significant_regressions) == (3, 2, 1, 1)
    assert t.mean_diff == pytest.approx(0.05)


def test_restrict_redoes_bh_across_the_subset_only():
    rows = [_fake(name, 0.1, 0.5) for name in "abcd"]
    p_values = {"a": 0.001, "b": 0.001, "c": 0.001, "d": 0.04}
    rows = [
        dataclasses.replace(
            r, comparison=dataclasses.replace(r.comparison, p_value=p_values[r.eval])
        )
        for r in rows
    ]
    # alone, d's q is its p; with a, b and c beside it, still 0.04 x 4 / 4
    assert [r.q_value for r in restrict(rows, ["d"])] == [pytest.approx(0.04)]
    subset = restrict(rows, ["d", "a"])  # the input's order is kept
    assert [r.eval for r in subset] == ["a", "d"]
    assert [r.q_value for r in subset] == [pytest.approx(0.002), pytest.approx(0.04)]
    assert all(r.significant_gain for r in subset)
    assert restrict(rows, []) == []


def test_pooled_comparison_is_the_mean_over_evals_with_the_seed_level_test():
    rng = np.random.default_rng(5)
    items = {e: [f"{e}{i}" for i in range(30)] for e in ("a", "b")}
    per_seed = {
        e: {
            arm: {s: {r: float(rng.random() < p) for r in ids} for s in range(3)}
            for arm, p in (("m", 0.7), ("o", 0.4))
        }
        for e, ids in items.items()
    }
    scores = {
        e: {arm: aggregate_seeds(seeds) for arm, seeds in arms.items()}
        for e, arms in per_seed.items()
    }
    per_eval = compare_evals(scores, "m", "o", per_seed=per_seed)
    pooled = pooled_comparison(scores, "m", "o", ["a", "b"], 500, 0, per_seed=per_seed)
    # equal items per eval: the pooled difference is the mean of the evals' differences
    assert pooled.diff == pytest.approx(np.mean([r.comparison.diff for r in per_eval]))
    assert pooled.n == 60 and pooled.inference.startswith("hierarchical")
    assert pooled.ci_low < pooled.diff < pooled.ci_high
    items_only = pooled_comparison(scores, "m", "o", ["a", "b"], 500, 0)
    assert items_only.diff == pytest.approx(pooled.diff)
    assert not items_only.inference.startswith("hierarchical")
    with pytest.raises(BenrlError, match="no eval has both m and x"):
        pooled_comparison(scores, "m", "x", ["a"], 10, 0)


def test_headline_checks_its_input():
    with pytest.raises(BenrlError, match="no comparisons"):
        headline([], "m", "b", 0.05)
    with pytest.raises(BenrlError, match="compares m vs b, not x vs b"):
        headline([_fake("a", 0.1, 0.1)], "x", "b", 0.05)


# --- A/A check -----------------------------------------------------------------------


def _make_aa(shift: float, n_evals: int = 20, n_items: int = 40, n_real: int = 20):
    """make_scores for aa_false_discovery: `n_real` evals get a true effect of `shift`."""

    def make(rep: int):
        rng = np.random.default_rng(1000 + rep)
        pairs = [
            _bernoulli_pair(rng, n_items, shift if e < n_real else 0.0) for e in range(n_evals)
        ]
        return {f"e{e}": a for e, (a, _) in enumerate(pairs)}, {
            f"e{e}": b for e, (_, b) in enumerate(pairs)
        }

    return make


def test_aa_null_rarely_flags_anything():
    result = aa_false_discovery(_make_aa(0.0), repetitions=200, alpha=0.05, n_boot=10, n_perm=2000)
    assert (result.repetitions, result.n_evals, result.alpha) == (200, 20, 0.05)
    assert result.share == result.flagged / 200
    assert result.share <= 0.05 + 0.03  # alpha plus ~2 binomial SDs of slack


def test_aa_without_correction_would_fail_the_check():
    # The same null data, declaring an eval significant at raw p < alpha: 20 looks per
    # repetition inflate the family-wise error far past the A/A bound, so the bound bites.
    make = _make_aa(0.0)
    flagged = 0
    for rep in range(200):
        first, second = make(rep)
        ps = [paired_comparison(first[e], second[e], n_boot=10, n_perm=2000).p_value for e in first]
        flagged += min(ps) < 0.05
    assert flagged / 200 > 0.05 + 0.03


def test_aa_detects_a_real_effect():
    result = aa_false_discovery(
        _make_aa(0.4, n_items=60, n_real=3), repetitions=20, alpha=0.05, n_boot=10, n_perm=2000
    )
    assert result.share >= 0.9


def test_excluding_refusals_leaves_out_an_eval_where_every_item_was_refused():
    scores = {
        "all_refused": {"m": {"a": 0.0, "b": 0.0}, "o": {"a": 1.0, "b": 0.0}},
        "some": {"m": {"a": 1.0, "b": 0.0, "c": 1.0}, "o": {"a": 0.0, "b": 0.0, "c": 1.0}},
    }
    refusals = {
        "all_refused": {"m": {"a": True, "b": True}, "o": {"a": False, "b": False}},
        "some": {
            "m": {"a": False, "b": True, "c": False},
            "o": {"a": False, "b": False, "c": False},
        },
    }
    rows = compare_evals(scores, "m", "o", n_boot=50, refusals=refusals, exclude_refusals=True)
    assert [r.eval for r in rows] == ["some"]
    assert rows[0].n_excluded_refusals == 1 and rows[0].comparison.n == 2
