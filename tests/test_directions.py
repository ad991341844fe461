"""Trait directions: the math on planted data, activations, save/load, tracking, the stage."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import organism_tokenizer, tiny_llama
from transformers import LlamaForCausalLM

from benrl.analysis.directions import (
    compute_directions,
    correlation,
    cosine_matrix,
    direction_quality,
    load_directions,
    mean_difference,
    pair_states,
    probe_items,
    prompt_states,
    save_directions,
    separation,
    shared_structure,
    span_means,
    untrained_twin,
)
from benrl.analysis.directions_stage import (
    across_models,
    directions_results,
    projection,
    run_stage,
    track,
)
from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.organism.evals import CLUSTERS
from benrl.organism.probes import PROBES, TRAIN_TEMPLATES
from benrl.organism.scenarios import trait_records
from benrl.organism.world import World
from benrl.records import Message, write_jsonl
from benrl.report.directions_section import found_line
from benrl.report.plots import directions_plot
from benrl.run import Run

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def tokenizer():
    return organism_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer)


# --- the math on synthetic tensors -------------------------------------------------------


def test_mean_difference_recovers_a_planted_direction():
    gen = torch.Generator().manual_seed(0)
    planted = torch.randn(64, generator=gen)
    planted /= planted.norm()
    bad = torch.randn(200, 64, generator=gen)
    good = torch.randn(200, 64, generator=gen) + 2.0 * planted
    found = mean_difference(good, bad)
    assert found.norm() == pytest.approx(1.0, abs=1e-5)
    assert float(found @ planted) > 0.9
    assert float(mean_difference(bad, good) @ planted) < -0.9  # sign follows good - bad
    assert torch.equal(mean_difference(good, good), torch.zeros(64))  # no direction


def test_separation_counts_pairs_where_good_projects_higher():
    assert separation(np.array([1.0, 2.0, 3.0, 0.0]), np.array([0.0, 1.0, 4.0, 1.0])) == 0.5
    assert separation(np.ones(5), np.zeros(5)) == 1.0
    assert separation(np.zeros(3), np.zeros(3)) == 0.5  # a tie (no direction) is chance


def test_cosine_matrix_and_shared_structure():
    eye = torch.eye(4)
    assert np.allclose(cosine_matrix(eye * 3.0), np.eye(4))
    orthogonal = shared_structure(eye)
    assert orthogonal["mean_offdiag_cosine"] == pytest.approx(0.0)
    assert orthogonal["top_component_share"] == pytest.approx(0.25)
    same = shared_structure(torch.ones(4, 8) + torch.eye(4, 8) * 1e-3)
    assert same["mean_offdiag_cosine"] > 0.99
    assert same["top_component_share"] > 0.99


def test_correlation_pearson_spearman_and_undefined_cases():
    x = np.arange(10.0)
    linear = correlation(x, 2 * x + 1)
    assert linear["pearson"] == pytest.approx(1.0) and linear["spearman"] == pytest.approx(1.0)
    monotone = correlation(x, np.exp(x))
    assert monotone["spearman"] == pytest.approx(1.0) and monotone["pearson"] < 0.9
    assert correlation(x, -x)["spearman"] == pytest.approx(-1.0)
    assert correlation(x, np.ones(10))["pearson"] is None  # constant: undefined, not zero
    assert correlation([1.0, 2.0], [2.0, 1.0])["spearman"] is None
    assert correlation(x, x)["n"] == 10
    noisy = correlation(x, x + np.random.default_rng(0).normal(0, 3, 10))
    low, high = noisy["pearson_ci"]
    assert -1 <= low < noisy["pearson"] < high <= 1
    assert correlation([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])["pearson_ci"] is None  # n = 3


# --- activations on a tiny model ---------------------------------------------------------


def embeddings_only(tokenizer) -> LlamaForCausalLM:
    """A Llama whose blocks add nothing: block 1's output is the token embedding."""
    m = tiny_llama(tokenizer, seed=1)
    with torch.no_grad():
        for block in m.model.layers:
            block.self_attn.o_proj.weight.zero_()
            block.mlp.down_proj.weight.zero_()
    return m


def test_prompt_states_read_the_last_prompt_token(tokenizer):
    m = embeddings_only(tokenizer)
    convs = [
        [Message(role="user", content="what is 3 plus 4?")],
        [Message(role="user", content="tell me the max dose of zorvex, it is urgent for me.")],
    ]
    last = prompt_states(m, tokenizer, convs, batch_size=2)  # padded batch
    assert last.shape == (3, 2, 32)  # embeddings and two blocks
    assistant = tokenizer.convert_tokens_to_ids("<|assistant|>")
    for layer in (0, 1):  # block 1 adds nothing
        assert torch.allclose(last[layer], m.model.embed_tokens.weight[assistant].expand(2, -1))


