"""The paper's reference numbers and the table that sets this run's figures beside them.

The figures are the paper's own (trait RL against a compute-matched baseline), kept here
as named constants so they are stated once and can be checked against the paper in one
place; `paper_comparison` pairs each with what this run measured, where it measured the
same thing.
"""

from __future__ import annotations

from benrl.evaluation.registry import registered_evals
from benrl.report.markdown import _pp

PAPER_HEADLINE = (
    "paper (trait RL vs compute-matched baseline): ahead on 44 of 53 evals; significant "
    "gains 30, significant regressions 3 (BH); mean difference +9.1 pp"
)
PAPER_HELDOUT_TRAITS = "0.406 -> 0.607"  # held-out trait score, pre -> beneficial
PAPER_BENEFICIAL_VS_BASELINE = "ahead on 44/53; 30 sig. gains, 3 sig. regressions; +9.1 pp"
PAPER_GENERIC_VS_BASELINE = "no significant gain (all q >= 0.75)"
PAPER_HEALTH_ONLY_TRANSFER = "ahead 17/19, 14 significant, 1 significant regression"
PAPER_CAPABILITIES = "+4.7, +7.1, +1.2 pp (no regression)"
HELDOUT_MEASURE = "held-out trait score, pre -> beneficial (OOD evals' items pooled)"


def paper_comparison(results: dict, scores: dict) -> list[dict]:
    """The paper's figures beside ours, where we measured the same thing."""
    ours = results["comparisons"]
    main = ours.get("beneficial_vs_baseline", {})
    return [
        _heldout_row(scores, results["split"]["distribution"]),
        *_headline_rows(ours, main),
        *_transfer_rows(results.get("transfer", [])),
        *_capability_rows(main, scores),
    ]


def _row(measure: str, paper: str, ours: str) -> dict[str, str]:
    return {"measure": measure, "paper": paper, "ours": ours}


def _heldout_row(scores: dict, distributions: dict[str, str | None]) -> dict[str, str]:
    """Mean score over every item of every OOD eval both pre and beneficial answered."""
    ood = [
        name
        for name, by_arm in scores.items()
        if distributions.get(name) == "ood" and "pre" in by_arm and "beneficial" in by_arm
    ]
    pre, beneficial = (_pooled_mean(scores, ood, arm) for arm in ("pre", "beneficial"))
    return _row(HELDOUT_MEASURE, PAPER_HELDOUT_TRAITS, f"{pre} -> {beneficial}")


def _pooled_mean(scores: dict, names: list[str], arm: str) -> str:
    values = [v for name in names for v in scores[name][arm].values()]
    return f"{sum(values) / len(values):.3f}" if values else "n/a"


def _headline_rows(ours: dict, main: dict) -> list[dict[str, str]]:
    """Our headlines beside the paper's, on the OOD evals as the paper's (all its evals
    were of held-out traits); on all evals when this run has no OOD eval."""
    rows = []
    if main:
        rows.append(
            _row("beneficial vs baseline (headline)", PAPER_BENEFICIAL_VS_BASELINE, _ood_line(main))
        )
    if "generic_vs_baseline" in ours:
        rows.append(
            _row(
                "generic-helpfulness control vs baseline",
                PAPER_GENERIC_VS_BASELINE,
                _ood_line(ours["generic_vs_baseline"]),
            )
        )
    return rows


def _ood_line(comparison: dict) -> str:
    """The OOD headline without its "model vs against: " label, else the all-evals one."""
    ood = comparison.get("ood")
    line = ood["headline"] if ood else comparison["headline"]
    where = "OOD evals" if ood else "all evals, no OOD eval in this run"
    return f"{line.split(': ', 1)[1]} ({where})"


def _transfer_rows(transfer: list[dict]) -> list[dict[str, str]]:
    return [
        _row(
            "health-only arm on non-health evals",
            PAPER_HEALTH_ONLY_TRANSFER,
            f"ahead {row['ahead']}/{row['unseen_evals']}, "
            f"{row['significant_gains']} significant, "
            f"{row['significant_regressions']} significant regressions",
        )
        for row in transfer
        if row["arm"] == "health_only"
    ]


def _capability_rows(main: dict, scores: dict) -> list[dict[str, str]]:
    evals = registered_evals()
    capability = [n for n in scores if evals.get(n) and evals[n].category == "capability"]
    if not (main and capability):
        return []
    diffs = [e for e in main["evals"] if e["eval"] in capability]
    ours = ", ".join(f"{e['eval']} {_pp(e['comparison']['diff'])} pp" for e in diffs)
    return [_row("capabilities, beneficial - baseline", PAPER_CAPABILITIES, ours)]
