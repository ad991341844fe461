"""TRL's GRPOTrainer with the work of a step shared among each prompt's generations.

GRPO samples `num_generations` completions per prompt, and TRL's plain (no vLLM)
path treats the copies as unrelated rows: the rollout prefills the same prompt once
per copy and keeps every row until the longest answer ends, and the loss pass runs the
forward and backward over each copy's prompt again. On the organism a prompt is about
41 tokens and an answer about 8, so most of a step's arithmetic was on repeated prompt
tokens (docs/performance.md has the profile). This subclass changes where the
arithmetic happens, not what is computed:

- rollouts (`_generate_single_turn`): `benrl.evaluation.decode` prefills each distinct
  prompt once, copies its KV cache to its generations, samples at TRL's temperature and
  drops each row from the batch when it ends;
- log-probs (`_get_per_token_logps_and_entropies`): each distinct prompt runs once
  (with gradients), its KV cache is copied to the rows that share it (TRL shuffles a
  step's rows, so they are found by value), and only the completions run per row, in
  buckets of similar length each cut to its longest answer (TRL pads every answer to
  the step's longest).
  Positions and masks are those of TRL's single pass, so the log-probs and their
  gradients equal TRL's up to float round-off (tests/test_grpo_sharing.py checks both).

Anything this does not cover (vLLM, paged generation, images, top-k/top-p/min-p or a
repetition penalty, activation checkpointing, MoE aux losses) goes to TRL's own code.
"""

from __future__ import annotations

import torch
from torch.nn.functional import pad
from transformers import DynamicCache
from trl import GRPOTrainer

from benrl.evaluation.decode import cache_argument, decode, left_pad, sampler


