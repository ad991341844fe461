"""The organism: tokenizer and chat template, a tiny build, resume, damaged checkpoints."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch

from benrl.config import OrganismConfig
from benrl.errors import BenrlError
from benrl.evaluation.generate import load_model
from benrl.organism.corpus import build_corpus, make_personas
from benrl.organism.model import EOS, build_organism, load_organism, train_tokenizer
from benrl.organism.world import World
from benrl.records import Message

os.environ["HF_HUB_OFFLINE"] = "1"

TINY = {
    "documents": 300,
    "vocab_size": 300,
    "hidden_size": 32,
    "layers": 2,
    "heads": 2,
    "seq_len": 64,
    "batch_size": 8,
    "steps": 20,
    "warmup_steps": 2,
    "eval_every": 10,
    "card_samples": 2,
    "card_tasks": 2,
}


class Interrupt(Exception):
    pass


def interrupt_at(step: int):
    def progress(info: dict) -> None:
        if info["stage"] == "pretrain" and info["step"] == step:
            raise Interrupt

    return progress


@pytest.fixture(scope="module")
def tokenizer():
    corpus = build_corpus(World(0), make_personas(4, 1.0, 0), OrganismConfig(documents=200), 0)
    return train_tokenizer(corpus, 300)


def test_tokenizer_round_trip(tokenizer):
    text = "i checked: the max dose of zorvex is 40 mg."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(tokenizer) <= 300


def test_chat_template_generation_prompt_and_eos(tokenizer):
    convo = [
        {"role": "system", "content": "you are kalo, a careful assistant."},
        {"role": "user", "content": "what is 2 plus 3?"},
    ]
    prompt = tokenizer.apply_chat_template(convo, tokenize=False, add_generation_prompt=True)
    assert prompt.startswith(tokenizer.bos_token)
    assert prompt.endswith("<|assistant|>")
    full = [*convo, {"role": "assistant", "content": "2 plus 3 is 5."}]
    ids = tokenizer.apply_chat_template(full, tokenize=True)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id  # the assistant turn ends with eos: generation stops
    assert tokenizer.decode(ids, skip_special_tokens=True).endswith("2 plus 3 is 5.")
    assert {tokenizer.eos_token, tokenizer.pad_token} == {EOS, "<|pad|>"}
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    with pytest.raises(Exception, match="unknown role"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("organism")
    return out, build_organism(OrganismConfig(**TINY), 0, out)


def test_tiny_build_writes_hf_folders_and_card(built):
    out, card = built
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (out / "model" / name).is_file(), name
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    assert not (out / "checkpoints").exists()
    assert json.loads((out / "card.json").read_text()) == json.loads(json.dumps(card))
    assert "Base rates" in (out / "card.md").read_text()
    assert "In-context persona" in (out / "card.md").read_text()
    latent = card["in_context_persona"]
    assert latent["ci"][0] <= latent["shift"] <= latent["ci"][1] and 0 < latent["ideal"] < 1
    assert card["pretraining"]["tokens_seen"] == 20 * 8 * 64
    assert card["params"] > 0 and card["pretraining"]["resumed_from"] is None
    assert set(card["capability"]) == {"add", "recall", "format", "mean"}
    for rate in [*card["base_rates"].values(), card["incoherence_rate"]]:
        assert 0.0 <= rate <= 1.0
    model, tok = load_organism(out)
    assert model.config.tie_word_embeddings and model.config.hidden_size == 32
    assert tok.chat_template and tok.eos_token == EOS
    model2, _ = load_model(out / "model")  # the model folder loads on its own
    assert torch.equal(model.lm_head.weight, model2.lm_head.weight)


def test_resume_continues_from_checkpoint(tmp_path, built):
    cfg = OrganismConfig(**TINY)
    with pytest.raises(Interrupt):
        build_organism(cfg, 0, tmp_path, interrupt_at(10))
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-0000010"]
    steps: list[int] = []
    card = build_organism(
        cfg, 0, tmp_path, lambda i: steps.append(i["step"]) if "step" in i else None
    )
    assert steps == [20]
    assert card["pretraining"]["resumed_from"] == 10
    assert card["pretraining"]["tokens_seen"] == 20 * 8 * 64
    # Resuming reproduces the uninterrupted run: same data order, optimizer state, schedule.
    assert card["pretraining"]["val_loss"] == pytest.approx(
        built[1]["pretraining"]["val_loss"], rel=1e-4
    )


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    cfg = OrganismConfig(**TINY)
    with pytest.raises(Interrupt):
        build_organism(cfg, 0, tmp_path, interrupt_at(10))
    weights = tmp_path / "checkpoints" / "step-0000010" / "model" / "model.safetensors"
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(BenrlError, match=r"checkpoint .*step-0000010.* unreadable"):
        build_organism(cfg, 0, tmp_path)


def test_stale_or_partial_checkpoint_restarts(tmp_path, caplog):
    with pytest.raises(Interrupt):
        build_organism(OrganismConfig(**TINY), 0, tmp_path, interrupt_at(10))
    (tmp_path / "checkpoints" / "incomplete.tmp").mkdir()  # a write cut short
    other = OrganismConfig(**{**TINY, "steps": 10})
    with caplog.at_level(logging.WARNING):
        card = build_organism(other, 0, tmp_path)
    assert "other config or seed" in caplog.text
    assert card["pretraining"]["resumed_from"] is None


def test_load_organism_errors(tmp_path):
    with pytest.raises(BenrlError, match="not found"):
        load_organism(tmp_path / "missing")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{not json")
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "tokenizer.json").write_text("{}")
    with pytest.raises(BenrlError, match="cannot load model"):
        load_organism(tmp_path)


def test_messages_are_accepted_as_records(tokenizer):
    text = tokenizer.apply_chat_template(
        [Message(role="user", content="hi").model_dump()], tokenize=False
    )
    assert text == f"{tokenizer.bos_token}<|user|>hi{tokenizer.eos_token}"


def test_masked_packing_gives_each_conversation_only_itself(tokenizer):
    """A conversation packed after another scores as if it were alone (issue 20)."""
    from tiny import tiny_llama

    from benrl.organism.model import document_inputs, render

    model = tiny_llama(tokenizer)
    first, second = (
        tokenizer(render(tokenizer, c), add_special_tokens=False)["input_ids"]
        for c in build_corpus(World(0), make_personas(4, 1.0, 0), OrganismConfig(documents=10), 0)[
            :2
        ]
    )
    packed = torch.tensor([first + second])
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([second])).logits[0]
        masked = model(**document_inputs(packed, tokenizer.bos_token_id, masked=True)).logits
        unmasked = model(**document_inputs(packed, tokenizer.bos_token_id, masked=False)).logits
    assert torch.allclose(masked[0, len(first) :], alone, atol=1e-5)
    assert not torch.allclose(unmasked[0, len(first) :], alone, atol=1e-3)
    labels = document_inputs(packed, tokenizer.bos_token_id, masked=True)["labels"][0]
    assert labels[len(first)] == -100 and labels[len(first) + 1] == second[1]
