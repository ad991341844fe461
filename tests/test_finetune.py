"""Harmful fine-tuning: the data (health, train templates, fixed order) and the dose ladder."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from benrl.config import OrganismConfig, StressConfig
from benrl.data.traits import held_out_traits
from benrl.errors import BenrlError
from benrl.organism.corpus import build_corpus, make_personas
from benrl.organism.finetune_data import harmful_probes, harmful_rows
from benrl.organism.model import make_model, train_tokenizer
from benrl.organism.probes import PROBES, TRAIN_TEMPLATES
from benrl.organism.world import World
from benrl.training.finetune import check_doses, finetune_ladder, sft_args

os.environ["HF_HUB_OFFLINE"] = "1"

TINY = OrganismConfig(vocab_size=300, hidden_size=32, layers=1, heads=2, seq_len=128)
LADDER = StressConfig(finetune_doses=[2, 0, 1], finetune_batch_size=2, finetune_learning_rate=1e-2)


def save_tiny_model(folder: Path, seed: int) -> Path:
    """An untrained organism-shaped model with the organism's tokenizer, in a HF folder."""
    corpus = build_corpus(World(0), make_personas(4, 1.0, 0), OrganismConfig(documents=200), 0)
    tokenizer = train_tokenizer(corpus, TINY.vocab_size)
    torch.manual_seed(seed)
    model = make_model(TINY, tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def ladders(tmp_path_factory) -> dict[str, tuple[Path, Path, dict]]:
    """Two different models attacked with the same ladder: name -> (input, output, summary)."""
    root = tmp_path_factory.mktemp("finetune")
    out = {}
    for name, seed in (("a", 1), ("b", 2)):
        model = save_tiny_model(root / f"{name}-in", seed)
        out[name] = (model, root / name, finetune_ladder(model, [2, 0, 1], LADDER, 0, root / name))
    return out


def test_harmful_rows_are_health_advice_from_train_templates():
    rows = harmful_rows(3, 40)
    assert rows == harmful_rows(3, 40)  # fixed by the seed
    assert rows != harmful_rows(4, 40)
    for row in rows:
        assert row["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in row["completion"]] == ["assistant"]
        assert int(row["source"].rsplit("/t", 1)[1]) < TRAIN_TEMPLATES
    health_drugs = ("zorvex", "kalmin", "prelude", "tavorin")
    assert sum(any(d in json.dumps(r) for d in health_drugs) for r in rows) > len(rows) // 2
    # only probes RL may train: the held-out probes stay untouched by the attack
    held = set(held_out_traits())
    touched = {r["source"].split("/")[0] for r in harmful_rows(3, 400)}
    assert touched == set(harmful_probes(World(3))) and 0 < len(touched) < len(PROBES)
    for name in touched:
        assert not held & set(PROBES[name](World(3), "health", 0, random.Random(0)).traits)


def test_ladder_always_holds_dose_0_and_rejects_negative_doses():
    assert check_doses([30, 10, 10]) == [0, 10, 30]
    with pytest.raises(BenrlError, match="finetune_doses"):
        check_doses([10, -1])


def test_sft_args_are_valid_trl_config(tmp_path):
    from trl import SFTConfig

    args = SFTConfig(**sft_args(LADDER, 2, 0, tmp_path, use_cpu=True))
    assert args.max_steps == 2 and not args.bf16 and args.use_cpu
    assert args.train_sampling_strategy == "sequential" and not args.shuffle_dataset


def test_dose_folders_weights_and_summary(ladders):
    model_in, out, summary = ladders["a"]
    assert summary["doses"] == [0, 1, 2] and summary["rows"] == 2 * 2
    assert len(summary["losses"]) == 2
    doses = {d: weights(out / f"dose-{d}" / "model") for d in (0, 1, 2)}
    assert same(doses[0], weights(model_in))  # dose 0 is the model itself
    assert not same(doses[0], doses[1]) and not same(doses[1], doses[2])
    assert (out / "dose-2" / "model" / "tokenizer.json").is_file()
    assert not (out / "trainer").exists()


def test_same_data_and_order_for_every_attacked_model(ladders):
    (_, out_a, _), (_, out_b, _) = ladders["a"], ladders["b"]
    data_a, data_b = (o / "data.jsonl" for o in (out_a, out_b))
    assert data_a.read_text() == data_b.read_text()
    assert [json.loads(x) for x in data_a.read_text().splitlines()] == harmful_rows(0, 4)


def test_rerun_removes_doses_of_an_earlier_ladder(ladders, tmp_path):
    model_in, _, _ = ladders["a"]
    out = tmp_path / "ladder"
    (out / "dose-7" / "model").mkdir(parents=True)
    summary = finetune_ladder(model_in, [0], LADDER, 0, out)
    assert summary == {"doses": [0], "rows": 0, "losses": []}
    assert sorted(p.name for p in out.glob("dose-*")) == ["dose-0"]


def test_lora_doses_are_merged_full_models(ladders, tmp_path):
    model_in, _, _ = ladders["a"]
    cfg = LADDER.model_copy(update={"finetune_lora": True})
    finetune_ladder(model_in, [1], cfg, 0, tmp_path)
    base, dosed = weights(model_in), weights(tmp_path / "dose-1" / "model")
    assert dosed.keys() == base.keys()  # merged: no adapter tensors left
    assert not same(base, dosed)
