"""Statistics for paired eval comparisons: per-eval tests, BH across evals, the A/A check.

Every eval yields a score in [0, 1] per record id, for each model (and seed). Two models
are compared on the records both answered (paired by id), which removes the
between-item variance that dominates small evals. Per eval we report the mean
difference, its standard error, a paired bootstrap 95% CI and a sign-flip permutation
p-value; across evals the p-values are adjusted with Benjamini-Hochberg. The headline
over a set of these comparisons is `evaluation/headlines.py`.

Why hand-written numpy and not `scipy.stats.bootstrap` / `permutation_test`: the same
statistics, but scipy's per-call overhead made 60 evals x 2000 resamples take ~0.9 s on
2 CPU cores against ~0.1 s here. The tests check the exact p-values against
`scipy.stats.permutation_test` and the q-values against `scipy.stats.false_discovery_control`.

Every result is a dataclass of plain Python scalars, so `dataclasses.asdict` output goes
straight into results.json (undefined quantities are `None`, never NaN).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np

from benrl.errors import BenrlError
from benrl.evaluation.seeds import INFERENCE_CONDITIONAL, INFERENCE_HIERARCHICAL, hierarchical_test

Scores = Mapping[str, float]  # record id -> score in [0, 1]
Flags = Mapping[str, bool]  # record id -> refused?
EvalScores = Mapping[str, Mapping[str, Scores]]  # eval -> model -> record id -> score
EvalFlags = Mapping[str, Mapping[str, Flags]]  # eval -> model -> record id -> refused?
SeedScores = Mapping[int, Scores]  # training seed -> record id -> score
EvalSeedScores = Mapping[str, Mapping[str, SeedScores]]  # eval -> model -> seed -> id -> score

# A mean difference this close to 0 counts as a tie (float noise, not "ahead").
TIE_TOLERANCE = 1e-12
# Resampling is done in blocks of at most this many draws, to bound memory on big evals.
_BLOCK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class Summary:
    """One model on one eval.

    n: number of scored items. mean: mean score. se: standard error of the mean, sample
    SD (ddof=1) / sqrt(n); None when n < 2. refusal_rate: share of items the model
    refused, None when no refusal flags were given.
    """

    n: int
    mean: float
    se: float | None
    refusal_rate: float | None = None


@dataclass(frozen=True)
class Comparison:
    """Model a against model b on one eval, paired by record id (d_i = a_i - b_i).

    n: paired items; n_unpaired_a / n_unpaired_b: items only one side scored (dropped).
    mean_a, mean_b: means over the paired items. diff: mean(d), in score units (x100 = pp).
    se: SD(d, ddof=1) / sqrt(n), None when n < 2. ci_low, ci_high: paired bootstrap 95%
    percentile CI of diff (items resampled with replacement, keeping pairs together).
    p_value: two-sided sign-flip permutation p-value (see `paired_comparison`).
    p_method: "exact sign-flip", "monte-carlo sign-flip" or "degenerate" (all d_i = 0).
    n_discordant: paired items whose scores differ (the items the test rests on).

    With per-seed scores (`compare_evals(per_seed=...)`) and two or more seeds in an arm,
    ci_low, ci_high and p_value come from the hierarchical test over training seeds
    (`seeds.hierarchical_test`, p_method "hierarchical t"), hier_se and seed_df are its
    SE and degrees of freedom, and item_ci_low, item_ci_high, item_p_value keep the
    item-level ones. inference says which: "hierarchical over training seeds",
    "conditional on one training run" (one seed per arm), or "items" (no seed data).
    n_seeds_a / n_seeds_b, seed_sd_a / seed_sd_b: seeds per arm and the SD of their
    per-seed means (None with one seed), shown beside the item-level se.
    """

    n: int
    n_unpaired_a: int
    n_unpaired_b: int
    mean_a: float
    mean_b: float
    diff: float
    se: float | None
    ci_low: float
    ci_high: float
    p_value: float
    p_method: str
    n_boot: int
    n_perm: int
    n_discordant: int = 0
    inference: str = "items"
    n_seeds_a: int = 1
    n_seeds_b: int = 1
    seed_sd_a: float | None = None
    seed_sd_b: float | None = None
    hier_se: float | None = None
    seed_df: float | None = None
    item_ci_low: float | None = None
    item_ci_high: float | None = None
    item_p_value: float | None = None


@dataclass(frozen=True)
class EvalComparison:
    """One eval's comparison of `model` against `against`, with its BH q-value.

    model_summary / against_summary: each model on all the items it scored for this eval
    (refusal rates included when flags were given), before pairing and before any
    refusal exclusion. comparison: the paired test on the compared items. q_value:
    Benjamini-Hochberg adjusted p-value across the evals of one `compare_evals` call.
    significant_gain / significant_regression: q < alpha and diff > 0 / diff < 0.
    refusals_excluded: items where either model refused were dropped before the test;
    n_excluded_refusals counts those paired items.
    """

    eval: str
    model: str
    against: str
    model_summary: Summary
    against_summary: Summary
    comparison: Comparison
    q_value: float
    significant_gain: bool
    significant_regression: bool
    refusals_excluded: bool = False
    n_excluded_refusals: int = 0


@dataclass(frozen=True)
class SeedSpread:
    """Seed-level variability of one model on one eval: the SD of the per-seed means.

    seeds and seed_means are aligned (sorted by seed); sd is the sample SD (ddof=1) of
    seed_means, None with a single seed. This is run-to-run spread (training and
    sampling seeds), which the per-item SE does not capture.
    """

    n_seeds: int
    seeds: list[int]
    seed_means: list[float]
    mean: float
    sd: float | None


@dataclass(frozen=True)
class AAResult:
    """Outcome of an A/A check: how often identical models were declared different.

    flagged: repetitions with at least one eval significant at BH q < alpha; share:
    flagged / repetitions. Under the null this is the family-wise error rate, which BH
    keeps at or below alpha when no eval has a real effect.
    """

    repetitions: int
    n_evals: int
    flagged: int
    share: float
    alpha: float


def summarize(scores: Scores, refusals: Flags | None = None, what: str = "scores") -> Summary:
    """Mean and standard error of one model's scores; refusal rate if flags are given.

    `refusals` must flag every record id in `scores`; `what` names the data in errors.
    """
    values = _values(scores, what)
    rate = None
    if refusals is not None:
        rate = float(np.mean(_flags(refusals, scores.keys(), what)))
    return Summary(
        n=len(values), mean=float(values.mean()), se=standard_error(values), refusal_rate=rate
    )


def paired_comparison(
    a: Scores, b: Scores, n_boot: int = 2000, seed: int = 0, n_perm: int = 10_000
) -> Comparison:
    """Compare model a with model b on the record ids both scored.

    Difference d_i = a_i - b_i per common id; diff = mean(d), se = SD(d)/sqrt(n), and a
    95% percentile CI from `n_boot` paired bootstrap resamples of the items.

    The p-value is a paired sign-flip permutation test of "a and b are exchangeable on
    each item" (under it every d_i is as likely to be +|d_i| as -|d_i|). Why this test:
    scores are bounded and often binary, so d_i takes only a few values (-1, 0, +1) and
    evals can be small; a t-test (or a bootstrap of the t statistic) then leans on a
    normal approximation that can be anti-conservative. The sign-flip test makes no
    distributional assumption and is exact: with m non-zero differences it enumerates
    all 2**m sign patterns when that is no more than `n_perm`, otherwise it draws
    `n_perm` random patterns and reports (1 + hits) / (1 + n_perm), which is still a
    valid (slightly conservative) p-value and never 0. Zero differences carry no sign
    and drop out; if every d_i is 0 the p-value is 1. The statistic is |sum(d)|
    (equivalent to |mean(d)|), compared with a small float tolerance.

    Raises BenrlError if the two sets share no record id or a score is not in [0, 1].
    """
    return _compare(a, b, n_boot, n_perm, np.random.default_rng(seed), "a vs b")


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    q_(i) = min over j >= i of p_(j) * m / j for the sorted p-values, capped at 1; this
    makes q monotone in p. Declaring significant every test with q < alpha keeps the
    expected share of false discoveries at or below alpha (for independent or positively
    dependent tests), and the chance of any false discovery at or below alpha when
    every null is true.
    """
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    if not np.all((p >= 0) & (p <= 1)):
        raise BenrlError(f"benjamini_hochberg: p-values must be in [0, 1], got {p_values}")
    order = np.argsort(p)
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    q_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    q = np.empty_like(q_sorted)
    q[order] = q_sorted
    return [float(x) for x in q]


