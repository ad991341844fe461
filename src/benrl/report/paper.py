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


def paper_comparison(results: dict, scores: dict) -> list[dict]:
    """The paper's figures beside ours, where we measured the same thing."""
    ours = results["comparisons"]
    main = ours.get("beneficial_vs_baseline", {})
    return [
        _heldout_row(scores),
        *_headline_rows(ours, main),
        *_transfer_rows(results.get("transfer", [])),
        *_capability_rows(main, scores),
    ]


def _row(measure: str, paper: str, ours: str) -> dict[str, str]:
    return {"measure": measure, "paper": paper, "ours": ours}


def _rounded_mean(scores: dict, name: str, arm: str) -> float | None:
    by_id = scores.get(name, {}).get(arm)
    return round(sum(by_id.values()) / len(by_id), 3) if by_id else None


def _heldout_row(scores: dict) -> dict[str, str]:
    pre, beneficial = (_rounded_mean(scores, "heldout_traits", a) for a in ("pre", "beneficial"))
    return _row(
        "held-out trait score, pre -> beneficial", PAPER_HELDOUT_TRAITS, f"{pre} -> {beneficial}"
    )


def _headline_rows(ours: dict, main: dict) -> list[dict[str, str]]:
    rows = []
    if main:
        ours_main = main["headline"].split(": ", 1)[1]
        rows.append(
            _row("beneficial vs baseline (headline)", PAPER_BENEFICIAL_VS_BASELINE, ours_main)
        )
    if "generic_vs_baseline" in ours:
        ours_generic = ours["generic_vs_baseline"]["headline"].split(": ", 1)[1]
        rows.append(
            _row("generic-helpfulness control vs baseline", PAPER_GENERIC_VS_BASELINE, ours_generic)
        )
    return rows


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
