"""A lean sampling loop for any Hugging Face causal LM, used for evals and GRPO rollouts.

`model.generate` keeps every row of a batch until its longest answer ends: on short
answers (the organism's mean 8 tokens, capped at 24) most of its row-steps are for
answers that have already ended, and its per-step machinery (logits processors,
stopping criteria, input preparation) costs as much as a small model's forward. This
loop does the same arithmetic with less waste, through the model's own forward and
`DynamicCache`:

- an ended row leaves the batch and the KV cache (`Cache.batch_select_indices`) once a
  quarter of the batch has ended (until then it is fed along and its output ignored:
  copying the cache at every step cost more than the rows it saved);
- the KV cache has room for the answer from the start (`RoomyLayer`): a step writes its
  keys and values into it instead of concatenating the whole cache again;
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
from transformers.cache_utils import DynamicLayer

Chooser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
COMPACT_SHARE = 0.25  # drop the ended rows from the batch once they are this share of it


class RoomyLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values are views of buffers with room for more
    tokens: `update` writes into the room (a concatenation when it is full)."""

    @classmethod
    def from_layer(cls, layer: DynamicLayer, rows: torch.Tensor, room: int) -> RoomyLayer:
        """`layer`'s cache for `rows` (indices into its batch), with room for `room` tokens."""
        roomy = cls()
        roomy.device, roomy.is_initialized = layer.device, True
        roomy._buffers = []
        for cached in (layer.keys, layer.values):
            _, heads, length, dim = cached.shape
            buffer = cached.new_empty(len(rows), heads, length + room, dim)
            buffer[:, :, :length] = cached.index_select(0, rows)
            roomy._buffers.append(buffer)
        roomy._length = length
        roomy._views()
        return roomy

    def _views(self) -> None:
        self.keys, self.values = (b[:, :, : self._length] for b in self._buffers)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        new = key_states.shape[-2]
        if self._length + new > self._buffers[0].shape[-2]:  # full: concatenate, no room left
            keys, values = super().update(key_states, value_states)
            self._buffers, self._length = [keys, values], keys.shape[-2]
            return keys, values
        for buffer, states in zip(self._buffers, (key_states, value_states), strict=True):
            buffer[:, :, self._length : self._length + new] = states
        self._length += new
        self._views()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._buffers = [b.index_select(0, indices) for b in self._buffers]
        self._views()


def make_room(cache: DynamicCache, rows: torch.Tensor, room: int) -> None:
    """Keep `rows` of the cache's batch, each plain layer with room for `room` tokens (others,
    such as sliding-window layers, only keep the rows)."""
    for index, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer and layer.is_initialized:
            cache.layers[index] = RoomyLayer.from_layer(layer, rows, room)
        else:
            layer.batch_select_indices(rows)


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
    if expand is not None:  # each answer's prompt row
        expand = expand.to(device)
        logits, attention_mask, positions = (
            logits[expand],
            attention_mask[expand],
            positions[expand],
        )
    kept = expand if expand is not None else torch.arange(len(logits), device=device)
    make_room(cache, kept, max_new_tokens)
    rows = torch.arange(len(logits), device=device)  # each batch row's answer
    next_position = positions[:, -1] + 1
    eos = torch.tensor(eos_ids, device=device)
    answers: list[list[int]] = [[] for _ in range(len(logits))]
    live = torch.ones(len(rows), dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        answering = live.nonzero().squeeze(1)
        tokens = torch.zeros_like(rows)  # an ended row is fed token 0; its output is ignored
        tokens[answering] = choose(logits[answering], rows[answering])
        for row, token in zip(rows[answering].tolist(), tokens[answering].tolist(), strict=True):
            answers[row].append(token)
        live[answering] = ~torch.isin(tokens[answering], eos)
        if step == max_new_tokens - 1 or not bool(live.any()):
            break
        if (~live).sum() >= COMPACT_SHARE * len(live):
            keep = live.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, tokens, live = rows[keep], tokens[keep], live[keep]
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
