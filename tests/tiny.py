"""Tiny organism-shaped pieces for fast tests: the organism's tokenizer, a random Llama.

Untrained on purpose: tests of plumbing (generation, activations, inspect parity) need a
real HF model with the organism's chat template, not a good one.
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from benrl.config import OrganismConfig
from benrl.organism.corpus import build_corpus, make_personas
from benrl.organism.model import train_tokenizer
from benrl.organism.world import World


def organism_tokenizer() -> PreTrainedTokenizerFast:
    """A 300-token BPE tokenizer trained on a 200-conversation organism corpus."""
    return train_tokenizer(
        build_corpus(World(0), make_personas(4, 1.0, 0), OrganismConfig(documents=200), 0), 300
    )


def tiny_llama(
    tokenizer: PreTrainedTokenizerFast, seed: int = 0, max_positions: int = 256
) -> LlamaForCausalLM:
    """A 2-layer, 32-wide random-init Llama for the tokenizer (eval mode)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).eval()
