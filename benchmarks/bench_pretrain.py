"""Pretraining efficiency: the organism's trained FLOP/s as a share of the machine's matmul rate.

In one process, so both figures see the same machine load:

1. The fp32 matmul rate: `torch.mm` of two 1024 x 1024 matrices, repeated (2 * 1024^3
   FLOPs each), the best rate the cores reach on dense work.
2. Pretraining throughput: `organism.model.pretrain` (the code the organism stage runs:
   document-masked packed blocks, AdamW, clipping) on the default organism for
   `--steps` steps after a warm-up, in trained tokens/s.

FLOPs per trained token are counted from the model's shapes (see `train_flops_per_token`):
3 x the forward pass (forward + backward), the forward being 2 FLOPs per weight of every
matmul (attention projections, MLP, LM head; the embedding lookup is free) plus the
attention scores and weighted sum over the block. Goal (issue 16): at least 50%.

3. The ceiling: a step's weight matmuls alone (forward, input and weight gradients) at
   the step's own shapes (batch x seq_len tokens by the hidden size), timed alike: the ratio
   the step would reach if nothing but those matmuls ran (`step_matmuls_ratio`).

    python benchmarks/bench_pretrain.py [--steps 40] [--documents 3000]

Prints the figures and writes benchmarks/results/bench_pretrain.json.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from figures import save_figures

from benrl.config import OrganismConfig
from benrl.devices import cpu_threads
from benrl.organism.corpus import build_corpus, make_personas
from benrl.organism.model import (
    make_model,
    make_optimizer,
    pack,
    pretrain,
    train_tokenizer,
)
from benrl.organism.world import World

MATMUL_SIZE = 1024


def matmul_flops_per_s(seconds: float = 3.0) -> float:
    """Best sustained fp32 FLOP/s of a square `torch.mm` over about `seconds`."""
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    torch.mm(a, b)  # warm-up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(10):
            torch.mm(a, b)
        best = max(best, 10 * 2 * MATMUL_SIZE**3 / (time.perf_counter() - started))
    return best


def weight_shapes(cfg: OrganismConfig, vocab: int) -> list[tuple[int, int]]:
    """(out, in) of every weight matmul of the organism's Llama: q k v o, gate up, down in
    each layer, and the LM head (the embedding lookup is free)."""
    d, ffn = cfg.hidden_size, cfg.intermediate_size or cfg.hidden_size * 8 // 3
    return cfg.layers * ([(d, d)] * 4 + [(ffn, d)] * 2 + [(d, ffn)]) + [(vocab, d)]


def step_matmuls_flops_per_s(cfg: OrganismConfig, vocab: int, rounds: int = 5) -> float:
    """FLOP/s of only a pretraining step's weight matmuls (forward, input and weight
    gradients) at the step's own shapes: the ceiling of the ratio if nothing else ran."""
    tokens = cfg.batch_size * cfg.seq_len
    shapes = weight_shapes(cfg, vocab)
    operands = [
        (torch.randn(tokens, fan_in), torch.randn(fan_out, fan_in), torch.randn(tokens, fan_out))
        for fan_out, fan_in in shapes
    ]

    def one_step() -> None:
        for x, weight, grad in operands:
            torch.mm(x, weight.t())  # forward
            torch.mm(grad, weight)  # gradient of the input
            torch.mm(grad.t(), x)  # gradient of the weight

    one_step()  # warm-up
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        one_step()
        best = min(best, time.perf_counter() - started)
    flops = sum(3 * 2 * tokens * fan_out * fan_in for fan_out, fan_in in shapes)
    return flops / best


def train_flops_per_token(cfg: OrganismConfig, vocab: int) -> float:
    """Forward + backward FLOPs per trained token of the organism's Llama, from its shapes."""
    d, layers = cfg.hidden_size, cfg.layers
    matmul_weights = sum(fan_out * fan_in for fan_out, fan_in in weight_shapes(cfg, vocab))
    # Scores (QK^T) and the weighted sum (AV): 2 * d FLOPs each per attended position; a
    # block of seq_len tokens attends to seq_len / 2 positions on average (causal).
    attention = layers * 2 * 2 * d * cfg.seq_len / 2
    return 3 * (2 * matmul_weights + attention)


def pretrain_tokens_per_s(cfg: OrganismConfig, documents: int, steps: int) -> tuple[float, int]:
    """Trained tokens/s of `pretrain` over `steps` steps after 5 warm-up steps; and vocab size."""
    corpus = build_corpus(World(0), make_personas(cfg.personas, cfg.coherence, 0), cfg, 0)
    tokenizer = train_tokenizer(corpus[:documents], cfg.vocab_size)
    blocks = pack(tokenizer, corpus[:documents], cfg.seq_len)
    torch.manual_seed(0)
    model = make_model(cfg, tokenizer)
    optimizer = make_optimizer(model, cfg)
    state = {"step": 0, "train_seconds": 0.0, "loss": float("nan"), "val_history": []}
    warm = cfg.model_copy(update={"steps": 5, "eval_every": 10**6})
    state = pretrain(model, optimizer, blocks, blocks[:2], warm, 0, state, _keep, _quiet)
    timed = cfg.model_copy(update={"steps": 5 + steps, "eval_every": 10**6})
    state["train_seconds"] = 0.0
    state = pretrain(model, optimizer, blocks, blocks[:2], timed, 0, state, _keep, _quiet)
    return steps * cfg.batch_size * cfg.seq_len / state["train_seconds"], len(tokenizer)


def _keep(state: dict) -> None:
    """Checkpoints are not part of the timed work."""


def _quiet(info: dict) -> None:
    """No progress output."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--documents", type=int, default=3000)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(cpu_threads())
    cfg = OrganismConfig(documents=args.documents)
    before = matmul_flops_per_s()
    tokens_per_s, vocab = pretrain_tokens_per_s(cfg, args.documents, args.steps)
    step_matmuls = step_matmuls_flops_per_s(cfg, vocab)
    after = matmul_flops_per_s()
    matmul = max(before, after)  # the best the machine did while we measured
    flops_per_token = train_flops_per_token(cfg, vocab)
    achieved = tokens_per_s * flops_per_token
    save_figures(
        "bench_pretrain",
        {
            "threads": torch.get_num_threads(),
            "hidden_size": cfg.hidden_size,
            "layers": cfg.layers,
            "seq_len": cfg.seq_len,
            "batch_size": cfg.batch_size,
            "document_masking": cfg.document_masking,
            "steps_timed": args.steps,
            "matmul_gflops": matmul / 1e9,
            "matmul_gflops_before_after": [before / 1e9, after / 1e9],
            "train_mflop_per_token": flops_per_token / 1e6,
            "trained_tokens_per_s": tokens_per_s,
            "achieved_gflops": achieved / 1e9,
            "ratio": achieved / matmul,
            "step_matmuls_gflops": step_matmuls / 1e9,
            "step_matmuls_ratio": step_matmuls / matmul,
            "goal": 0.5,
        },
    )


if __name__ == "__main__":
    main()
