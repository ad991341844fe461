"""results.json's version and JSON Schema, and its flat per-eval CSV for spreadsheets and pandas.

`results.schema.json` (beside this file) documents the keys scripts rely on; its
`schema_version` is stamped into every results.json, and bumped when one of those keys
is renamed, removed or changes meaning. `per_eval.csv` has one row per compared pair x
eval, the numbers a plot or a table needs without walking the nested JSON:

    pair, eval, category, distribution, model, against, n, model_mean, against_mean, diff,
    ci_low, ci_high, p_value, q_value, significant_gain, significant_regression
"""

from __future__ import annotations

import csv
import json
from importlib.resources import files
from pathlib import Path

SCHEMA_VERSION = 1
CSV_COLUMNS = (
    "pair", "eval", "category", "distribution", "model", "against", "n", "model_mean",
    "against_mean", "diff", "ci_low", "ci_high", "p_value", "q_value", "significant_gain",
    "significant_regression",
)  # fmt: skip


def results_schema() -> dict:
    """The JSON Schema of results.json."""
    return json.loads((files("benrl.report") / "results.schema.json").read_text())


def per_eval_rows(results: dict, categories: dict[str, str]) -> list[dict]:
    """One flat row per comparison pair x eval, in results.json's order."""
    rows = []
    for pair, comparison in results["comparisons"].items():
        for e in comparison["evals"]:
            c = e["comparison"]
            rows.append(
                {
                    "pair": pair,
                    "eval": e["eval"],
                    "category": categories.get(e["eval"], ""),
                    "distribution": e["distribution"] or "",
                    "model": e["model"],
                    "against": e["against"],
                    "n": c["n"],
                    "model_mean": c["mean_a"],
                    "against_mean": c["mean_b"],
                    "diff": c["diff"],
                    "ci_low": c["ci_low"],
                    "ci_high": c["ci_high"],
                    "p_value": c["p_value"],
                    "q_value": e["q_value"],
                    "significant_gain": e["significant_gain"],
                    "significant_regression": e["significant_regression"],
                }
            )
    return rows


def write_per_eval_csv(results: dict, categories: dict[str, str], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(per_eval_rows(results, categories))
    return path
