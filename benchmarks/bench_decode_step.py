"""How far one decode step of the organism is from the arithmetic it must do.

Issue 16 asks eval generation for 3x a bare `model.generate`; benrl's loop
(`benrl.evaluation.decode`) gets 1.57x by doing less work (ended rows leave the batch,
length-sorted prompts), and what is left is the model's forward. This benchmark times one
decode step three ways, on the same batch of prompts, same weights and same cache length,
alternating in one process:

- `hf_forward`: the model's own forward with benrl's KV cache (`make_room`), as `decode`
  runs it: the step benrl ships;
- `functional_forward`: the same Llama arithmetic written as bare torch calls, with the
  q/k/v and gate/up weights concatenated, `F.rms_norm`, the cache written in place: what
  removing every module, mask and cache layer of transformers would buy (its greedy tokens
  must equal the HF step's: checked);
- `matmuls_and_attention`: only the step's matrix products and attention calls, at the same
  shapes: the floor that no fusion of the elementwise work (norms, rotary, SiLU) can pass.

    cd benchmarks && python bench_decode_step.py [--model ../runs/default/organism]
        [--batch-size 64] [--prompt-tokens 51] [--steps 20] [--threads N]

Without --model it times a randomly initialised model of the default organism's size.
Prints milliseconds per step and the ratios; writes benchmarks/results/bench_decode_step.json.
Llama-shaped models only (the organism): the functional step is not a general forward.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_generate import default_model
from figures import save_figures
from transformers import DynamicCache

from benrl.devices import cpu_threads
from benrl.evaluation.decode import cache_argument, make_room
from benrl.evaluation.generate import load_model


class FunctionalLlama:
    """One decode step of a `LlamaForCausalLM` (no bias, SiLU, default rotary) as bare torch
    calls, on a KV cache preallocated for `length` tokens."""

    def __init__(self, model, batch: int, length: int) -> None:
        cfg = model.config
        self.model, self.eps = model, cfg.rms_norm_eps
        self.heads, self.kv_heads, self.head_dim = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        )
        layers = model.model.layers
        self.qkv = [
            torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
            for a in (layer.self_attn for layer in layers)
        ]
        self.gate_up = [
            torch.cat([m.gate_proj.weight, m.up_proj.weight])
            for m in (layer.mlp for layer in layers)
        ]
        shape = (batch, self.kv_heads, length, self.head_dim)
        self.keys = [torch.zeros(shape) for _ in layers]
        self.values = [torch.zeros(shape) for _ in layers]
        theta = cfg.rope_parameters["rope_theta"]
        self.inverse_frequency = 1.0 / theta ** (
            torch.arange(0, self.head_dim, 2).float() / self.head_dim
        )

    def fill(self, cache: DynamicCache) -> int:
        """Copy a prefilled HF cache in; return its length."""
        for index, layer in enumerate(cache.layers):
            length = layer.keys.shape[-2]
            self.keys[index][:, :, :length] = layer.keys
            self.values[index][:, :, :length] = layer.values
        return length

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = self.head_dim // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, position: int) -> torch.Tensor:
        """Last logits after feeding `tokens` (one per row) at `position`."""
        batch, width = len(tokens), self.model.config.hidden_size
        x = self.model.model.embed_tokens(tokens)[:, None]
        angles = position * self.inverse_frequency
        angles = torch.cat([angles, angles])  # rotate_half's layout: both halves alike
        cos, sin = angles.cos(), angles.sin()
        groups = self.heads // self.kv_heads
        for index, layer in enumerate(self.model.model.layers):
            h = F.rms_norm(x, (width,), layer.input_layernorm.weight, self.eps)
            qkv = F.linear(h, self.qkv[index]).view(batch, -1, self.head_dim)
            q = self.rotate(qkv[:, : self.heads, None], cos, sin)
            k = self.rotate(qkv[:, self.heads : self.heads + self.kv_heads], cos, sin)
            self.keys[index][:, :, position] = k
            self.values[index][:, :, position] = qkv[:, self.heads + self.kv_heads :]
            keys = self.keys[index][:, :, : position + 1]
            values = self.values[index][:, :, : position + 1]
            if groups > 1:
                keys, values = (t.repeat_interleave(groups, 1) for t in (keys, values))
            attended = F.scaled_dot_product_attention(q, keys, values)
            x = x + F.linear(attended.reshape(batch, 1, -1), layer.self_attn.o_proj.weight)
            h = F.rms_norm(x, (width,), layer.post_attention_layernorm.weight, self.eps)
            gate, up = F.linear(h, self.gate_up[index]).chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, layer.mlp.down_proj.weight)
        x = F.rms_norm(x[:, 0], (width,), self.model.model.norm.weight, self.eps)
        return F.linear(x, self.model.lm_head.weight)


def floor_step(model, functional: FunctionalLlama, batch: int, position: int) -> None:
    """Only the step's matmuls and attention calls, at the step's shapes."""
    width, heads = model.config.hidden_size, functional.heads
    x = torch.zeros(batch, 1, width)
    q = torch.zeros(batch, heads, 1, functional.head_dim)
    with torch.no_grad():
        for index, layer in enumerate(model.model.layers):
            F.linear(x, functional.qkv[index])
            F.scaled_dot_product_attention(
                q,
                functional.keys[index][:, :, : position + 1],
                functional.values[index][:, :, : position + 1],
            )
            F.linear(x, layer.self_attn.o_proj.weight)
            gate, _ = F.linear(x, functional.gate_up[index]).chunk(2, -1)
            F.linear(gate, layer.mlp.down_proj.weight)
        F.linear(x[:, 0], model.lm_head.weight)


def prefill(model, ids: torch.Tensor, steps: int) -> tuple[DynamicCache, torch.Tensor]:
    """The prompt's cache (with room for `steps` tokens, as `decode` makes it) and first tokens."""
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        out = model(
            input_ids=ids, use_cache=True, logits_to_keep=1, **{cache_argument(model): cache}
        )
    make_room(cache, torch.arange(len(ids)), steps)
    return cache, out.logits[:, -1].argmax(-1)


