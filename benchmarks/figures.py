"""Where every benchmark leaves its figures: printed, and as JSON in benchmarks/results/."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


def save_figures(name: str, figures: dict) -> Path:
    """Print `figures` and write them to benchmarks/results/<name>.json; return that path."""
    text = json.dumps(figures, indent=2) + "\n"
    print(text, end="")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(text)
    return path