def aggregate_seeds(per_seed: Mapping[int, Scores]) -> dict[str, float]:
    """Per-item mean over seeds: {record id: mean score across the seeds that scored it}.

    An item missing from some seeds (e.g. a failed judge verdict) is averaged over the
    seeds that have it, so no item is thrown away; pair the result with
    `paired_comparison` as usual.
    """
    if not per_seed:
        raise BenrlError("aggregate_seeds: no seeds given")
    collected: dict[str, list[float]] = {}
    for seed, scores in per_seed.items():
        for rid, value in zip(scores.keys(), _values(scores, f"seed {seed}"), strict=True):
            collected.setdefault(rid, []).append(float(value))
    return {rid: float(np.mean(values)) for rid, values in collected.items()}


def seed_spread(per_seed: Mapping[int, Scores]) -> SeedSpread:
    """Mean score per seed and their SD: the run-to-run spread to report beside the SE."""
    if not per_seed:
        raise BenrlError("seed_spread: no seeds given")
    seeds = sorted(per_seed)
    means = [float(_values(per_seed[s], f"seed {s}").mean()) for s in seeds]
    sd = float(np.std(means, ddof=1)) if len(means) > 1 else None
    return SeedSpread(len(seeds), seeds, means, float(np.mean(means)), sd)