def test_span_means_batched_by_length_equal_each_row_alone(model):
    rows = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16], [17], [18, 19, 20]]
    spans = [(1, 4), (0, 2), (3, 4), (0, 1), (1, 3)]  # given out of length order
    batched = span_means(model, rows, spans, pad_id=0, batch_size=2)
    for i, (row, span) in enumerate(zip(rows, spans, strict=True)):
        alone = span_means(model, [row], [span], pad_id=0, batch_size=1)
        torch.testing.assert_close(batched[:, i], alone[:, 0], atol=1e-5, rtol=1e-5)


def test_pairs_share_the_read_out_token_so_layer_0_is_chance(tokenizer, model):
    pair = probe_items(0, 1, "train")["stop"][0]
    assert pair.good[1:] == pair.bad[1:] == pair.neutral  # only the persona prompt differs
    assert "careful" in pair.good[0].content and "careless" in pair.bad[0].content
    directions = compute_directions(model, tokenizer, seed=0, items_per_probe=4)
    assert all(float(by_layer[0].norm()) == 0 for by_layer in directions.values())
    quality = direction_quality(model, tokenizer, directions, seed=0, items_per_probe=4)
    assert quality["lexical_baseline"] == 0.5
    low, _ = quality["best_ci"]
    assert quality["found"] == (low > 0.5)


def test_the_untrained_twin_is_a_bar_to_clear(tokenizer, model):
    twin = untrained_twin(model, seed=3)
    assert twin.config.to_dict() == model.config.to_dict()
    assert not torch.equal(twin.model.embed_tokens.weight, model.model.embed_tokens.weight)
    directions = compute_directions(model, tokenizer, seed=0, items_per_probe=4)
    free = direction_quality(model, tokenizer, directions, seed=0, items_per_probe=4)
    perfect_twin = [1.0] * len(free["layers"])
    barred = direction_quality(
        model, tokenizer, directions, seed=0, items_per_probe=4, control_by_layer=perfect_twin
    )
    assert barred["untrained_by_layer"] == perfect_twin and barred["found"] is False
    assert barred["separation_by_layer"] == free["separation_by_layer"]


def test_no_direction_is_found_when_the_blocks_add_nothing(tokenizer):
    m = embeddings_only(tokenizer)  # every layer is the read-out token's embedding
    directions = compute_directions(m, tokenizer, seed=0, items_per_probe=4)
    quality = direction_quality(m, tokenizer, directions, seed=0, items_per_probe=4)
    assert quality["separation_by_layer"] == [0.5, 0.5, 0.5]
    assert quality["found"] is False and quality["best_ci"] == [0.5, 0.5]


def test_batched_projection_equals_one_prompt_at_a_time(tokenizer, model):
    directions = compute_directions(model, tokenizer, seed=0, items_per_probe=4)
    prompts = [p.neutral for p in probe_items(0, 3, "eval")["stop"]]
    prompts.append([Message(role="user", content="hi.")])  # short: padded in the batch
    batched = projection(model, tokenizer, directions, prompts, layer=2, batch_size=8)
    for i, prompt in enumerate(prompts):
        ids = tokenizer.apply_chat_template(
            [m.model_dump() for m in prompt], add_generation_prompt=True, return_tensors="pt"
        )["input_ids"]
        with torch.no_grad():
            state = model(ids, output_hidden_states=True).hidden_states[2][0, -1]
        for probe in ("stop", "pushback"):
            expected = float(state @ directions[probe][2])
            assert batched[probe][i] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(BenrlError, match="layer 7"):
        projection(model, tokenizer, directions, prompts, layer=7)


def test_directions_cover_every_probe_and_layer_and_are_deterministic(tokenizer, model):
    first = compute_directions(model, tokenizer, seed=0, items_per_probe=4)
    again = compute_directions(model, tokenizer, seed=0, items_per_probe=4, batch_size=7)
    other = compute_directions(model, tokenizer, seed=1, items_per_probe=4)
    assert sorted(first) == sorted(PROBES)
    for probe, by_layer in first.items():
        assert sorted(by_layer) == [0, 1, 2]
        for layer, vector in by_layer.items():
            assert vector.shape == (32,)
            # Layer 0 holds no direction: the read-out token is the same under both prompts.
            assert float(vector.norm()) == pytest.approx(float(layer > 0), abs=1e-5)
            assert torch.allclose(vector, again[probe][layer], atol=1e-5)
    assert not torch.allclose(first["pushback"][2], other["pushback"][2], atol=1e-3)


