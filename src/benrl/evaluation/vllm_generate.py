"""Eval answers through vLLM (`eval.backend: vllm`): the same prompts, much faster on a GPU.

The prompts are rendered by the model's own tokenizer through `generate.encode_prompts`
(with the run's `chat_template_kwargs`), exactly as the hf backend and TRL training do,
and handed to vLLM as token ids, so both backends answer the same prompt. Greedy at
temperature 0 (one answer copied `num_samples` times, as the hf backend does), else
`num_samples` sampled answers per prompt, seeded from `seed`. vLLM is imported only
here, only when this backend is chosen (install the `[vllm]` extra on a CUDA machine).
"""

from __future__ import annotations

import gc
from pathlib import Path

from benrl.errors import BenrlError
from benrl.records import Message


def generate_vllm(
    model_dir: Path,
    conversations: list[list[Message]],
    gpu_memory_utilization: float,
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
    num_samples: int = 1,
    chat_template_kwargs: dict | None = None,
) -> list[list[str]]:
    """One list of `num_samples` answers per conversation, in the caller's order."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as e:
        raise BenrlError(
            "eval.backend 'vllm' needs the vllm package: pip install 'benrl[vllm]'"
        ) from e
    from transformers import AutoTokenizer

    from benrl.evaluation.generate import encode_prompts

    if not conversations:
        return []
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    prompts = encode_prompts(tokenizer, conversations, chat_template_kwargs)
    copies = 1 if temperature == 0 else num_samples
    # A seed per request: vLLM gives each its own generator, so a request's answers do not
    # depend on its batch (as `generate`'s `paired` sampling), and two prompts do not share
    # one random stream (one seed for all would draw every prompt's tokens from the same
    # uniforms, correlating answers across items).
    params = [
        SamplingParams(
            n=copies, temperature=temperature, max_tokens=max_new_tokens, seed=seed * 1_000_003 + i
        )
        for i in range(len(prompts))
    ]
    llm = LLM(
        model=str(model_dir),
        dtype="auto",
        seed=seed,
        gpu_memory_utilization=gpu_memory_utilization,
        enable_prefix_caching=True,
    )
    try:
        outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], params)
    finally:
        del llm  # give the GPU memory back before the next model or stage loads
        gc.collect()
    answers = [[c.text for c in out.outputs] for out in outputs]
    return [a * num_samples if copies == 1 else a for a in answers]