def compare_evals(
    scores: EvalScores,
    model: str,
    against: str,
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
    refusals: EvalFlags | None = None,
    exclude_refusals: bool = False,
    n_perm: int = 10_000,
    per_seed: EvalSeedScores | None = None,
) -> list[EvalComparison]:
    """Compare `model` with `against` on every eval of scores[eval][model][record id].

    Each eval gets a `paired_comparison`; the p-values of all evals are then adjusted
    together with Benjamini-Hochberg, and an eval is a significant gain (regression)
    when q < alpha and the mean difference is positive (negative). Results keep the
    order of `scores`. Each eval's resampling seed is derived from `seed` and the eval
    name, so adding or removing an eval does not change the others' numbers.

    refusals[eval][model][record id] = True marks a refusal. Evals present in
    `refusals` report refusal rates in their summaries. With `exclude_refusals`, every
    eval needs flags, and paired items where either model refused are dropped before
    the test ("which effects survive when refusals are excluded"); an eval where every
    paired item has a refusal has nothing left to compare and is left out.

    per_seed[eval][model][seed][record id] gives each training seed's scores (`scores`
    then holds their per-item means). Where an arm has two or more seeds, the p-value
    and CI come from the hierarchical test over seeds (`seeds.hierarchical_test`) on the
    items every seed of both arms scored; with one seed per arm the item-level test
    stays and the comparison is marked "conditional on one training run".
    """
    if exclude_refusals and refusals is None:
        raise BenrlError("compare_evals: exclude_refusals needs refusal flags")
    rows, names = [], []
    for name, by_model in scores.items():
        flags = refusals.get(name) if refusals is not None else None
        seeds = per_seed.get(name) if per_seed is not None else None
        row = _compare_one(
            name, by_model, model, against, flags, exclude_refusals, n_boot, n_perm, seed, seeds
        )
        if row is not None:
            rows.append(row)
            names.append(name)
    q_values = benjamini_hochberg([row[0].p_value for row in rows])
    return [
        EvalComparison(
            eval=name,
            model=model,
            against=against,
            model_summary=model_summary,
            against_summary=against_summary,
            comparison=comparison,
            q_value=q,
            significant_gain=q < alpha and comparison.diff > TIE_TOLERANCE,
            significant_regression=q < alpha and comparison.diff < -TIE_TOLERANCE,
            refusals_excluded=exclude_refusals,
            n_excluded_refusals=n_excluded,
        )
        for name, (comparison, model_summary, against_summary, n_excluded), q in zip(
            names, rows, q_values, strict=True
        )
    ]