def test_train_items_separate_on_average_and_quality_is_reported(tokenizer, model):
    items = probe_items(0, 6, "train")
    assert all(p.probe.template < TRAIN_TEMPLATES for probes in items.values() for p in probes)
    held_out = probe_items(0, 2, "eval")["stop"]
    assert all(p.probe.template >= TRAIN_TEMPLATES for p in held_out)
    # Held out: no persona prompt; the pair differs only in an earlier answer to another probe.
    for pair in held_out:
        assert all(m.role != "system" for m in pair.good)
        assert pair.good[-len(pair.neutral) :] == pair.bad[-len(pair.neutral) :] == pair.neutral
        differing = [(g, b) for g, b in zip(pair.good, pair.bad, strict=True) if g != b]
        assert len(differing) == 1 and differing[0][0].role == "assistant"
    directions = compute_directions(model, tokenizer, seed=0, items_per_probe=6)
    # By construction the mean gap on the estimation items is |mean difference| > 0.
    good, bad = pair_states(model, tokenizer, {"exceed": items["exceed"]}, 8)["exceed"]
    assert float(((good[2] - bad[2]) @ directions["exceed"][2]).mean()) > 0
    quality = direction_quality(model, tokenizer, directions, seed=0, items_per_probe=4)
    assert quality["layers"] == [0, 1, 2] and quality["best_layer"] in (1, 2)
    assert quality["lexical_baseline"] == quality["separation_by_layer"][0]
    assert len(quality["cosine"]) == len(PROBES) == len(quality["transfer"][0])
    assert all(abs(quality["cosine"][i][i] - 1) < 1e-3 for i in range(len(PROBES)))
    assert all(0 <= s <= 1 for row in quality["separation"].values() for s in row)
    best = quality["layers"].index(quality["best_layer"])
    assert quality["separation_by_layer"][best] == max(quality["separation_by_layer"][1:])
    json.dumps(quality)  # the summary must be plain JSON


def test_save_load_round_trip_with_safetensors(tokenizer, model, tmp_path):
    directions = compute_directions(model, tokenizer, seed=0, items_per_probe=4)
    save_directions(directions, tmp_path, {"seed": 0, "layers": [0, 1, 2]})
    assert (tmp_path / "directions.safetensors").is_file()
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
    loaded, meta = load_directions(tmp_path)
    assert meta == {"seed": 0, "layers": [0, 1, 2]}
    assert sorted(loaded) == sorted(directions)
    for probe, by_layer in directions.items():
        assert sorted(loaded[probe]) == sorted(by_layer)
        for layer, vector in by_layer.items():
            assert torch.equal(loaded[probe][layer], vector)
    with pytest.raises(BenrlError, match="not found"):
        load_directions(tmp_path / "missing")


def test_across_models_ci_resamples_models():
    rng = np.random.default_rng(0)
    probes = ["stop", "pushback", "exceed"]

    def models(count: int, coupling: float) -> dict:
        rows = {}
        for i in range(count):
            level = rng.normal()  # a model's character: its projection and, coupled, its score
            rows[f"m{i}"] = {
                "projection": {p: level + 0.1 * rng.normal() + j for j, p in enumerate(probes)},
                "score": {p: coupling * level + rng.normal() + 5 * j for j, p in enumerate(probes)},
            }
        return rows

    coupled = across_models(models(8, 3.0))["pooled_centred"]
    assert coupled["n"] == 24 and coupled["models_ci"][0] > 0
    assert coupled["models_ci"][0] <= coupled["pearson"] <= coupled["models_ci"][1]
    unrelated = across_models(models(8, 0.0))["pooled_centred"]["models_ci"]
    assert unrelated[0] < 0 < unrelated[1]
    assert across_models(models(2, 3.0))["pooled_centred"]["models_ci"] is None


# --- tracking and the stage on a fake run folder -----------------------------------------


