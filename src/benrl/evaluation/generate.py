"""Batched chat generation for any local Hugging Face causal LM, and loading one.

The eval runner and the organism's card send thousands of short prompts through
here, so it batches with left padding and a KV cache (`decode.py`: the model's own
forward, each row leaving the batch when it ends, about 1.5x `model.generate` on the
organism, benchmarks/bench_generate.py), sorts the prompts by length so a batch wastes
little on padding, and restores the caller's order.
Greedy when `temperature == 0` (then one sample serves all `num_samples`), otherwise
plain sampling at that temperature (no top-k/top-p: the model's own defaults, such as
Qwen's top_p, are not applied, so every model is sampled the same way). Each batch
seeds torch from `seed` and its index, so a call is deterministic for a seed.

`paired=True` draws each answer's randomness from a generator of its own, keyed by the
seed and the answer's position in the call (Gumbel-max: argmax of logits / T plus Gumbel
noise is a sample at temperature T). An answer then depends on its own prompt and seed
only, not on the batch it lands in, so two calls over the same items with different
prompts (a persona prompt, and none) use common random numbers: where the model's
distribution is unchanged the answer is unchanged, and a difference between the calls
measures the prompt, not the sampling noise. vLLM seeds each request the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from benrl.errors import BenrlError
from benrl.evaluation.decode import decode, greedy, left_pad, sampler
from benrl.records import Message


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's eos plus any the model's generation config names (as TRL does)."""
    configured = model.generation_config.eos_token_id
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.insert(0, tokenizer.eos_token_id)
    if not ids:
        raise BenrlError("generate: the tokenizer and the model name no eos token")
    return ids


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[Message]],
    chat_template_kwargs: dict | None = None,
) -> list[list[int]]:
    """Render each conversation with the chat template and an open assistant turn.

    `chat_template_kwargs` go to the template as TRL passes them in training (e.g.
    Qwen3's enable_thinking), so a policy is evaluated on the prompt it was trained on.
    """
    if tokenizer.chat_template is None:
        raise BenrlError(f"generate: tokenizer {tokenizer.name_or_path!r} has no chat template")
    texts = [
        tokenizer.apply_chat_template(
            [m.model_dump() if isinstance(m, Message) else m for m in conv],
            tokenize=False,
            add_generation_prompt=True,
            **(chat_template_kwargs or {}),
        )
        for conv in conversations
    ]
    # The template writes its own special tokens (bos...); do not add them twice.
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


class RowSeededSampler:
    """Sampling at `temperature` as greedy decoding of logits / T + Gumbel noise, the noise
    of row r drawn from a generator seeded with `seeds[r]` (see the module docstring).

    A `decode` chooser: `rows` names the active rows, so a row draws its noise only while
    it is still answering and its k-th token always uses its generator's k-th draw."""

    def __init__(self, seeds: list[int], temperature: float) -> None:
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature = temperature

    def __call__(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        vocab = logits.shape[-1]
        uniform = torch.stack(
            [torch.rand(vocab, generator=self.generators[r]) for r in rows.tolist()]
        )
        gumbel = -torch.log(-torch.log(uniform.clamp(min=torch.finfo(uniform.dtype).tiny)))
        return (logits.float() / self.temperature + gumbel.to(logits.device)).argmax(-1)


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[Message]],
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 64,
    num_samples: int = 1,
    chat_template_kwargs: dict | None = None,
    on_batch: Callable[[int], None] | None = None,
    paired: bool = False,
) -> list[list[str]]:
    """Complete each conversation's next assistant turn; `num_samples` answers per conversation.

    Returns one list of strings per conversation, special tokens stripped. `on_batch(n)`
    is called after each batch with the answers it generated (n of them; for progress).
    """
    if not conversations:
        return []
    if temperature < 0 or max_new_tokens < 1 or batch_size < 1 or num_samples < 1:
        raise BenrlError(
            "generate: temperature must be >= 0 and max_new_tokens, batch_size, num_samples >= 1"
        )
    prompts = encode_prompts(tokenizer, conversations, chat_template_kwargs)
    copies = 1 if temperature == 0 else num_samples
    rows = [(i, s) for i in range(len(prompts)) for s in range(copies)]
    rows.sort(key=lambda row: -len(prompts[row[0]]))  # stable: ties keep the caller's order
    pad_id = (
        tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else _eos_ids(model, tokenizer)[0]
    )
    per_row = paired and temperature > 0  # Gumbel noise from each row's own generator
    eos_ids = _eos_ids(model, tokenizer)
    results: list[list[str]] = [[""] * copies for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        for batch_no, start in enumerate(range(0, len(rows), batch_size)):
            batch = rows[start : start + batch_size]
            ids, mask = left_pad([prompts[i] for i, _ in batch], pad_id)
            torch.manual_seed(seed * 1_000_003 + batch_no)
            if per_row:
                choose = RowSeededSampler(
                    [seed * 1_000_003 + i * copies + s for i, s in batch], temperature
                )
            else:
                choose = sampler(temperature) if temperature > 0 else greedy
            with torch.inference_mode():
                answers = decode(
                    model,
                    ids.to(model.device),
                    mask.to(model.device),
                    max_new_tokens,
                    eos_ids,
                    choose,
                )
            texts = tokenizer.batch_decode(answers, skip_special_tokens=True)
            if on_batch is not None:
                on_batch(len(batch))
            for (i, s), text in zip(batch, texts, strict=True):
                results[i][s] = text.strip()
    finally:
        model.train(was_training)
    return [r * num_samples if copies == 1 else r for r in results]


def load_model(
    path: Path, tokenizer_path: Path | None = None, for_training: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a local HF model folder and its tokenizer (from `tokenizer_path`, else the folder).

    For inference (the default) the model goes on the GPU in bf16/fp16 when CUDA is
    present (`benrl.devices`); `for_training` keeps float32 on the CPU for the Trainer
    to place. Never touches the Hub: HF_HUB_OFFLINE is set and only local files are read.
    """
    from benrl.devices import cuda_available, inference_dtype

    os.environ["HF_HUB_OFFLINE"] = "1"
    path = Path(path)
    if not (path / "config.json").is_file():
        raise BenrlError(f"model folder {path} not found or has no config.json")
    tok_dir = Path(tokenizer_path) if tokenizer_path else path
    if not any((tok_dir / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise BenrlError(f"tokenizer folder {tok_dir} not found or has no tokenizer files")
    try:
        on_gpu = cuda_available() and not for_training
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=inference_dtype() if on_gpu else torch.float32
        )
        if on_gpu:
            model = model.to("cuda")
        tokenizer = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
    except Exception as e:  # corrupt weights or config: name the folder, keep the cause
        raise BenrlError(f"cannot load model from {path}: {type(e).__name__}: {e}") from e
    model.eval()
    return model, tokenizer