def aa_false_discovery(
    make_scores: Callable[[int], tuple[Mapping[str, Scores], Mapping[str, Scores]]],
    repetitions: int,
    alpha: float = 0.05,
    n_boot: int = 200,
    n_perm: int = 10_000,
    seed: int = 0,
) -> AAResult:
    """A/A check: the share of repetitions where two runs of the SAME model differ "significantly".

    make_scores(rep) returns two score sets, {eval: {record id: score}} each, of one
    model sampled with different seeds. Each repetition runs `compare_evals` on them
    and counts as flagged if any eval has q < alpha. With no real difference the share
    should stay at or below alpha (up to Monte Carlo noise); a larger share means the
    pipeline (pairing, p-values, correction) finds effects that are not there. Only the
    p-values matter here, so the bootstrap defaults to a small `n_boot`.
    """
    if repetitions < 1:
        raise BenrlError(f"aa_false_discovery: repetitions must be >= 1, got {repetitions}")
    flagged = 0
    n_evals = 0
    for rep in range(repetitions):
        first, second = make_scores(rep)
        scores = {name: {"A1": first[name], "A2": second.get(name, {})} for name in first}
        rows = compare_evals(scores, "A1", "A2", alpha, n_boot, seed + rep, n_perm=n_perm)
        flagged += any(r.significant_gain or r.significant_regression for r in rows)
        n_evals = len(rows)
    return AAResult(repetitions, n_evals, flagged, flagged / repetitions, alpha)


def _compare_one(
    name: str,
    by_model: Mapping[str, Scores],
    model: str,
    against: str,
    flags: Mapping[str, Flags] | None,
    exclude_refusals: bool,
    n_boot: int,
    n_perm: int,
    seed: int,
    seeds: Mapping[str, SeedScores] | None = None,
) -> tuple[Comparison, Summary, Summary, int] | None:
    """One eval of `compare_evals`: summaries, optional refusal exclusion, paired test.

    None when refusals are excluded and every paired item has one.
    """
    sides = {}
    for arm in (model, against):
        if arm not in by_model:
            raise BenrlError(f"eval {name!r}: no scores for model {arm!r}")
        if flags is not None and arm not in flags:
            raise BenrlError(f"eval {name!r}: no refusal flags for model {arm!r}")
        sides[arm] = by_model[arm]
    if exclude_refusals and flags is None:
        raise BenrlError(f"eval {name!r}: no refusal flags, cannot exclude refusals")
    summaries = [
        summarize(sides[arm], flags[arm] if flags else None, f"eval {name!r}, model {arm!r}")
        for arm in (model, against)
    ]
    a, b = sides[model], sides[against]
    n_excluded = 0
    if exclude_refusals and flags is not None:
        common = [rid for rid in a if rid in b]
        refused_a = _flags(flags[model], common, f"eval {name!r}, model {model!r}")
        refused_b = _flags(flags[against], common, f"eval {name!r}, model {against!r}")
        drop = {rid for rid, r in zip(common, refused_a | refused_b, strict=True) if r}
        if len(drop) == len(common):
            return None
        n_excluded = len(drop)
        a = {rid: s for rid, s in a.items() if rid not in drop}
        b = {rid: s for rid, s in b.items() if rid not in drop}
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    what = f"eval {name!r}, {model} vs {against}"
    comparison = _compare(a, b, n_boot, n_perm, rng, what)
    if seeds is not None:
        if model not in seeds or against not in seeds:
            raise BenrlError(f"{what}: per-seed scores missing for one of the models")
        ids = [rid for rid in a if rid in b]
        comparison = _with_seeds(comparison, seeds[model], seeds[against], ids, n_boot, rng)
    return comparison, summaries[0], summaries[1], n_excluded


