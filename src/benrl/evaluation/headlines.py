"""The paper's headline over a set of eval comparisons, whole or restricted to a subset.

"ahead on X of N evals; significant gains Y, significant regressions Z; mean difference"
counted as the paper does, on all evals or on a subset such as the out-of-distribution
ones (`restrict` redoes Benjamini-Hochberg across the subset, so the other evals'
discoveries cannot loosen its threshold), and the mean difference over a set of evals
with a CI from one pooled test (over training seeds, then items, when there are seeds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from benrl.errors import BenrlError
from benrl.evaluation.seeds import INFERENCE_CONDITIONAL, INFERENCE_HIERARCHICAL
from benrl.evaluation.stats import (
    TIE_TOLERANCE,
    Comparison,
    EvalComparison,
    EvalScores,
    EvalSeedScores,
    benjamini_hochberg,
    compare_evals,
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


def pooled_comparison(
    scores: EvalScores,
    model: str,
    against: str,
    names: Iterable[str],
    n_boot: int,
    seed: int,
    per_seed: EvalSeedScores | None = None,
) -> Comparison:
    """The items of every eval in `names` pooled into one paired comparison of two models.

    Items are keyed "eval/id", so with equal items per eval the difference is the mean
    over evals. With `per_seed` (both arms' seeds) the test is `compare_evals`'s
    hierarchical one, over training seeds then items; without, over items only.
    """
    names = [n for n in names if model in scores[n] and against in scores[n]]
    if not names:
        raise BenrlError(f"pooled_comparison: no eval has both {model} and {against}")
    pooled = {
        a: {f"{n}/{r}": v for n in names for r, v in scores[n][a].items()} for a in (model, against)
    }
    seeds = None
    if per_seed is not None:
        seeds = {
            a: {
                s: {f"{n}/{r}": v for n in names for r, v in per_seed[n][a][s].items()}
                for s in per_seed[names[0]][a]
            }
            for a in (model, against)
        }
    return compare_evals(
        {"pooled": pooled},
        model,
        against,
        n_boot=n_boot,
        seed=seed,
        per_seed=None if seeds is None else {"pooled": seeds},
    )[0].comparison


def inference_note(comparisons: list[EvalComparison]) -> str:
    """ "; hierarchical over training seeds (3 vs 3 seeds)" or "; conditional on one training
    run": what the CIs and p-values of a comparison are conditional on ("" without seeds)."""
    first = comparisons[0].comparison
    if first.inference == INFERENCE_HIERARCHICAL:
        return f"; {first.inference} ({first.n_seeds_a} vs {first.n_seeds_b} seeds)"
    return f"; {first.inference}" if first.inference == INFERENCE_CONDITIONAL else ""
