"""`benrl eval aa`: the A/A check of the whole measurement pipeline.

A tool that reports effects where there are none is worse than no tool. The A/A check
compares a model with *itself*: every eval item is answered `samples` times at
temperature 1, and each repetition pairs two different samples of the same item, as
if they came from two models. Pairing, p-values and Benjamini-Hochberg then run as in
a real comparison; the share of repetitions that flag any eval at FDR `alpha` should
be at most about `alpha` (the issue's bar: no flag in >= 95% of repetitions).

Sampling once and drawing pairs per repetition keeps the cost at `samples` generations
per item; draws are independent given the item, so every pair is a valid null.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

from benrl.evaluation.registry import registered_evals
from benrl.evaluation.stats import aa_false_discovery
from benrl.judging.registry import JudgeCache
from benrl.records import ScenarioRecord


def sample_scores(
    model_dir: Path,
    items: dict[str, list[ScenarioRecord]],
    judges: JudgeCache,
    samples: int,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
) -> dict[str, dict[str, list[float | None]]]:
    """scores[eval][record id] = the scores of `samples` sampled answers."""
    from benrl.evaluation.generate import generate, load_model

    model, tokenizer = load_model(model_dir)
    flat = [(name, r) for name, records in items.items() for r in records]
    outputs = generate(
        model,
        tokenizer,
        [r.messages for _, r in flat],
        max_new_tokens,
        temperature=1.0,
        seed=seed,
        batch_size=batch_size,
        num_samples=samples,
    )
    evals = registered_evals()
    scores: dict[str, dict[str, list[float | None]]] = {name: {} for name in items}
    for (name, record), answers in zip(flat, outputs, strict=True):
        results = judges.score_many(evals[name].judge, [(record, a) for a in answers])
        scores[name][record.id] = [r.score for r in results]
    return scores


def run_aa(
    scores: dict[str, dict[str, list[float | None]]],
    repetitions: int,
    alpha: float,
    seed: int,
    out_path: Path | None = None,
) -> dict:
    """Draw two distinct samples per item for each repetition; count flagged repetitions."""

    def make_scores(rep: int):
        rng = random.Random(f"aa-{seed}-{rep}")
        first: dict[str, dict[str, float]] = {}
        second: dict[str, dict[str, float]] = {}
        for name, by_id in scores.items():
            for rid, values in by_id.items():
                i, j = rng.sample(range(len(values)), 2)
                if values[i] is not None and values[j] is not None:
                    first.setdefault(name, {})[rid] = values[i]
                    second.setdefault(name, {})[rid] = values[j]
        return first, second

    result = asdict(aa_false_discovery(make_scores, repetitions, alpha, seed=seed))
    result["share_clean"] = 1 - result["share"]
    if out_path:
        out_path.write_text(json.dumps(result, indent=2))
    return result