def _with_seeds(
    comparison: Comparison,
    seeds_a: SeedScores,
    seeds_b: SeedScores,
    ids: list[str],
    n_boot: int,
    rng: np.random.Generator,
) -> Comparison:
    """The item-level `comparison` with its CI and p-value replaced by the seed-level ones.

    One seed per arm: unchanged, marked conditional on one training run. Otherwise the
    hierarchical test on the items every seed of both arms scored (an item a failed
    verdict left unscored in one seed drops out of the seed-level test only).
    """
    if max(len(seeds_a), len(seeds_b)) < 2:
        return replace(comparison, inference=INFERENCE_CONDITIONAL)
    common = [rid for rid in ids if all(rid in s for s in (*seeds_a.values(), *seeds_b.values()))]
    if not common:
        raise BenrlError(f"no record scored by every seed of both arms ({len(ids)} paired)")
    paired = sorted(seeds_a) == sorted(seeds_b)
    matrix_a = np.array([[seeds_a[s][rid] for rid in common] for s in sorted(seeds_a)])
    matrix_b = np.array([[seeds_b[s][rid] for rid in common] for s in sorted(seeds_b)])
    test = hierarchical_test(matrix_a, matrix_b, paired, n_boot, rng)
    return replace(
        comparison,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        p_value=test.p_value,
        p_method="hierarchical t",
        inference=INFERENCE_HIERARCHICAL,
        n_seeds_a=test.n_seeds_a,
        n_seeds_b=test.n_seeds_b,
        seed_sd_a=test.seed_sd_a,
        seed_sd_b=test.seed_sd_b,
        hier_se=test.se,
        seed_df=test.df,
        item_ci_low=comparison.ci_low,
        item_ci_high=comparison.ci_high,
        item_p_value=comparison.p_value,
    )


def _compare(
    a: Scores, b: Scores, n_boot: int, n_perm: int, rng: np.random.Generator, what: str
) -> Comparison:
    """Pair a and b by id and compute the `Comparison` (see `paired_comparison`)."""
    if n_boot < 1 or n_perm < 1:
        raise BenrlError(f"{what}: n_boot and n_perm must be >= 1, got {n_boot}, {n_perm}")
    common = [rid for rid in a if rid in b]
    if not common:
        raise BenrlError(f"{what}: no common record ids ({len(a)} vs {len(b)} items)")
    va = _values({rid: a[rid] for rid in common}, f"{what} (first)")
    vb = _values({rid: b[rid] for rid in common}, f"{what} (second)")
    d = va - vb
    ci_low, ci_high = bootstrap_ci(d, n_boot, rng)
    p_value, method = _sign_flip_p(d, n_perm, rng)
    return Comparison(
        n=len(common),
        n_unpaired_a=len(a) - len(common),
        n_unpaired_b=len(b) - len(common),
        mean_a=float(va.mean()),
        mean_b=float(vb.mean()),
        diff=float(d.mean()),
        se=standard_error(d),
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        p_method=method,
        n_boot=n_boot,
        n_perm=n_perm,
        n_discordant=int(np.count_nonzero(np.abs(d) > TIE_TOLERANCE)),
    )


