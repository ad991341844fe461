"""results.json carries its schema version and validates against the documented JSON Schema;
the report stage also writes the flat per-eval CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import pytest

from benrl.report.export_tables import (
    CSV_COLUMNS,
    SCHEMA_VERSION,
    per_eval_rows,
    results_schema,
)


def _eval(name: str, diff: float, q: float, distribution: str) -> dict:
    comparison = {"n": 10, "mean_a": 0.5 + diff, "mean_b": 0.5, "diff": diff, "se": 0.01,
                  "ci_low": diff - 0.1, "ci_high": diff + 0.1, "p_value": q / 2}  # fmt: skip
    return {"eval": name, "model": "beneficial", "against": "baseline", "comparison": comparison,
            "q_value": q, "significant_gain": diff > 0 and q < 0.05,
            "significant_regression": diff < 0 and q < 0.05, "distribution": distribution,
            "q_within_distribution": q}  # fmt: skip


RESULTS = {
    "schema_version": SCHEMA_VERSION,
    "config": {},
    "models": ["baseline-s0", "beneficial-s0"],
    "comparisons": {
        "beneficial_vs_baseline": {
            "headline": "beneficial vs baseline: ...",
            "evals": [
                _eval("xstest", 0.2, 0.01, "ood"),
                _eval("pushback_stem", -0.1, 0.5, "in_distribution"),
            ],
        }
    },
    "headlines": {"beneficial_vs_baseline": "beneficial vs baseline: ..."},
}


def test_schema_accepts_a_well_formed_result_and_names_what_breaks_it() -> None:
    schema = results_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(RESULTS, schema)
    broken = json.loads(json.dumps(RESULTS))
    del broken["comparisons"]["beneficial_vs_baseline"]["evals"][0]["comparison"]["diff"]
    with pytest.raises(jsonschema.ValidationError, match="'diff' is a required property"):
        jsonschema.validate(broken, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**RESULTS, "schema_version": 0}, schema)


def test_per_eval_rows_are_flat_and_in_order() -> None:
    rows = per_eval_rows(RESULTS, {"xstest": "realdata", "pushback_stem": "trait"})
    assert [tuple(r) for r in rows] == [CSV_COLUMNS] * 2
    assert [(r["eval"], r["category"], r["distribution"], r["diff"]) for r in rows] == [
        ("xstest", "realdata", "ood", 0.2), ("pushback_stem", "trait", "in_distribution", -0.1),
    ]  # fmt: skip
    assert rows[0]["significant_gain"] and not rows[1]["significant_regression"]


def test_the_smoke_run_report_follows_the_schema(smoke_run: Path) -> None:
    results = json.loads((smoke_run / "report" / "results.json").read_text())
    assert results["schema_version"] == SCHEMA_VERSION
    jsonschema.validate(results, results_schema())
    with (smoke_run / "report" / "per_eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    expected = sum(len(c["evals"]) for c in results["comparisons"].values())
    assert len(rows) == expected and tuple(rows[0]) == CSV_COLUMNS
    first = results["comparisons"][rows[0]["pair"]]["evals"][0]
    assert float(rows[0]["diff"]) == pytest.approx(first["comparison"]["diff"])
