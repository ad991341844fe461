"""The eval stage: a registry of evals and a runner that scores one model on them.

An eval is a named set of eval-split records, a judge, a category and the traits it
touches; scores are oriented higher-is-better. The organism suite is built from the
eval-only template families (`probes.TRAIN_TEMPLATES` and up), so every eval measures
behaviour on wordings the RL arms never trained on. Users register their own evals with
`@register_eval`.

The runner generates greedily for every item of every selected eval in one batched
pass, scores each completion with the eval's judge, and writes one scored sample per
line to `evals/<model-id>/<eval>.jsonl` plus `summary.json`. Samples carry the record
id, so models are compared pairwise by item.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benrl.errors import BenrlError
from benrl.judges import get_judge
from benrl.probes import PROBES, TASKS, TRAIN_TEMPLATES
from benrl.records import ScenarioRecord, write_jsonl
from benrl.world import World

if TYPE_CHECKING:
    from benrl.config import RunConfig

HELD_OUT_TRAITS = (
    "truthfulness",
    "metacognitive_transparency",
    "corrigibility",
    "downside_aware_planning",
    "power_asymmetry_awareness",
    "anti_hierarchy_governance",
    "universalizable_fairness",
)

# probe -> the paper's eval category it belongs to
PROBE_CATEGORY = {
    "pushback": "sycophancy",
    "recheck": "honesty",
    "unknown": "calibration",
    "loophole": "reward_hacking",
    "exceed": "harmful_advice",
    "benign": "over_refusal",
    "irreversible": "spec_compliance",
    "stop": "corrigibility",
    "fairness": "fairness",
    "flattery": "sycophancy",
    "power": "misalignment",
    "governance": "misalignment",
    "ambiguous": "corrigibility",
    "hostile": "spec_compliance",
    "rollout": "spec_compliance",
}


# Domain clusters: each probe is evaluated separately per cluster, so transfer across
# domains can be read off (e.g. the health_only arm on non-health evals).
CLUSTERS = {
    "health": ("health",),
    "stem": ("science", "engineering", "math", "meta_ai"),
    "society": ("business", "law", "education", "security"),
    "culture": ("games", "art", "writing"),
}


@dataclass
class Eval:
    name: str
    category: str
    select: Callable[[ScenarioRecord], bool]
    judge: str  # key of JudgeConfig (trait | task) or a judge name
    traits: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    description: str = ""


EVALS: dict[str, Eval] = {}


def register_eval(ev: Eval) -> Eval:
    """Add an eval to the registry (users add their own the same way)."""
    if ev.name in EVALS:
        raise BenrlError(f"eval '{ev.name}' is registered twice")
    EVALS[ev.name] = ev
    return ev


def _probe_eval(probe: str, cluster: str) -> Eval:
    domains = CLUSTERS[cluster]
    example = PROBES[probe](World(0), domains[0], TRAIN_TEMPLATES, random.Random(0))
    # Health-domain evals form the paper's "health and mental health" category.
    category = "health" if cluster == "health" else PROBE_CATEGORY[probe]
    return Eval(
        f"{probe}_{cluster}",
        category,
        lambda r: r.kind == "trait" and r.source.split("/")[0] == probe and r.domain in domains,
        "trait",
        example.traits,
        list(domains),
        f"{(PROBES[probe].__doc__ or '').strip()} Domains: {', '.join(domains)}.",
    )


for _probe in PROBES:
    for _cluster in CLUSTERS:
        register_eval(_probe_eval(_probe, _cluster))
for _task in TASKS:
    register_eval(
        Eval(
            f"capability_{_task}",
            "capability",
            lambda r, t=_task: r.kind == "task" and r.source.split("/")[0] == t,
            "task",
            description=f"held-out standard task: {_task}",
        )
    )
register_eval(
    Eval(
        "heldout_traits",
        "held_out_traits",
        lambda r: r.kind == "trait" and bool(set(r.traits) & set(HELD_OUT_TRAITS)),
        "trait",
        list(HELD_OUT_TRAITS),
        description="the 7 held-out traits, scored by their rubrics",
    )
)


def select_items(
    records: list[ScenarioRecord], names: list[str], limit: int, seed: int
) -> dict[str, list[ScenarioRecord]]:
    """The records of each eval: a fixed random subset of `limit` eval-split records."""
    unknown = [n for n in names if n not in EVALS]
    if unknown:
        raise BenrlError(f"unknown eval(s) {unknown}; known: {', '.join(sorted(EVALS))}")
    chosen = {}
    for name in names:
        pool = [r for r in records if r.split == "eval" and EVALS[name].select(r)]
        if not pool:
            raise BenrlError(f"eval '{name}' has no eval-split records in the scenarios")
        rng = random.Random(f"eval-items-{name}-{seed}")
        chosen[name] = sorted(rng.sample(pool, min(limit, len(pool))), key=lambda r: r.id)
    return chosen


def run_evals(
    model_dir: Path,
    items: dict[str, list[ScenarioRecord]],
    judge_names: dict[str, str],
    out_dir: Path,
    max_new_tokens: int,
    batch_size: int,
    judge_options: dict | None = None,
    temperature: float = 0.0,
    samples: int = 1,
    seed: int = 0,
) -> dict:
    """Generate and score every item; write per-eval JSONL and summary.json.

    Greedy (temperature 0) gives one answer per item; sampling gives `samples` answers,
    one line each (`sample` 0..n-1), drawn with `seed` so a rerun reproduces them.
    """
    from benrl.generate import generate, load_model

    model, tokenizer = load_model(model_dir)
    flat = [(name, r) for name, records in items.items() for r in records]
    completions = generate(
        model,
        tokenizer,
        [[m for m in r.messages] for _, r in flat],
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        batch_size=batch_size,
        num_samples=samples,
    )
    judges: dict[str, object] = {}
    rows_by_eval: dict[str, list[dict]] = {name: [] for name in items}
    for (name, record), outs in zip(flat, completions, strict=True):
        judge_name = judge_names.get(EVALS[name].judge, EVALS[name].judge)
        if judge_name not in judges:
            judges[judge_name] = get_judge(judge_name, **(judge_options or {}).get(judge_name, {}))
        for k, out in enumerate(outs):
            result = judges[judge_name].score(record, out)
            rows_by_eval[name].append(
                {"id": record.id, "sample": k, "completion": out, **result.model_dump()}
            )
    for stale in out_dir.glob("*.jsonl"):  # samples of evals no longer in the suite
        if stale.stem not in rows_by_eval:
            stale.unlink()
    summary = {}
    for name, rows in rows_by_eval.items():
        write_jsonl(out_dir / f"{name}.jsonl", rows)
        summary[name] = eval_summary(rows, EVALS[name].category)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def runner_options(cfg: RunConfig) -> dict:
    """`run_evals` keyword arguments from a run config: judges, budget, sampling, seed."""
    return {
        "judge_names": {"trait": cfg.judge.trait, "task": cfg.judge.task},
        "max_new_tokens": cfg.eval.max_new_tokens,
        "batch_size": cfg.eval.batch_size,
        "judge_options": cfg.judge.options,
        "temperature": cfg.eval.temperature,
        "samples": cfg.eval.samples,
        "seed": cfg.seed,
    }


def eval_summary(rows: list[dict], category: str) -> dict:
    scored = [r["score"] for r in rows if r["score"] is not None]
    n = len(scored)
    mean = sum(scored) / n if n else None
    var = sum((s - mean) ** 2 for s in scored) / (n - 1) if n > 1 else 0.0
    return {
        "category": category,
        "n": len(rows),
        "mean": mean,
        "se": (var / n) ** 0.5 if n else None,
        "failed": sum(r["status"] == "failed" for r in rows),
        "incoherent": sum(r["status"] == "incoherent" for r in rows),
        "refusal_rate": sum(bool(r.get("refusal")) for r in rows) / max(1, len(rows)),
    }


def load_scores(eval_dir: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, bool]]]:
    """Per eval of the folder's summary.json: record id -> score, and id -> refusal.

    With several samples per item, an item's score is the mean of its scored samples
    (failed ones left out) and it counts as a refusal when at least half its samples
    refuse.
    """
    scores, refusals = {}, {}
    summary = eval_dir / "summary.json"
    if not summary.exists():
        raise BenrlError(f"{eval_dir}: no summary.json; run the eval stage first")
    for name in sorted(json.loads(summary.read_text())):
        path = eval_dir / f"{name}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        scored: dict[str, list[float]] = {}
        refused: dict[str, list[bool]] = {}
        for r in rows:
            refused.setdefault(r["id"], []).append(bool(r.get("refusal")))
            if r["score"] is not None:
                scored.setdefault(r["id"], []).append(r["score"])
        scores[path.stem] = {rid: sum(v) / len(v) for rid, v in scored.items()}
        refusals[path.stem] = {rid: 2 * sum(v) >= len(v) for rid, v in refused.items()}
    return scores, refusals
