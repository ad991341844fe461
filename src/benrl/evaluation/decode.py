"""A lean sampling loop for any Hugging Face causal LM, used for evals and GRPO rollouts.

`model.generate` keeps every row of a batch until its longest answer ends: on short
answers (the organism's mean 8 tokens, capped at 24) most of its row-steps are for
answers that have already ended, and its per-step machinery (logits processors,
stopping criteria, input preparation) costs as much as a small model's forward. This
loop does the same arithmetic with less waste, through the model's own forward and
`DynamicCache`:

- an ended row leaves the batch and the KV cache (`Cache.batch_select_indices`);
- samples of one prompt share its prefill: each distinct prompt runs once and its cache
  rows are copied to its samples (`expand`, `Cache.batch_select_indices`), as GRPO's
  groups of generations need;
- position ids come from the attention mask, as `generate` computes them, so left
  padding does not shift a row's positions.

`choose(logits, rows)` picks each active row's next token from its last logits
(`rows` are the rows' indices in the output): greedy, plain sampling or a per-row
seeded sampler. Benchmarked against `model.generate` by `benchmarks/bench_generate.py`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from transformers import DynamicCache, PreTrainedModel

Chooser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of token ids as a left-padded batch and its attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


def cache_argument(model: PreTrainedModel) -> str:
    """The forward's name for the KV cache: `cache` since transformers 5.x renamed it
    (`past_key_values` still works there, with a warning on every call)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
    forward = inspect.signature(inner.forward).parameters
    return "cache" if "cache" in forward else "past_key_values"


def greedy(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1)


def sampler(temperature: float) -> Chooser:
    """Plain sampling at `temperature` from torch's global RNG, by inverse CDF: one uniform
    per row and a binary search of the cumulative probabilities (`torch.multinomial`
    draws an exponential per vocabulary entry, 15% of an organism decode step)."""

    def choose(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum(dim=-1)
        uniform = torch.rand(len(cdf), 1, device=cdf.device) * cdf[:, -1:]
        return torch.searchsorted(cdf, uniform).squeeze(1).clamp(max=cdf.shape[-1] - 1)

    return choose


@torch.no_grad()
def decode(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_ids: list[int],
    choose: Chooser,
    expand: torch.Tensor | None = None,
) -> list[list[int]]:
    """New tokens for each row of the left-padded batch, or for each prompt `expand` names.

    Returns one list per row (per entry of `expand`: answer k continues prompt
    `expand[k]`); a list ends at its first eos (included) or at `max_new_tokens`.
    """
    device = input_ids.device
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    with_cache = {cache_argument(model): cache, "use_cache": True}
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=positions,
        logits_to_keep=1,
        **with_cache,
    )
    logits = out.logits[:, -1]
    if expand is not None:
        expand = expand.to(device)
        cache.batch_select_indices(expand)
        logits, attention_mask, positions = (
            logits[expand],
            attention_mask[expand],
            positions[expand],
        )
    rows = torch.arange(len(logits), device=device)
    next_position = positions[:, -1] + 1
    eos = torch.tensor(eos_ids, device=device)
    answers: list[list[int]] = [[] for _ in range(len(logits))]
    for step in range(max_new_tokens):
        tokens = choose(logits, rows)
        for row, token in zip(rows.tolist(), tokens.tolist(), strict=True):
            answers[row].append(token)
        active = ~torch.isin(tokens, eos)
        if step == max_new_tokens - 1 or not bool(active.any()):
            break
        if not bool(active.all()):
            keep = active.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, tokens = rows[keep], tokens[keep]
            attention_mask, next_position = attention_mask[keep], next_position[keep]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(rows), 1)], dim=1)
        out = model(
            input_ids=tokens[:, None],
            attention_mask=attention_mask,
            position_ids=next_position[:, None],
            **with_cache,
        )
        logits = out.logits[:, -1]
        next_position = next_position + 1
    return answers
