"""The eval runner's files: several sampled answers per item, averaged when loaded."""

import json
from dataclasses import asdict

from benrl.evaluation.runner import eval_summary, load_scores


def write_eval(folder, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {name: asdict(eval_summary(rows, "sycophancy"))}
    (folder / "summary.json").write_text(json.dumps(summary))


def row(rid: str, sample: int, score: float | None, refusal: bool = False) -> dict:
    status = "ok" if score is not None else "failed"
    return {"id": rid, "sample": sample, "score": score, "refusal": refusal, "status": status}


def test_an_items_score_is_the_mean_of_its_scored_samples(tmp_path):
    rows = [
        row("a", 0, 1.0),
        row("a", 1, 0.0),
        row("a", 2, None),  # failed: left out, not a zero
        row("b", 0, 0.5, refusal=True),
        row("b", 1, 0.5, refusal=True),
        row("b", 2, 0.5),
        row("c", 0, None),
    ]
    write_eval(tmp_path, "flattery_stem", rows)
    scores, refusals = load_scores(tmp_path)
    assert scores == {"flattery_stem": {"a": 0.5, "b": 0.5}}  # c has no scored sample
    assert refusals == {"flattery_stem": {"a": False, "b": True, "c": False}}
    summary = eval_summary(rows, "sycophancy")
    assert summary.n == 7 and summary.failed == 2
    assert summary.refusal_rate == 2 / 7
