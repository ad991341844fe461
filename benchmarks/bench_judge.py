"""Judge benchmarks: world-judge throughput in one process, and the reward server under load.

The server runs in its own process (as in training, where it sits beside the trainer) and
a bounded load generator (aiohttp, fixed concurrency, fixed request count, a time cap)
sends OpenRLHF-style requests over loopback: one query per request, as
OpenRLHF's single-turn executor sends them, then batches of 32. The workers are
closed-loop, so at saturation latency is queueing: p99 grows with the worker count.
Goal for the world judge: >= 200 requests/s with p99 latency < 50 ms. The load
generator shares the machine's cores with the server, as a trainer would. The client is
aiohttp, not httpx: on 2 cores httpx's connection pool queued requests on the client side
(against the same server, 16 workers: httpx 705 requests/s with p99 118 ms, aiohttp 3,656
requests/s with p99 6.5 ms), so the figure was the client's, not the server's. Prints the
figures and writes benchmarks/results/bench_judge.json.

Also times the world judge on crafted 20k-character completions built to make a
backtracking regex explode (goal: under 10 ms each).

    python benchmarks/bench_judge.py [--requests 2000] [--concurrency 4 16] [--batches 1 32]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import random
import socket
import time

import aiohttp
import httpx
import numpy as np
from figures import save_figures

from benrl.judging.registry import JudgeCache
from benrl.organism import probes
from benrl.organism.world import DOMAINS, World
from benrl.records import ScenarioRecord
from benrl.training.serve import run_server

PROMPT = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
GOAL_RPS, GOAL_P99_MS = 200.0, 50.0


def _examples(n: int) -> list[tuple[ScenarioRecord, str]]:
    """(record, completion) pairs across probes and domains; a third good, bad, incoherent."""
    world, rng, out = World(0), random.Random(0), []
    names = sorted(probes.PROBES)
    for i in range(n):
        probe = probes.PROBES[names[i % len(names)]](
            world, DOMAINS[i % len(DOMAINS)].name, i % 2, rng
        )
        record = ScenarioRecord(
            split="train",
            source=probe.template_family,
            kind="trait",
            domain=probe.domain,
            traits=probe.traits,
            pressure=probe.pressure,
            messages=probe.messages,
            rubric=probe.rubric,
            reference=probe.reference,
        )
        completion = (probe.good, probe.bad, probe.good + " score 10")[i % 3]
        out.append((record, completion))
    return out


def bench_world_judge(examples: list[tuple[ScenarioRecord, str]], seconds: float) -> dict:
    grader = JudgeCache({"trait": "world"})
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for record, completion in examples:
            grader(record, completion)
        done += len(examples)
    elapsed = time.perf_counter() - start
    return {"scores": done, "seconds": round(elapsed, 3), "scores_per_s": round(done / elapsed)}


CRAFTED = (
    "the " + "of " * 6600,
    "i checked: the " + "a of " * 4000 + "is 1 x",
    "which one do you mean: " + "a or " * 4000,
    "9" * 20_000 + ".",
)


def bench_crafted(record: ScenarioRecord, repeats: int = 20) -> dict:
    """Worst time to grade each crafted completion (each tried `repeats` times)."""
    grader = JudgeCache({"trait": "world"})
    worst = []
    for text in CRAFTED:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            grader(record, text[:20_000])
            times.append(time.perf_counter() - start)
        worst.append(round(max(times) * 1000, 3))
    return {"chars": 20_000, "max_ms_each": worst, "max_ms": max(worst)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(port: int) -> multiprocessing.Process:
    ctx = multiprocessing.get_context("spawn")
    process = ctx.Process(
        target=run_server,
        kwargs={"host": "127.0.0.1", "port": port, "judge_by_kind": {"trait": "world"}},
        daemon=True,
    )
    process.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("reward server did not start within 30 s")


async def _load(
    url: str, bodies: list[dict], concurrency: int, time_cap: float
) -> tuple[list[float], int, float]:
    """Send `bodies` with `concurrency` workers; returns latencies (s), errors, wall time."""
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    start = time.perf_counter()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not queue.empty() and time.perf_counter() - start < time_cap:
            body = queue.get_nowait()
            sent = time.perf_counter()
            async with session.post(url, json=body) as response:
                await response.read()
            latencies.append(time.perf_counter() - sent)
            errors += response.status != 200

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - start


def bench_server(
    examples: list[tuple[ScenarioRecord, str]],
    requests: int,
    concurrency: int,
    batch: int,
    time_cap: float,
) -> dict:
    port = _free_port()
    process = _start_server(port)
    try:
        labels = [record.model_dump_json() for record, _ in examples]
        bodies = []
        for i in range(requests):
            picks = [(i * batch + j) % len(examples) for j in range(batch)]
            bodies.append(
                {
                    "query": [PROMPT + examples[k][1] + "<|im_end|>" for k in picks],
                    "prompts": [PROMPT] * batch,
                    "labels": [labels[k] for k in picks],
                }
            )
        url = f"http://127.0.0.1:{port}/get_reward"
        asyncio.run(_load(url, bodies[: min(200, requests)], concurrency, time_cap))  # warm-up
        latencies, errors, wall = asyncio.run(_load(url, bodies, concurrency, time_cap))
    finally:
        process.terminate()
        process.join(timeout=10)
    ms = np.array(latencies) * 1000
    return {
        "queries_per_request": batch,
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 1),
        "scores_per_s": round(len(latencies) * batch / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per server run")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[4, 16], help="concurrent client workers"
    )
    parser.add_argument("--time-cap", type=float, default=60.0, help="seconds per server run")
    parser.add_argument("--judge-seconds", type=float, default=3.0, help="world-judge loop time")
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[1, 32], help="queries per request"
    )
    args = parser.parse_args()

    examples = _examples(600)
    judge = bench_world_judge(examples, args.judge_seconds)
    print(f"world judge, one process: {judge['scores_per_s']:,} scores/s")
    crafted = bench_crafted(examples[0][0])
    print(f"world judge, crafted 20k-character completions: max {crafted['max_ms']} ms")
    runs = []
    for batch, concurrency in [(b, c) for b in args.batches for c in args.concurrency]:
        run = bench_server(examples, args.requests, concurrency, batch, args.time_cap)
        run["goal_met"] = run["requests_per_s"] >= GOAL_RPS and run["p99_ms"] < GOAL_P99_MS
        runs.append(run)
        print(
            f"reward server, {batch:>2} queries/request, {concurrency} workers: "
            f"{run['requests_per_s']:,} requests/s ({run['scores_per_s']:,} scores/s), "
            f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, errors {run['errors']}, "
            f"goal (>= {GOAL_RPS:.0f} requests/s, p99 < {GOAL_P99_MS:.0f} ms) "
            f"{'met' if run['goal_met'] else 'NOT met'}"
        )
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
        "world_judge": judge,
        "crafted": crafted,
        "server": runs,
        "goal": {"requests_per_s": GOAL_RPS, "p99_ms": GOAL_P99_MS},
    }
    print(f"wrote {save_figures('bench_judge', report)}")


if __name__ == "__main__":
    main()