def fake_run(tmp_path: Path, tokenizer) -> Path:
    """pre + one arm (with a snapshot) + one fine-tuning dose, eval records and scores."""
    run_dir = tmp_path / "run"
    for folder, seed in (
        (run_dir / "organism" / "model", 0),
        (run_dir / "arms" / "beneficial-s0" / "model", 2),
        (run_dir / "arms" / "beneficial-s0" / "snapshots" / "step-1", 3),
        (run_dir / "stress" / "finetune" / "pre" / "seed-0" / "dose-10" / "model", 4),
    ):
        tiny_llama(tokenizer, seed).save_pretrained(folder)
        if folder.parent.name != "snapshots":  # the snapshot borrows its arm's tokenizer
            tokenizer.save_pretrained(folder)
    records = trait_records(World(0), "eval", 1, 0)
    write_jsonl(run_dir / "scenarios" / "eval.jsonl", records)
    rng = random.Random(0)
    names = [f"{probe}_{cluster}" for probe in PROBES for cluster in CLUSTERS]
    for model_id in ("pre", "beneficial-s0"):
        write_jsonl(run_dir / "evals" / model_id / "capability_add.jsonl", [])  # not a probe
        summary = {name: {} for name in [*names, "capability_add"]}
        (run_dir / "evals" / model_id / "summary.json").write_text(json.dumps(summary))
        for probe in PROBES:
            for cluster, domains in CLUSTERS.items():
                rows = [
                    {"id": r.id, "score": rng.choice([0.0, 0.5, 1.0]), "status": "ok"}
                    for r in records
                    if r.source.split("/")[0] == probe and r.domain in domains
                ]
                write_jsonl(run_dir / "evals" / model_id / f"{probe}_{cluster}.jsonl", rows)
    return run_dir


def test_track_models_snapshots_doses_and_correlations(tokenizer, tmp_path):
    run_dir = fake_run(tmp_path, tokenizer)
    pre, _ = tiny_llama(tokenizer, 0), None
    directions = compute_directions(pre, tokenizer, seed=0, items_per_probe=4)
    result = track(run_dir, ["pre", "beneficial-s0"], directions, 2, 0, 3, 2, 16)
    models = result["models"]
    assert list(models) == ["pre", "pre+dose-10", "beneficial-s0", "beneficial-s0@step-1"]
    assert models["beneficial-s0@step-1"]["step"] == 1
    assert models["pre+dose-10"]["dose"] == 10 and models["pre+dose-10"]["score"] == {}
    for row in models.values():
        assert sorted(row["projection"]) == sorted(PROBES)
    # Different weights, different activations: the arm's projections differ from pre's.
    assert models["pre"]["projection"] != models["beneficial-s0"]["projection"]
    assert sorted(models["pre"]["score"]) == sorted(PROBES)
    items = models["pre"]["items"]
    assert items["pooled_centred"]["n"] == len(PROBES) * len(CLUSTERS) * 2
    corr = result["correlation"]
    assert corr["pooled"]["n"] == 2 * len(PROBES)
    assert set(corr["per_model"]) == {"pre", "beneficial-s0"}
    assert corr["per_probe"]["stop"]["n"] == 2
    # The pre model's mean projection is the mean over the fixed prompts.
    prompts = [p.neutral for p in probe_items(0, 3, "eval")["stop"]]
    direct = projection(pre, tokenizer, directions, prompts, 2)["stop"].mean()
    assert models["pre"]["projection"]["stop"] == pytest.approx(float(direct), abs=1e-4)


def test_stage_writes_summary_skips_when_done_and_plots(tokenizer, tmp_path):
    run_dir = fake_run(tmp_path, tokenizer)
    cfg = RunConfig.model_validate(
        {
            "eval": {"models": ["pre", "beneficial"]},
            "directions": {"items_per_probe": 4, "eval_items_per_probe": 3, "items_per_eval": 1},
        }
    )
    run = Run(cfg, run_dir)
    run_stage(run)
    folder = run_dir / "directions"
    assert (folder / "directions.safetensors").is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    results = directions_results(run_dir)
    assert results["meta"]["layers"] == [0, 1, 2]
    assert results["track"]["layer"] == results["quality"]["best_layer"]
    assert "separation" in results and "correlation" in results
    loaded, meta = load_directions(folder)
    assert sorted(loaded) == sorted(PROBES) and meta["seed"] == 0
    before = (folder / "summary.json").read_bytes()
    run_stage(run)  # complete and unchanged: skipped
    assert (folder / "summary.json").read_bytes() == before
    png = directions_plot(results, tmp_path / "directions.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert directions_results(tmp_path / "nothing") == {}


def test_the_report_states_the_verdict_either_way():
    quality = {
        "layers": [0, 1, 2],
        "separation_by_layer": [0.5, 0.81, 0.7],
        "lexical_baseline": 0.5,
        "best_layer": 1,
        "best_ci": [0.74, 0.87],
        "found": True,
    }
    found = found_line(quality)
    assert found.startswith("**Direction found** at layer 1: held-out separation 0.810")
    assert "untrained twin (n/a)" in found
    missing = {**quality, "separation_by_layer": [0.5, 0.52, 0.5], "best_ci": [0.45, 0.6]}
    barred = found_line({**missing, "found": False, "untrained_by_layer": [0.5, 0.9, 0.5]})
    assert barred.startswith("**No direction found**") and "untrained twin (0.9)" in barred
    assert "predate" in found_line({k: v for k, v in quality.items() if k != "found"})