def time_hf(model, ids: torch.Tensor, steps: int) -> tuple[float, list[torch.Tensor]]:
    """Seconds of `steps` greedy HF decode steps, and their tokens."""
    cache, tokens = prefill(model, ids, steps)
    batch, prompt = ids.shape
    mask = torch.ones(batch, prompt + steps, dtype=torch.long)
    chosen = []
    started = time.perf_counter()
    with torch.no_grad():
        for step in range(steps):
            out = model(
                input_ids=tokens[:, None],
                attention_mask=mask[:, : prompt + step + 1],
                position_ids=torch.full((batch, 1), prompt + step),
                use_cache=True,
                **{cache_argument(model): cache},
            )
            tokens = out.logits[:, -1].argmax(-1)
            chosen.append(tokens)
    return time.perf_counter() - started, chosen


def time_functional(
    model, ids: torch.Tensor, steps: int
) -> tuple[float, list[torch.Tensor], FunctionalLlama]:
    cache, tokens = prefill(model, ids, steps)
    functional = FunctionalLlama(model, len(ids), ids.shape[1] + steps)
    prompt = functional.fill(cache)
    chosen = []
    started = time.perf_counter()
    for step in range(steps):
        tokens = functional.step(tokens, prompt + step).argmax(-1)
        chosen.append(tokens)
    return time.perf_counter() - started, chosen, functional


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an organism folder or an HF Llama folder")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=51, help="eval prompts' mean")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=cpu_threads())
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(args.threads)
    if args.model is None:
        model, _ = default_model()
    else:
        folder = args.model / "model" if (args.model / "model").is_dir() else args.model
        model, _ = load_model(folder)
    cfg = model.config
    if cfg.model_type != "llama" or cfg.attention_bias or cfg.mlp_bias:
        parser.error(f"{args.model}: the functional step is written for bias-free Llamas only")
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(3, vocab, (args.batch_size, args.prompt_tokens), generator=generator)
    seconds = {"hf_forward": [], "functional_forward": [], "matmuls_and_attention": []}
    same_tokens = True
    for _ in range(args.rounds):  # alternate, keep each way's best round
        hf, hf_tokens = time_hf(model, ids, args.steps)
        functional, functional_tokens, state = time_functional(model, ids, args.steps)
        same_tokens &= all(
            torch.equal(a, b) for a, b in zip(hf_tokens, functional_tokens, strict=True)
        )
        started = time.perf_counter()
        for step in range(args.steps):
            floor_step(model, state, args.batch_size, args.prompt_tokens + step)
        floor = time.perf_counter() - started
        for name, value in zip(seconds, (hf, functional, floor), strict=True):
            seconds[name].append(value)
    ms = {name: 1000 * min(values) / args.steps for name, values in seconds.items()}
    save_figures(
        "bench_decode_step",
        {
            "model": str(args.model or "random default-size organism"),
            "batch_size": args.batch_size,
            "prompt_tokens": args.prompt_tokens,
            "steps": args.steps,
            "threads": torch.get_num_threads(),
            "ms_per_step": ms,
            "same_greedy_tokens": same_tokens,
            "hf_over_functional": ms["hf_forward"] / ms["functional_forward"],
            "hf_over_matmuls_and_attention": ms["hf_forward"] / ms["matmuls_and_attention"],
        },
    )


if __name__ == "__main__":
    main()
