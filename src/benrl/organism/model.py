"""The embedded model organism: tokenizer, a small Llama, its pretraining and its card.

No weights can be downloaded on the default CPU path, so benrl builds its own policy:
a byte-level BPE tokenizer and a Llama-style `LlamaForCausalLM` of about a million
parameters, pretrained from scratch on the persona-world corpus (`corpus.py`). Both
are plain Hugging Face objects saved with `save_pretrained` (safetensors), so TRL,
`generate.py`, inspect_ai and any HF tool load them like any other local model.

Pretraining is a readable torch loop in the nanoGPT manner: packed blocks of
`seq_len` tokens (no padding), AdamW, linear warm-up then cosine decay, gradient
clipping, a held-out validation split. Every `eval_every` steps it writes a checkpoint
(model + tokenizer in HF format, optimizer and step in `state.pt`) into a temporary
folder and renames it into place, so a checkpoint is complete or absent; an
interrupted build resumes from the newest one. A checkpoint left by a different
config or seed is stale: it is discarded with a warning. A checkpoint that cannot be
read is a BenrlError: it means damage from outside, and silently retraining would
hide it.

The card (`card.md`, `card.json`) says what was built and how it behaves before any
RL: size, tokens, validation loss, speed, each probe's base rate of the beneficial
family (sampled at temperature 1 on eval-template probes), capability on held-out
standard tasks (greedy, verifiable judge) and the incoherence rate.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from benrl.config import OrganismConfig
from benrl.devices import cpu_threads
from benrl.errors import BenrlError
from benrl.evaluation.generate import generate, load_model
from benrl.organism.corpus import build_corpus, make_personas
from benrl.organism.judges import score
from benrl.organism.latent import ideal_shift, in_context_shift, prompt_shift
from benrl.organism.probes import PROBES, TEMPLATES_PER_PROBE, TRAIN_TEMPLATES
from benrl.organism.scenarios import probe_record, task_record
from benrl.organism.tasks import TASKS
from benrl.organism.world import DOMAINS, World, parse
from benrl.records import Message

log = logging.getLogger(__name__)

Progress = Callable[[dict], None]

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
# Every turn is `<|role|>content<|eos|>`; the generation prompt opens an assistant turn,
# so a sampled answer ends at eos, which is what TRL and `generate` stop on.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{- raise_exception('unknown role ' + message['role']) -}}"
    "{%- endif -%}"
    "{{- '<|' + message['role'] + '|>' + message['content'] + eos_token -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)
VAL_SHARE = 0.02  # documents held out for validation loss
LATENT_PAIRS_PER_SAMPLE = 6  # probe pairs of the persona tests per `card_samples`
VAL_BLOCKS = 64  # at most this many validation blocks per evaluation
CARD_MAX_NEW_TOKENS = 40  # longer than any sentence of the world's language


# --- tokenizer ---------------------------------------------------------------------------


def train_tokenizer(corpus: list[list[Message]], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE over the corpus text, wrapped as an HF tokenizer with a chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((m.content for conv in corpus for m in conv), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
    )


def render(tokenizer: PreTrainedTokenizerFast, conversation: list[Message]) -> str:
    return tokenizer.apply_chat_template(
        [m.model_dump() for m in conversation], tokenize=False, add_generation_prompt=False
    )


def document_inputs(batch: torch.Tensor, bos_id: int, masked: bool) -> dict[str, torch.Tensor]:
    """Model inputs for packed blocks; `masked`: each conversation sees only itself.

    A block holds several conversations, each opening with bos. Unmasked, a conversation
    attends to the unrelated ones before it, so an earlier persona's answers are noise the
    model learns to ignore, and with them its own earlier turns (issue 20's in-context
    test showed no dependence at all). Masked, attention is block-diagonal and positions
    restart at each bos, as at inference, where a prompt is one conversation.
    """
    if not masked:
        return {"input_ids": batch, "labels": batch}
    width = batch.shape[1]
    doc = (batch == bos_id).cumsum(1)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    mask = ((doc[:, :, None] == doc[:, None, :]) & causal)[:, None]
    index = torch.arange(width).expand_as(batch)
    positions = index - torch.where(batch == bos_id, index, 0).cummax(1).values
    labels = batch.masked_fill(batch == bos_id, -100)  # a bos is not predicted across documents
    return {"input_ids": batch, "attention_mask": mask, "position_ids": positions, "labels": labels}


def pack(tokenizer: PreTrainedTokenizerFast, corpus: list[list[Message]], seq_len: int):
    """Tokenize whole conversations, concatenate them and cut blocks of `seq_len` tokens."""
    ids = tokenizer([render(tokenizer, c) for c in corpus], add_special_tokens=False)["input_ids"]
    flat = torch.tensor([t for seq in ids for t in seq], dtype=torch.long)
    blocks = len(flat) // seq_len
    return flat[: blocks * seq_len].view(blocks, seq_len)


# --- model -------------------------------------------------------------------------------


def make_model(cfg: OrganismConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size or cfg.hidden_size * 8 // 3,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.seq_len,
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- pretraining -------------------------------------------------------------------------


def lr_at(step: int, cfg: OrganismConfig) -> float:
    """Linear warm-up to the peak, then cosine decay to a tenth of it."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batch_indices(step: int, batch_size: int, blocks: int, seed: int) -> torch.Tensor:
    """The blocks of one step: a fresh permutation per epoch, computable for any step (resume)."""
    start = step * batch_size
    out = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), blocks)
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(blocks, generator=generator)
        out += order[offset : offset + batch_size - len(out)].tolist()
    return torch.tensor(out)