def _distinct_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, inverse): the index of each distinct row's first occurrence, and for each
    row the position of its distinct row in `first` (so `rows[first][inverse] == rows`)."""
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    order = torch.arange(len(rows), device=rows.device)
    first = torch.full((int(inverse.max()) + 1,), len(rows), device=rows.device)
    first = first.scatter_reduce(0, inverse, order, reduce="amin")
    return first, inverse


# The fixed cost of one tail forward and backward, in row-tokens: a bucket is worth its own
# pass when it saves more padding than this. On the organism 64, 256 and 1024 gave 1.22,
# 1.25 and 1.31 s per step (8 steps of the beneficial arm; one bucket: 1.59).
BUCKET_OVERHEAD = 128


def length_buckets(
    tail_mask: torch.Tensor, overhead: int = BUCKET_OVERHEAD
) -> list[tuple[torch.Tensor, int]]:
    """Rows grouped by tail length (through the last unmasked token), each group cut to its
    longest: the grouping with the fewest padded row-tokens plus `overhead` per group.

    TRL pads every completion to the longest of the step; on the organism answers average
    8 tokens of at most 24, so most of the loss pass was padding. Exact (dynamic
    programming over the sorted distinct lengths; there are at most max_completion_length)."""
    positions = torch.arange(1, tail_mask.size(1) + 1, device=tail_mask.device)
    lengths = ((tail_mask != 0) * positions).amax(dim=1).clamp(min=1)
    distinct, counts = torch.unique(lengths, return_counts=True)  # sorted
    widths, total = distinct.tolist(), [0, *counts.cumsum(0).tolist()]
    cost, cut = [0.0] + [float("inf")] * len(widths), [0] * (len(widths) + 1)
    for end in range(1, len(widths) + 1):  # the best grouping of the `end` shortest lengths
        for start in range(end):
            option = cost[start] + (total[end] - total[start]) * widths[end - 1] + overhead
            if option < cost[end]:
                cost[end], cut[end] = option, start
    buckets, end = [], len(widths)
    while end:
        start = cut[end]
        chosen = (lengths >= widths[start]) & (lengths <= widths[end - 1])
        buckets.append((chosen.nonzero().squeeze(1), widths[end - 1]))
        end = start
    return buckets[::-1]


class SharedPromptGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that runs each prompt once per group, in rollouts and in the loss."""

    bucket_overhead = BUCKET_OVERHEAD  # see `length_buckets`

    def _plain_sampling(self) -> bool:
        config = self.generation_config
        return (
            not self.use_vllm
            and not getattr(self, "use_transformers_continuous_batching", False)
            and not self.args.activation_checkpointing
            and not self.is_deepspeed_enabled
            and not self.is_fsdp_enabled
            and config.top_p in (None, 1.0)
            and config.top_k in (None, 0)
            and config.min_p is None
            and config.repetition_penalty in (None, 1.0)
        )

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        if images is not None or multimodal_fields or not self._plain_sampling():
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        distinct: dict[tuple[int, ...], int] = {}
        expand = [distinct.setdefault(tuple(p), len(distinct)) for p in prompt_ids]
        model = self.accelerator.unwrap_model(self.model)
        ids, mask = left_pad([list(p) for p in distinct], self._tokenizer.pad_token_id)
        device = self.accelerator.device
        completions = decode(
            model,
            ids.to(device),
            mask.to(device),
            self.max_completion_length,
            list(self.eos_token_ids),
            sampler(self.temperature),
            expand=torch.tensor(expand),
        )
        return completions, None

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **multimodal,
    ):
        split = (
            input_ids.size(1) - logits_to_keep - 1
        )  # the last prompt token scores the first answer token
        chunk = batch_size or input_ids.size(0)
        if (
            compute_aux_loss
            or any(v is not None for v in multimodal.values())
            or split < 1
            or self.args.activation_checkpointing
        ):
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size,
                compute_entropy,
                compute_aux_loss,
                **multimodal,
            )
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), chunk):
            rows = slice(start, start + chunk)
            out = self._shared_prompt_pass(
                model, input_ids[rows], attention_mask[rows], split, compute_entropy
            )
            logps.append(out[0][:, -logits_to_keep:])
            if compute_entropy:
                entropies.append(out[1][:, -logits_to_keep:])
        return torch.cat(logps), torch.cat(entropies) if compute_entropy else None, None

    def _shared_prompt_pass(
        self, model, input_ids, attention_mask, split: int, compute_entropy: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each distinct prompt head once, then the rows' tails by length bucket on its cache.

        Returns log-probs (and entropies) of every tail position; past a row's last
        unmasked token they are 0 (TRL masks them out of the loss)."""
        # TRL shuffles a step's rows, so the copies of a prompt are found, not assumed
        first, inverse = _distinct_rows(
            torch.cat([input_ids[:, : split + 1], attention_mask[:, : split + 1]], dim=1)
        )
        config = self.accelerator.unwrap_model(model).config
        cache_name = cache_argument(model)
        head = DynamicCache(config=config)
        width = input_ids.size(1) - split
        logps, entropies, order = [], [], []
        with self.accelerator.autocast():
            model(
                input_ids=input_ids[first, :split],
                attention_mask=attention_mask[first, :split],
                use_cache=True,
                logits_to_keep=1,
                **{cache_name: head},
            )
            for rows, length in length_buckets(attention_mask[:, split:], self.bucket_overhead):
                cache = DynamicCache(config=config)
                picked = inverse[rows]  # each row reads its prompt's keys and values
                for layer_index, layer in enumerate(head.layers):
                    # index_select: its backward (index_add) is 7x faster on CPU than
                    # indexing's (index_put with accumulation), 10% of a step before
                    keys, values = (t.index_select(0, picked) for t in (layer.keys, layer.values))
                    cache.update(keys, values, layer_index)
                tail = input_ids[rows, split : split + length]
                mask = attention_mask[rows, : split + length]
                # TRL scores only the completion tokens: labels of prompt and padding are -100
                labels = tail.masked_fill(mask[:, split:] == 0, -100)
                labels[:, 0] = -100
                out = model(
                    input_ids=tail,
                    attention_mask=mask,
                    labels=labels,
                    fused_lm_head=True,
                    **{cache_name: cache},
                )
                logps.append(pad(out.log_probs, (0, width - length)))
                if compute_entropy:
                    entropies.append(pad(out.entropy, (0, width - length)))
                order.append(rows)
        back = torch.cat(order).argsort()  # bucket order -> the caller's row order
        entropy = torch.cat(entropies).index_select(0, back) if compute_entropy else None
        return torch.cat(logps).index_select(0, back), entropy
