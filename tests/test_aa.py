"""The A/A check on synthetic sampled scores: clean under the null."""

import random

from benrl.evaluation.aa import run_aa


def _scores(rng, evals=20, items=40, samples=6):
    scores = {}
    for e in range(evals):
        p = rng.random()
        scores[f"e{e}"] = {
            f"i{i}": [float(rng.random() < p) for _ in range(samples)] for i in range(items)
        }
    return scores


def test_null_is_clean():
    result = run_aa(_scores(random.Random(0)), repetitions=60, alpha=0.05, seed=0)
    assert result["share"] <= 0.1 and result["n_evals"] == 20


def test_result_counts_repetitions(tmp_path):
    out = tmp_path / "aa.json"
    result = run_aa(
        _scores(random.Random(1), evals=3, items=10),
        repetitions=5,
        alpha=0.05,
        seed=1,
        out_path=out,
    )
    assert result["repetitions"] == 5 and out.exists()
    assert result["share_clean"] == 1 - result["share"]
