"""Concurrent judging: one TRL reward batch graded by the `openai` judge, concurrency 32 vs 1.

A local OpenAI-compatible server on 127.0.0.1 (tests/openai_stub.py) answers every
grading request after a fixed delay (1 s by default), the way a busy judge model does.
The benchmark hands N completions (256 by default) to benrl's TRL reward function as
one batch, exactly as TRL's GRPOTrainer does, once with the judge's `concurrency` at
32 and once at 1, and reports both wall times and their ratio. The reward function,
the eval runner, the stress stage and the reward server all grade through the same
`JudgeCache.grade_routed`, so the ratio holds for each of them.

Verdicts are a known function of the item, so the benchmark also checks that both runs
return the same rewards in the same order (concurrency changes speed, never results).

    python benchmarks/bench_judge_concurrency.py [--items 256] [--delay 1.0] [--high 32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from figures import save_figures  # noqa: E402
from openai_stub import Reply, running_stub, slow  # noqa: E402

from benrl.records import ScenarioRecord  # noqa: E402
from benrl.training.rewards import make_trl_reward_funcs  # noqa: E402

CRITERIA = ("c1", "c2", "c3")


def record(i: int) -> ScenarioRecord:
    return ScenarioRecord(
        split="train",
        source="bench/concurrency",
        kind="trait",
        domain="medicine",
        messages=[{"role": "user", "content": f"Case {i}: is it safe to double my dose?"}],
        rubric=[
            {"id": "c1", "text": "Say that doubling the dose is not safe.", "weight": 1},
            {"id": "c2", "text": "Recommend asking a pharmacist.", "weight": 1},
            {"id": "c3", "text": "Name the risk of an overdose.", "weight": 2},
        ],
    )


def expected_reward(i: int) -> float:
    return [0.0, 0.25, 0.5, 1.0][i % 4]  # weights 1, 1, 2: the first k criteria met


def brain(delay: float):
    """Every answer waits `delay` s; item i meets the first i % 4 criteria."""

    def respond(body: dict) -> Reply:
        i = int(body["messages"][1]["content"].split("Case ", 1)[1].split(":", 1)[0])
        met = i % 4
        answer = {
            cid: {"reason": "per the stub", "verdict": "met" if k < met else "not_met"}
            for k, cid in enumerate(CRITERIA)
        }
        return slow(delay, json.dumps(answer))

    return respond


def grade_batch(url: str, records: list[ScenarioRecord], concurrency: int) -> tuple[list, float]:
    """One reward-function call over the whole batch; (rewards, wall seconds)."""
    options = {
        "base_url": url,
        "model": "stub-grader",
        "mode": "whole_rubric",  # one request per item, so requests = items
        "concurrency": concurrency,
        "timeout_s": 30.0,
        "max_retries": 0,
    }
    (reward,) = make_trl_reward_funcs(
        {r.id: r for r in records}, {"trait": "openai"}, {"openai": options}
    )
    start = time.perf_counter()
    rewards = reward(
        prompts=[""] * len(records),
        completions=["Do not double it; ask a pharmacist."] * len(records),
        record_id=[r.id for r in records],
    )
    return rewards, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=256, help="completions in the batch")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds per judge answer")
    parser.add_argument("--high", type=int, default=32, help="the concurrency compared to 1")
    args = parser.parse_args()

    records = [record(i) for i in range(args.items)]
    expected = [expected_reward(i) for i in range(args.items)]
    with running_stub() as stub:
        stub.respond = brain(0.0)
        grade_batch(stub.url, records[:1], 1)  # warm-up: imports and the first connection
        stub.respond = brain(args.delay)
        stub.received.clear()
        stub.max_in_flight = 0
        fast, wall_high = grade_batch(stub.url, records, args.high)
        peak_high, requests = stub.max_in_flight, stub.count
        stub.max_in_flight = 0
        slow_rewards, wall_one = grade_batch(stub.url, records, 1)
        peak_one = stub.max_in_flight
    figures = {
        "items": args.items,
        "judge_delay_s": args.delay,
        "http_requests_per_run": requests,
        f"wall_s_concurrency_{args.high}": round(wall_high, 2),
        "wall_s_concurrency_1": round(wall_one, 2),
        "speedup": round(wall_one / wall_high, 1),
        "ideal_speedup": args.high,
        f"max_in_flight_concurrency_{args.high}": peak_high,
        "max_in_flight_concurrency_1": peak_one,
        "same_rewards_in_order": fast == slow_rewards == expected,
    }
    save_figures("bench_judge_concurrency", figures)
    if not figures["same_rewards_in_order"] or figures["speedup"] < 20:
        sys.exit(1)


if __name__ == "__main__":
    main()
