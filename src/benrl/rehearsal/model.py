"""A tiny random model of a config's architecture family and chat template, built locally.

A rehearsal never downloads weights. It reads the family (`model_type`) and chat template
from the config's model folder when that folder exists here, else infers them from the
folder's name (`models/Qwen3-0.6B` -> qwen3 with a ChatML template that understands
`enable_thinking`), and builds a 2-layer, 32-wide random model of that family with a small
byte-level BPE tokenizer carrying the template's special tokens. The same TRL, generation
and export code paths then run on it as on the real model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from benrl.data.traits import load_taxonomy
from benrl.errors import BenrlError

# ChatML as Qwen3 writes it, reduced to what benrl sends (no tools): `enable_thinking=False`
# puts the empty think block into the generation prompt, as Qwen3's own template does.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
    "<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
    "{% endif %}"
)
# family -> (chat template, special tokens: bos, eos, pad, others)
FAMILIES: dict[str, tuple[str, tuple[str, str, str, tuple[str, ...]]]] = {
    "qwen3": (CHATML, ("<|endoftext|>", "<|im_end|>", "<|endoftext|>", ("<|im_start|>",))),
    "qwen2": (CHATML, ("<|endoftext|>", "<|im_end|>", "<|endoftext|>", ("<|im_start|>",))),
    "llama": (
        LLAMA3,
        (
            "<|begin_of_text|>",
            "<|eot_id|>",
            "<|finetune_right_pad_id|>",
            ("<|start_header_id|>", "<|end_header_id|>"),
        ),
    ),
}
FAMILIES["mistral"] = FAMILIES["llama"]
FAMILIES["gemma"] = FAMILIES["llama"]


def model_family(model: str) -> tuple[str, str | None]:
    """(model_type, the folder's own chat template or None) of the config's `model`."""
    folder = Path(model)
    if (folder / "config.json").is_file():
        kind = json.loads((folder / "config.json").read_text()).get("model_type", "")
        return kind, _folder_template(folder)
    name = folder.name.lower()
    for kind in ("qwen3", "qwen2", "llama", "mistral", "gemma"):
        if kind in name.replace(".", "").replace("-", ""):
            return kind, None
    raise BenrlError(
        f"model '{model}': not a local folder here and its name names no known family "
        f"({', '.join(FAMILIES)}); put the model's config.json and tokenizer files there"
    )


def _folder_template(folder: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    tok = folder / "tokenizer_config.json"
    template = json.loads(tok.read_text()).get("chat_template") if tok.is_file() else None
    return template if isinstance(template, str) else None


def _corpus() -> list[str]:
    """English text to train the tiny tokenizer on: the taxonomy's definitions."""
    tax = load_taxonomy()
    return [t.definition for t in tax.traits.values()] + [
        d.description for d in tax.domains.values()
    ]


def tiny_tokenizer(template: str, specials: tuple[str, str, str, tuple[str, ...]]):
    bos, eos, pad, others = specials
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = list(dict.fromkeys([bos, eos, pad, *others, "<think>", "</think>"]))
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        chat_template=template,
    )


def build_tiny_model(model: str, out_dir: Path, seed: int = 0) -> tuple[Path, str]:
    """Save a tiny random model of `model`'s family to `out_dir`; returns (folder, family)."""
    kind, own_template = model_family(model)
    if kind not in FAMILIES and own_template is None:
        raise BenrlError(f"model '{model}': family '{kind}' has no rehearsal chat template")
    template, specials = FAMILIES.get(kind, FAMILIES["llama"])
    tokenizer = tiny_tokenizer(own_template or template, specials)
    config = AutoConfig.for_model(
        kind,
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir, kind
