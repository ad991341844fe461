"""Sampling throughput of `benrl.generate.generate` against a bare batched `model.generate` loop.

Same model, same prompts (eval-template probes of the persona world), same batch size,
temperature 1. The bare loop is what a caller would write by hand: chat template,
left padding in the caller's order, `model.generate`, decode. The ratio (> 1: ours
is faster) shows what benrl's decode loop (`benrl.evaluation.decode`: ended rows leave
the batch, inverse-CDF sampling) and its length-sorted batches save against that.
Issue 16's goal: >= 3.

    python benchmarks/bench_generate.py [--model ORGANISM_OR_HF_FOLDER] [--prompts 512]

Without --model it times a randomly initialised model of the default organism's size
(its answers never stop early, so both sides do the same work). Prints the numbers and
writes benchmarks/results/bench_generate.json.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import torch
from figures import save_figures

from benrl.config import OrganismConfig
from benrl.devices import cpu_threads
from benrl.evaluation.generate import generate, load_model
from benrl.organism.corpus import build_corpus, make_personas
from benrl.organism.model import eval_items, make_model, train_tokenizer
from benrl.organism.probes import PROBES
from benrl.organism.world import World


def bare_loop(model, tokenizer, conversations, max_new_tokens, batch_size) -> list[str]:
    tokenizer.padding_side = "left"
    texts = []
    for start in range(0, len(conversations), batch_size):
        batch = [[m.model_dump() for m in c] for c in conversations[start : start + batch_size]]
        enc = tokenizer.apply_chat_template(
            batch, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=1.0,
                top_k=None,
                top_p=None,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        texts += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return texts


def count_tokens(tokenizer, texts: list[str]) -> int:
    """Tokens of each answer plus its eos: counted the same way for both sides."""
    return sum(len(ids) + 1 for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def default_model():
    cfg = OrganismConfig()
    corpus = build_corpus(World(0), make_personas(8, 1.0, 0), OrganismConfig(documents=2000), 0)
    tokenizer = train_tokenizer(corpus, cfg.vocab_size)
    torch.manual_seed(0)
    return make_model(cfg, tokenizer).eval(), tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an organism folder or an HF model folder")
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(cpu_threads())
    if args.model is None:
        model, tokenizer = default_model()
    elif (args.model / "model").is_dir():
        model, tokenizer = load_model(args.model / "model")
    else:
        model, tokenizer = load_model(args.model)
    per_probe = -(-args.prompts // len(PROBES))
    items = eval_items(PROBES, World(0), per_probe, random.Random("bench"))
    random.Random(0).shuffle(items)
    conversations = [p.messages for p in items[: args.prompts]]

    generate(model, tokenizer, conversations[:8], 4, temperature=1.0)  # warm-up
    timings = {}
    for name, run in (
        (
            "benrl_generate",
            lambda: [
                o[0]
                for o in generate(
                    model, tokenizer, conversations, args.max_new_tokens, 1.0, 0, args.batch_size
                )
            ],
        ),
        (
            "bare_model_generate",
            lambda: bare_loop(
                model, tokenizer, conversations, args.max_new_tokens, args.batch_size
            ),
        ),
    ):
        torch.manual_seed(0)
        started = time.perf_counter()
        texts = run()
        seconds = time.perf_counter() - started
        tokens = count_tokens(tokenizer, texts)
        timings[name] = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}
    result = {
        "model": str(args.model or "random default-size organism"),
        "params": sum(p.numel() for p in model.parameters()),
        "prompts": len(conversations),
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(),
        **timings,
        "ratio": timings["benrl_generate"]["tokens_per_s"]
        / timings["bare_model_generate"]["tokens_per_s"],
    }
    save_figures("bench_generate", result)


if __name__ == "__main__":
    main()
