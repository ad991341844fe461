"""The paper's headline over a set of eval comparisons, whole or restricted to a subset.

"ahead on X of N evals; significant gains Y, significant regressions Z; mean difference"
counted as the paper does, on all evals or on a subset such as the out-of-distribution
ones (`restrict` redoes Benjamini-Hochberg across the subset, so the other evals'
discoveries cannot loosen its threshold), with a CI for the mean over evals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from benrl.errors import BenrlError
from benrl.evaluation.seeds import INFERENCE_CONDITIONAL, INFERENCE_HIERARCHICAL
from benrl.evaluation.stats import (
    TIE_TOLERANCE,
    EvalComparison,
    benjamini_hochberg,
    bootstrap_means,
)


@dataclass(frozen=True)
class Tally:
    """The counts of the paper's headline over a set of evals of one comparison.

    evals: evals compared. ahead: evals with a mean difference > 0 (ties are not ahead).
    significant_gains / significant_regressions: q < alpha and diff > 0 / < 0.
    mean_diff: unweighted mean over evals of the per-eval differences (score units).
    """

    evals: int
    ahead: int
    significant_gains: int
    significant_regressions: int
    mean_diff: float


def tally(comparisons: list[EvalComparison], alpha: float = 0.05) -> Tally:
    """The headline's counts; significance is recomputed from the q-values at `alpha`."""
    diffs = [c.comparison.diff for c in comparisons]
    return Tally(
        evals=len(comparisons),
        ahead=sum(d > TIE_TOLERANCE for d in diffs),
        significant_gains=sum(
            c.q_value < alpha and c.comparison.diff > TIE_TOLERANCE for c in comparisons
        ),
        significant_regressions=sum(
            c.q_value < alpha and c.comparison.diff < -TIE_TOLERANCE for c in comparisons
        ),
        mean_diff=float(np.mean(diffs)),
    )


def headline(
    comparisons: list[EvalComparison], model: str, against: str, alpha: float = 0.05
) -> str:
    """The paper's summary line, e.g.

    "beneficial vs baseline: ahead on 44 of 53 evals; significant gains 30, significant
    regressions 3 (BH q < 0.05); mean difference +9.1 pp"

    The counts are `tally`'s, the mean difference in percentage points.
    """
    if not comparisons:
        raise BenrlError(f"headline: no comparisons of {model} vs {against}")
    for c in comparisons:
        if (c.model, c.against) != (model, against):
            raise BenrlError(
                f"headline: eval {c.eval!r} compares {c.model} vs {c.against}, "
                f"not {model} vs {against}"
            )
    t = tally(comparisons, alpha)
    mean_pp = round(100 * t.mean_diff, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    line = (
        f"{model} vs {against}: ahead on {t.ahead} of {t.evals} evals; "
        f"significant gains {t.significant_gains}, significant regressions "
        f"{t.significant_regressions} (BH q < {alpha:g}); mean difference {mean_pp:+.1f} pp"
    )
    line += inference_note(comparisons)
    return line + ("; refusals excluded" if comparisons[0].refusals_excluded else "")


def restrict(
    comparisons: list[EvalComparison], names: Iterable[str], alpha: float = 0.05
) -> list[EvalComparison]:
    """The comparisons of the evals in `names`, with Benjamini-Hochberg redone across them.

    For a headline read off a subset of the evals (e.g. the out-of-distribution ones):
    the subset is then its own family, so the other evals' discoveries cannot loosen its
    threshold. The order of `comparisons` is kept.
    """
    keep = set(names)
    rows = [c for c in comparisons if c.eval in keep]
    q_values = benjamini_hochberg([c.comparison.p_value for c in rows])
    return [
        replace(
            c,
            q_value=q,
            significant_gain=q < alpha and c.comparison.diff > TIE_TOLERANCE,
            significant_regression=q < alpha and c.comparison.diff < -TIE_TOLERANCE,
        )
        for c, q in zip(rows, q_values, strict=True)
    ]


def mean_over_evals_ci(
    diffs: list[np.ndarray], n_boot: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """The mean over evals of each eval's mean paired difference, with a 95% CI.

    `diffs` holds each eval's per-item differences. A replicate resamples the items of
    every eval (with replacement, within the eval) and averages the evals' means with
    equal weights, so the CI is over items, for this set of evals and these trained
    models. Returns (mean, ci_low, ci_high).
    """
    if not diffs or any(d.size == 0 for d in diffs):
        raise BenrlError("mean_over_evals_ci: every eval needs at least one difference")
    replicates = sum(bootstrap_means(d, n_boot, rng) for d in diffs) / len(diffs)
    mean = float(np.mean([d.mean() for d in diffs]))
    return mean, float(np.quantile(replicates, 0.025)), float(np.quantile(replicates, 0.975))


def inference_note(comparisons: list[EvalComparison]) -> str:
    """ "; hierarchical over training seeds (3 vs 3 seeds)" or "; conditional on one training
    run": what the CIs and p-values of a comparison are conditional on ("" without seeds)."""
    first = comparisons[0].comparison
    if first.inference == INFERENCE_HIERARCHICAL:
        return f"; {first.inference} ({first.n_seeds_a} vs {first.n_seeds_b} seeds)"
    return f"; {first.inference}" if first.inference == INFERENCE_CONDITIONAL else ""
