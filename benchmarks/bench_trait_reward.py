"""Benchmark: does RL on trait scenarios raise the trait reward on the training scenarios?

    python benchmarks/bench_trait_reward.py RUN_DIR [ITEMS] [SAMPLES]

RUN_DIR is a finished run folder (its config, scenarios and arm models are used). `pre`
and seed 0 of each trained arm answer the same
ITEMS train-split trait scenarios (default 600, drawn evenly over probes), SAMPLES times
each (default 4) at the rollout temperature and completion budget of training, and each
answer gets the reward the beneficial arm trains on (the rubric judge; incoherent: 0).
An item's reward is the mean of its samples; models are compared pairwise by item
against `baseline` (paired bootstrap 95% CI and sign-flip p, `benrl.stats.paired_comparison`).

The check of the dose: `beneficial` must end above `baseline` on prompts of the probes it
trains on. The `unseen` items are drawn from the train trait pool of the trained probes
(same template families and wordings as training) minus the rows beneficial's mixture
holds; the rows it did see are reported apart, and so are train-template prompts of the
held-out probes (`held_out_probes`: never in any arm's data under the paper's split).
Last, on `pre` (where training starts), the share of zero-spread groups (train.generations
answers to one unseen prompt, all with the same reward) under each arm's trait reward.

Prints the figures and writes them to benchmarks/results/bench_trait_reward.json.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from figures import save_figures

from benrl.config import RunConfig
from benrl.evaluation.generate import generate, load_model
from benrl.evaluation.split import held_out, touches
from benrl.evaluation.stats import paired_comparison
from benrl.judging.registry import JudgeCache
from benrl.models import seed_of
from benrl.records import ScenarioRecord, read_records
from benrl.run import Run
from benrl.training.arms import build_mixture
from benrl.training.rewards import reward_value


def pick_items(records: list[ScenarioRecord], count: int, seed: int) -> list[ScenarioRecord]:
    """`count` train trait records, as evenly spread over probes as the pool allows."""
    by_probe: dict[str, list[ScenarioRecord]] = {}
    for r in records:
        if r.kind == "trait":
            by_probe.setdefault(r.id.split("/")[0], []).append(r)
    rng = random.Random(seed)
    for rows in by_probe.values():
        rng.shuffle(rows)
    picked: list[ScenarioRecord] = []
    while len(picked) < count and any(by_probe.values()):
        for rows in by_probe.values():
            if rows and len(picked) < count:
                picked.append(rows.pop())
    return picked


def rollouts(
    model_dir: Path, items: list[ScenarioRecord], cfg: RunConfig, samples: int
) -> list[list[str]]:
    """`samples` answers per item, sampled as in training (temperature, completion budget)."""
    model, tokenizer = load_model(model_dir)
    return generate(
        model,
        tokenizer,
        [r.messages for r in items],
        max_new_tokens=cfg.train.max_completion_length,
        temperature=cfg.train.temperature,
        seed=cfg.seed,
        num_samples=samples,
    )


def mean_rewards(
    model_dir: Path, items: list[ScenarioRecord], cfg: RunConfig, samples: int
) -> dict[str, float]:
    """Record id -> mean reward of `samples` sampled answers under the rubric judge."""
    outs = rollouts(model_dir, items, cfg, samples)
    grader = JudgeCache({"trait": cfg.judge.trait}, cfg.judge.options)
    rewards = {}
    for record, answers in zip(items, outs, strict=True):
        values = [reward_value(grader(record, a)) for a in answers]
        scored = [v for v in values if v is not None]
        if scored:
            rewards[record.id] = sum(scored) / len(scored)
    return rewards


def zero_spread_shares(model_dir: Path, items: list[ScenarioRecord], cfg: RunConfig) -> dict:
    """Share of GRPO-sized groups (train.generations answers to one item) whose answers all
    get the same reward, under the beneficial arm's rubric judge and the generic arm's judge:
    what each arm's reward can learn from on these trait prompts."""
    outs = rollouts(model_dir, items, cfg, cfg.train.generations)
    shares = {}
    for arm, judge in (("beneficial", cfg.judge.trait), ("generic", cfg.judge.generic)):
        grader = JudgeCache({"trait": judge}, cfg.judge.options)
        flat = [
            len({reward_value(grader(r, a)) for a in answers}) == 1
            for r, answers in zip(items, outs, strict=True)
        ]
        shares[f"{arm} ({judge})"] = round(sum(flat) / len(flat), 4)
    return {"items": len(items), "generations": cfg.train.generations, "share": shares}


def compare_with_baseline(
    rewards: dict[str, float], baseline: dict[str, float], ids: set[str]
) -> dict:
    """Mean reward on `ids`, and the paired difference from baseline with its 95% CI."""
    c = paired_comparison(
        {i: v for i, v in rewards.items() if i in ids},
        {i: v for i, v in baseline.items() if i in ids},
    )
    return {
        "mean": round(c.mean_a, 4),
        "vs_baseline": round(c.diff, 4),
        "ci": [round(c.ci_low, 4), round(c.ci_high, 4)],
        "p": c.p_value,
    }


def main() -> None:
    run_dir = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    samples = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    cfg = RunConfig.model_validate_json((run_dir / "config.json").read_text())
    records = read_records(run_dir / "scenarios" / "train.jsonl")
    rows = cfg.train.steps * cfg.train.prompts_per_step
    held = held_out(cfg)
    mixture = build_mixture(records, "beneficial", rows, cfg.train.trait_fraction, cfg.seed, held)
    seen = {r.id: r for r in mixture if r.kind == "trait"}
    trained = [r for r in records if not touches(r.traits, held)]
    items = pick_items([r for r in trained if r.id not in seen], count, cfg.seed)
    untrained = pick_items([r for r in records if touches(r.traits, held)], count, cfg.seed)
    run = Run(cfg, run_dir)  # the run's own model paths: the organism or a local HF model
    everything = items + list(seen.values()) + untrained
    rewards = {
        model_id: mean_rewards(run.model_dir(model_id), everything, cfg, samples)
        for model_id in run.model_ids()
        if model_id == "pre" or seed_of(model_id) == 0  # seed 0 of each arm: one paired set
    }
    figures: dict = {"samples": samples}
    parts = {
        "unseen": {r.id for r in items},
        "seen_by_beneficial": set(seen),
        "held_out_probes": {r.id for r in untrained},
    }
    for part, ids in parts.items():
        if not ids:
            continue
        figures[part] = {"items": len(ids)} | {
            name: compare_with_baseline(by_id, rewards["baseline-s0"], ids)
            for name, by_id in rewards.items()
        }
    figures["zero_spread_groups_pre"] = zero_spread_shares(run.model_dir("pre"), items, cfg)
    save_figures("bench_trait_reward", figures)


if __name__ == "__main__":
    main()