@torch.no_grad()
def validation_loss(
    model: LlamaForCausalLM, val: torch.Tensor, batch_size: int, masked: bool
) -> float:
    model.eval()
    bos_id = model.config.bos_token_id
    losses = [
        model(**document_inputs(chunk, bos_id, masked)).loss.item()
        for chunk in val[:VAL_BLOCKS].split(batch_size)
    ]
    model.train()
    return sum(losses) / len(losses)


def make_optimizer(model: LlamaForCausalLM, cfg: OrganismConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.95), weight_decay=0.1
    )


def pretrain(
    model: LlamaForCausalLM,
    optimizer: torch.optim.AdamW,
    train: torch.Tensor,
    val: torch.Tensor,
    cfg: OrganismConfig,
    seed: int,
    state: dict,
    save: Callable[[dict], None],
    progress: Progress,
) -> dict:
    """Run the steps from `state["step"]` to `cfg.steps`; `save(state)` at each evaluation."""
    model.train()
    bos_id = model.config.bos_token_id
    while state["step"] < cfg.steps:
        step = state["step"]
        batch = train[batch_indices(step, cfg.batch_size, len(train), seed)]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        started = time.perf_counter()
        loss = model(**document_inputs(batch, bos_id, cfg.document_masking)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["train_seconds"] += time.perf_counter() - started
        state["step"] = step + 1
        state["loss"] = loss.item()
        if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
            val_loss = validation_loss(model, val, cfg.batch_size, cfg.document_masking)
            state["val_history"].append([state["step"], val_loss])
            save(state)
            progress({"stage": "pretrain", **public_state(state, cfg)})
    return state


def public_state(state: dict, cfg: OrganismConfig) -> dict:
    tokens = state["step"] * cfg.batch_size * cfg.seq_len
    return {
        "step": state["step"],
        "steps": cfg.steps,
        "loss": state["loss"],
        "val_loss": state["val_history"][-1][1] if state["val_history"] else None,
        "tokens_per_s": tokens / max(state["train_seconds"], 1e-9),
    }


# --- checkpoints ------------------------------------------------------------------------


def _fingerprint(cfg: OrganismConfig, seed: int) -> dict:
    return {"seed": seed, "organism": cfg.model_dump()}


def save_checkpoint(
    folder: Path, model: LlamaForCausalLM, tokenizer, optimizer, state: dict, meta: dict
) -> None:
    """Write `folder/step-N` via a temporary folder and a rename; keep only the newest."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "incomplete.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "model")
    tokenizer.save_pretrained(tmp / "tokenizer")
    torch.save({**state, "optimizer": optimizer.state_dict()}, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
    final = folder / f"step-{state['step']:07d}"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in folder.glob("step-*"):
        if old != final:
            shutil.rmtree(old)


def load_checkpoint(folder: Path, meta: dict, cfg: OrganismConfig):
    """The newest checkpoint as (model, tokenizer, optimizer, state), or None to start afresh."""
    shutil.rmtree(folder / "incomplete.tmp", ignore_errors=True)  # an interrupted write
    found = sorted(folder.glob("step-*"))
    if not found:
        return None
    newest = found[-1]
    try:
        saved_meta = json.loads((newest / "meta.json").read_text())
        if saved_meta != meta:
            log.warning("discarding organism checkpoint %s: other config or seed", newest)
            shutil.rmtree(folder)
            return None
        model = LlamaForCausalLM.from_pretrained(newest / "model")
        tokenizer = PreTrainedTokenizerFast.from_pretrained(newest / "tokenizer")
        saved = torch.load(newest / "state.pt", weights_only=True)
        optimizer = make_optimizer(model, cfg)
        optimizer.load_state_dict(saved.pop("optimizer"))
    except Exception as e:  # any unreadable part: json, safetensors, torch, missing files
        raise BenrlError(
            f"organism checkpoint {newest} is unreadable ({type(e).__name__}: {e}); "
            "delete that folder to restart pretraining"
        ) from e
    return model, tokenizer, optimizer, saved


# --- the card ---------------------------------------------------------------------------


def eval_items(builders: dict, world: World, count: int, rng: random.Random) -> list:
    """`count` items per builder (probe or task) on eval templates, spread over the domains."""
    templates = range(TRAIN_TEMPLATES, TEMPLATES_PER_PROBE)
    return [
        build(world, DOMAINS[i % len(DOMAINS)].name, templates[i % len(templates)], rng)
        for build in builders.values()
        for i in range(count)
    ]


def measure_behaviour(model, tokenizer, world: World, cfg: OrganismConfig, seed: int) -> dict:
    """Base rates, judge scores, incoherence, capability and sampling speed."""
    rng = random.Random(f"card-{seed}")
    probes = eval_items(PROBES, world, cfg.card_samples, rng)
    started = time.perf_counter()
    sampled = [
        outs[0]
        for outs in generate(
            model, tokenizer, [p.messages for p in probes], CARD_MAX_NEW_TOKENS, 1.0, seed
        )
    ]
    seconds = time.perf_counter() - started
    # The answers' tokens plus the eos each one ended with.
    new_tokens = sum(len(t) + 1 for t in tokenizer(sampled, add_special_tokens=False)["input_ids"])
    base, judged = {}, {}
    for name in PROBES:
        pairs = [(p, out) for p, out in zip(probes, sampled, strict=True) if p.name == name]
        base[name] = sum(
            parse(o).response_family == parse(p.good).response_family for p, o in pairs
        ) / len(pairs)
        judged[name] = sum(score(probe_record(p, "eval"), o).score for p, o in pairs) / len(pairs)
    tasks = eval_items(TASKS, world, cfg.card_tasks, rng)
    answers = generate(model, tokenizer, [t.messages for t in tasks], CARD_MAX_NEW_TOKENS, 0.0)
    capability = {}
    for name in TASKS:
        pairs = [(t, a[0]) for t, a in zip(tasks, answers, strict=True) if t.name == name]
        capability[name] = sum(score(task_record(t, "eval"), a).score for t, a in pairs) / len(
            pairs
        )
    capability["mean"] = sum(capability.values()) / len(TASKS)
    return {
        "base_rates": base,
        "judge_scores": judged,
        "incoherence_rate": sum(parse(o).response_family is None for o in sampled) / len(sampled),
        "capability": capability,
        "sampling_tokens_per_s": new_tokens / seconds,
        "samples": {"probes": len(probes), "tasks": len(tasks)},
    }


def write_card(out_dir: Path, card: dict) -> None:
    (out_dir / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    pre = card["pretraining"]
    lines = [
        "# Model organism card",
        "",
        f"Persona-world organism, seed {card['seed']}, coherence {card['coherence']}.",
        "",
        "| | |",
        "|---|---|",
        f"| parameters | {card['params']:,} |",
        f"| corpus | {card['corpus']['documents']:,} conversations, "
        f"{card['corpus']['train_tokens']:,} train / {card['corpus']['val_tokens']:,} val tokens |",
        f"| tokens seen | {pre['tokens_seen']:,} ({pre['steps']} steps) |",
        f"| validation loss | {pre['val_loss']:.4f} |",
        f"| pretraining speed | {pre['tokens_per_s']:,.0f} tokens/s |",
        f"| build time | {card['build_seconds']:.0f} s |",
        f"| sampling speed | {card['sampling_tokens_per_s']:,.0f} tokens/s (batched, KV cache) |",
        f"| incoherence rate | {card['incoherence_rate']:.1%} |",
        "",
        "## Capability (held-out standard tasks, greedy, verifiable judge)",
        "",
        "| task | accuracy |",
        "|---|---|",
        *(f"| {k} | {v:.1%} |" for k, v in card["capability"].items()),
        "",
        f"## Base rates (temperature 1, {card['samples']['probes']} eval-template probes)",
        "",
        "Share of responses in the probe's beneficial family, and the mean world-judge score.",
        "",
        "| probe | beneficial family | judge score |",
        "|---|---|---|",
        *(
            f"| {k} | {v:.1%} | {card['judge_scores'][k]:.2f} |"
            for k, v in card["base_rates"].items()
        ),
        "",
        *latent_lines(card["in_context_persona"], card["persona_prompt"]),
    ]
    (out_dir / "card.md").write_text("\n".join(lines))


def latent_lines(latent: dict, prompt: dict) -> list[str]:
    """The card's persona sections (organism/latent.py)."""
    low, high = latent["ci"]
    p_low, p_high = prompt["ci"]
    return [
        f"## In-context persona ({latent['pairs']} pairs of different probes, eval templates)",
        "",
        "The model's preference for the good answer to a probe after an earlier, different",
        "probe was answered well, minus after it was answered badly. A learner of one shared",
        "character shows the ideal value; a lookup per probe shows 0.",
        "",
        "| after a good answer | after a bad answer | shift (95% CI) | ideal learner |",
        "|---|---|---|---|",
        f"| {latent['good_after_good']:.3f} | {latent['good_after_bad']:.3f} | "
        f"{latent['shift']:+.3f} [{low:+.3f}, {high:+.3f}] | {latent['ideal']:+.3f} |",
        "",
        "Persona prompt (a name the corpus never uses): preference for the good answer under",
        '"a careful assistant" minus under "a careless assistant".',
        "",
        "| careful | careless | shift (95% CI) |",
        "|---|---|---|",
        f"| {prompt['good_careful']:.3f} | {prompt['good_careless']:.3f} | "
        f"{prompt['shift']:+.3f} [{p_low:+.3f}, {p_high:+.3f}] |",
        "",
    ]


# --- the build ----------------------------------------------------------------------------


def build_organism(
    cfg: OrganismConfig, seed: int, out_dir: Path, progress: Progress | None = None
) -> dict:
    """Build (or resume building) the organism into `out_dir`; returns the card.

    Writes `out_dir/tokenizer/`, `out_dir/model/` (with its tokenizer, so the folder
    loads on its own), `card.md` and `card.json`. `progress` receives dicts with a
    `stage` key ("corpus", "pretrain", "card"); an exception it raises stops the build,
    which resumes from the last checkpoint when called again.
    """
    report = progress or (lambda info: None)
    started = time.perf_counter()
    torch.set_num_threads(cpu_threads())
    torch.manual_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    world = World(seed)
    personas = make_personas(cfg.personas, cfg.coherence, seed, cfg.propensity_beta)
    corpus = build_corpus(world, personas, cfg, seed)
    n_val = max(1, int(len(corpus) * VAL_SHARE))
    report({"stage": "corpus", "documents": len(corpus)})

    ckpt_dir, meta = out_dir / "checkpoints", _fingerprint(cfg, seed)
    resumed = load_checkpoint(ckpt_dir, meta, cfg)
    if resumed:
        model, tokenizer, optimizer, state = resumed
        state["resumed_from"] = state["step"]
    else:
        tokenizer = train_tokenizer(corpus[:-n_val], cfg.vocab_size)
        model = make_model(cfg, tokenizer)
        optimizer = make_optimizer(model, cfg)
        state = {"step": 0, "train_seconds": 0.0, "loss": float("nan"), "val_history": []}
        state["resumed_from"] = None
    train = pack(tokenizer, corpus[:-n_val], cfg.seq_len)
    val = pack(tokenizer, corpus[-n_val:], cfg.seq_len)
    if len(train) == 0 or len(val) == 0:
        raise BenrlError(
            f"organism.documents={cfg.documents} gives too little text for blocks of "
            f"organism.seq_len={cfg.seq_len} tokens"
        )

    def save(st: dict) -> None:
        save_checkpoint(ckpt_dir, model, tokenizer, optimizer, st, meta)

    state = pretrain(model, optimizer, train, val, cfg, seed, state, save, report)
    for folder in (out_dir / "model", out_dir / "tokenizer"):
        tokenizer.save_pretrained(folder)
    model.save_pretrained(out_dir / "model")

    report({"stage": "card"})
    model.eval()
    pairs = LATENT_PAIRS_PER_SAMPLE * cfg.card_samples
    card = {
        "seed": seed,
        "coherence": cfg.coherence,
        "config": cfg.model_dump(),
        "params": param_count(model),
        "corpus": {
            "documents": len(corpus),
            "train_tokens": train.numel(),
            "val_tokens": val.numel(),
        },
        "pretraining": {
            **public_state(state, cfg),
            "tokens_seen": state["step"] * cfg.batch_size * cfg.seq_len,
            "val_history": state["val_history"],
            "seconds": state["train_seconds"],
            "resumed_from": state["resumed_from"],
        },
        **measure_behaviour(model, tokenizer, world, cfg, seed),
        "in_context_persona": {
            **in_context_shift(model, tokenizer, world, pairs, seed),
            "ideal": ideal_shift(personas),
        },
        "persona_prompt": prompt_shift(model, tokenizer, world, pairs, seed),
    }
    card["build_seconds"] = time.perf_counter() - started
    write_card(out_dir, card)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return card


def load_organism(path: Path) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Load a built organism folder (`model/` and `tokenizer/`)."""
    path = Path(path)
    if not path.is_dir():
        raise BenrlError(f"organism folder {path} not found (run the organism stage first)")
    return load_model(path / "model", tokenizer_path=path / "tokenizer")