def bootstrap_ci(d: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile CI of mean(d) from `n_boot` resamples of d's items (with replacement).

    The same draws and quantiles as `scipy.stats.bootstrap(..., method="percentile")`
    with this `rng`, done in blocks to bound memory on big evals.
    """
    means = bootstrap_means(d, n_boot, rng)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def bootstrap_means(d: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """mean(d) of `n_boot` resamples of d's items (with replacement), in blocks."""
    means = np.empty(n_boot)
    for start, stop in _blocks(n_boot, d.size):
        idx = rng.integers(0, d.size, size=(stop - start, d.size))
        means[start:stop] = d[idx].mean(axis=1)
    return means


def _sign_flip_p(d: np.ndarray, n_perm: int, rng: np.random.Generator) -> tuple[float, str]:
    """Two-sided sign-flip permutation p-value of |sum(d)|, exact when 2**m <= n_perm."""
    nz = d[d != 0]
    m = nz.size
    if m == 0:
        return 1.0, "degenerate"
    observed = abs(nz.sum())
    # Sums of the same numbers in another order differ by float rounding: allow for it.
    threshold = observed - 1e-9 * max(1.0, float(np.abs(nz).sum()))
    hits = 0
    if m < 63 and 2**m <= n_perm:
        for start, stop in _blocks(2**m, m):  # row k flips the signs where k's bits are 0
            bits = np.arange(start, stop)[:, None] >> np.arange(m) & 1
            hits += int(np.sum(np.abs((2.0 * bits - 1.0) @ nz) >= threshold))
        return hits / 2**m, "exact sign-flip"
    row_bytes = (m + 7) // 8
    for start, stop in _blocks(n_perm, m):
        # Random sign patterns as random bits: much faster than drawing floats.
        raw = np.frombuffer(rng.bytes((stop - start) * row_bytes), dtype=np.uint8)
        bits = np.unpackbits(raw).reshape(stop - start, 8 * row_bytes)[:, :m]
        # sum(s_i * d_i) with s = 2 * bit - 1
        hits += int(np.sum(np.abs(2.0 * (bits @ nz) - nz.sum()) >= threshold))
    return (1 + hits) / (1 + n_perm), "monte-carlo sign-flip"


def _blocks(rows: int, width: int) -> Iterator[tuple[int, int]]:
    """Row ranges [start, stop) covering `rows` so that a block has ~_BLOCK_ELEMENTS cells."""
    step = max(1, _BLOCK_ELEMENTS // max(1, width))
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


def _values(scores: Scores, what: str) -> np.ndarray:
    """Scores as a float array (in key order); each must be a finite number in [0, 1]."""
    if not scores:
        raise BenrlError(f"{what}: no scores")
    values = np.fromiter(scores.values(), dtype=float, count=len(scores))
    bad = ~((values >= 0) & (values <= 1))  # also catches NaN
    if bad.any():
        rid = list(scores.keys())[int(np.argmax(bad))]
        raise BenrlError(f"{what}: record {rid!r} has score {scores[rid]!r}, expected [0, 1]")
    return values


def _flags(refusals: Flags, ids: Iterable[str], what: str) -> np.ndarray:
    """Refusal flags for `ids` as a bool array; every id must be flagged."""
    out = []
    for rid in ids:
        if rid not in refusals:
            raise BenrlError(f"{what}: record {rid!r} has no refusal flag")
        out.append(bool(refusals[rid]))
    return np.array(out, dtype=bool)


def standard_error(values: np.ndarray | Iterable[float]) -> float | None:
    """Standard error of the mean, sample SD (ddof=1) / sqrt(n); None when n < 2."""
    values = np.fromiter(values, dtype=float) if not isinstance(values, np.ndarray) else values
    if values.size < 2:
        return None
    return float(np.std(values, ddof=1) / math.sqrt(values.size))
