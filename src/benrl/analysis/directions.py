"""Trait directions inside the model, controlled for the tokens.

What happens inside the model when RL makes it broadly beneficial, and when harmful
fine-tuning undoes it? As in Anthropic's persona vectors work, each probe (trait) gets a
direction per layer: the mean difference of residual-stream activations between its
train items read under a beneficial and under a non-beneficial conditioning (on the
organism: a careful vs a careless persona prompt), with the pre-RL model; normalised to
unit length. Layer k is `hidden_states[k]` of a forward pass, the output of block k (HF
applies the final norm to the last one); layer 0 is the token embeddings.

The read-out is the last prompt token, the same token under both conditionings
(`analysis/pairs.py`), so layer 0 sits at chance (0.5). Deeper layers see the
conditioning's words through attention, so the directions are judged on held-out pairs
conditioned another way (on the organism: an earlier exchange answered well or badly),
and against an untrained twin (same architecture, random weights) put through the same
procedure: what the twin separates is the words, what the trained model separates
beyond it is what training built. An earlier version contrasted the good and the bad
response's own tokens: their embeddings alone separated held-out pairs (0.94 at every
layer), so it measured words, not the model.

Quality: how often the held-out good side projects higher (separation, per probe and
layer, ties count half), with a bootstrap CI at the best layer; a direction is found
when that CI's lower bound is above chance, the layer-0 baseline and the untrained twin
at that layer, and the report says so either way. Also the cosine similarity of the
probes' directions at the best layer, and how well each probe's direction separates the
other probes' pairs (transfer).

Tracking models along these directions, and the stage, are in `directions_stage.py`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy import stats
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from benrl.analysis.pairs import ContrastPair, pair_source
from benrl.errors import BenrlError
from benrl.evaluation.generate import encode_prompts
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.stats import bootstrap_ci
from benrl.records import Message

Directions = dict[str, dict[int, torch.Tensor]]  # probe -> layer -> unit vector
Conversation = list[Message] | list[dict]

PAIR_SOURCE = "organism"  # the only registered contrast-pair source so far


def probe_items(seed: int, per_probe: int, split: str) -> dict[str, Sequence[ContrastPair]]:
    """`per_probe` contrast pairs per probe of the split, from the registered pair source."""
    return pair_source(PAIR_SOURCE)(seed, per_probe, split)


def probe_of_eval() -> dict[str, str]:
    """Eval name -> the probe it slices, for the evals that slice one."""
    return {name: ev.probe for name, ev in registered_evals().items() if ev.probe}


# --- activations ------------------------------------------------------------------------


def span_means(
    model: PreTrainedModel,
    rows: list[list[int]],
    spans: list[tuple[int, int]],
    pad_id: int,
    batch_size: int,
) -> torch.Tensor:
    """Mean hidden state over tokens [start, end) of each row: [layers, rows, hidden].

    Rows are right-padded, so a causal model's states at real tokens do not see padding.
    Layer 0 is the token embeddings, layer k the output of block k. Batches take the rows
    by length (padding of the prompts in their given order was a third of the tokens).
    """
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = []
    for start in range(0, len(rows), batch_size):
        chosen = order[start : start + batch_size]
        width = max(len(rows[i]) for i in chosen)
        ids = torch.full((len(chosen), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        weight = torch.zeros((len(chosen), width))
        for k, i in enumerate(chosen):
            ids[k, : len(rows[i])] = torch.tensor(rows[i], dtype=torch.long)
            mask[k, : len(rows[i])] = 1
            lo, hi = spans[i]
            weight[k, lo:hi] = 1.0 / (hi - lo)
        with torch.inference_mode():
            # The base model skips the LM head: its logits are not needed here.
            hidden = model.base_model(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                output_hidden_states=True,
                use_cache=False,
            ).hidden_states
        states = torch.stack(hidden).float().cpu()  # [L + 1, b, t, d]
        out.append(torch.einsum("lbtd,bt->lbd", states, weight))
    by_length = torch.cat(out, dim=1)
    return by_length[:, torch.tensor(order).argsort()]  # back to the rows' order


def prompt_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[Conversation],
    batch_size: int = 64,
) -> torch.Tensor:
    """Activation at the last prompt token (the open assistant turn): [layers, n, hidden]."""
    rows = encode_prompts(tokenizer, conversations)
    spans = [(len(r) - 1, len(r)) for r in rows]
    return span_means(model, rows, spans, _pad_id(tokenizer), batch_size)


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return pad if pad is not None else 0  # padded positions are masked and never read


def pair_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: dict[str, Sequence[ContrastPair]],
    batch_size: int,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per probe: last-prompt-token states under the good and the bad conditioning."""
    flat = [p for probes in items.values() for p in probes]
    convs = [p.good for p in flat] + [p.bad for p in flat]
    states = prompt_states(model, tokenizer, convs, batch_size)
    good, bad = states[:, : len(flat)], states[:, len(flat) :]
    out, start = {}, 0
    for name, probes in items.items():
        out[name] = (good[:, start : start + len(probes)], bad[:, start : start + len(probes)])
        start += len(probes)
    return out


# --- the math ---------------------------------------------------------------------------


def mean_difference(good: torch.Tensor, bad: torch.Tensor) -> torch.Tensor:
    """Unit vector along mean(good) - mean(bad); inputs are [n, hidden].

    The zero vector when the means are equal (to float precision): the layer holds no
    direction, as the token embeddings of one shared read-out token do not.
    """
    diff = good.mean(0) - bad.mean(0)
    norm = diff.norm()
    scale = torch.maximum(good.mean(0).norm(), bad.mean(0).norm())
    if norm <= 1e-6 * max(float(scale), 1e-12):
        return torch.zeros_like(diff)
    return diff / norm


def pair_wins(gaps: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per pair: 1 if good projects above bad, 0.5 for a tie (no direction), 0 below."""
    gaps = np.asarray(gaps, dtype=float)
    return (gaps > 0) + 0.5 * (gaps == 0)


def separation(good_proj: np.ndarray, bad_proj: np.ndarray) -> float:
    """Share of pairs whose good side projects higher than its bad side; ties count half."""
    return float(pair_wins(np.asarray(good_proj) - np.asarray(bad_proj)).mean())


def cosine_matrix(vectors: torch.Tensor) -> np.ndarray:
    """Pairwise cosine similarity of the rows of [k, hidden]."""
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (unit @ unit.T).numpy()


def shared_structure(vectors: torch.Tensor) -> dict:
    """How much the directions share: mean off-diagonal cosine, top component's variance share."""
    cos = cosine_matrix(vectors)
    k = len(cos)
    singular = torch.linalg.svdvals(vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return {
        "mean_offdiag_cosine": float((cos.sum() - np.trace(cos)) / (k * (k - 1))),
        "top_component_share": float(singular[0] ** 2 / (singular**2).sum()),
    }


def correlation(x: list[float] | np.ndarray, y: list[float] | np.ndarray) -> dict:
    """Pearson (with its Fisher-z 95% CI) and Spearman correlation with p-values; None where
    undefined (n < 3, or n < 4 for the CI, or a constant input)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out: dict = {"n": len(x), "pearson": None, "pearson_p": None, "pearson_ci": None}
    out.update(spearman=None, spearman_p=None)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
    ci = pearson.confidence_interval(0.95) if len(x) > 3 else None  # Fisher z: needs n > 3
    out.update(
        pearson=float(pearson.statistic),
        pearson_p=float(pearson.pvalue),
        pearson_ci=[float(ci.low), float(ci.high)] if ci else None,
        spearman=float(spearman.statistic),
        spearman_p=float(spearman.pvalue),
    )
    return out


# --- directions and their quality -------------------------------------------------------


def compute_directions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
    items_per_probe: int,
    batch_size: int = 64,
) -> Directions:
    """Per probe and layer, the unit mean-difference direction on train-template items."""
    pairs = pair_states(model, tokenizer, probe_items(seed, items_per_probe, "train"), batch_size)
    return {
        name: {layer: mean_difference(g[layer], b[layer]) for layer in range(len(g))}
        for name, (g, b) in pairs.items()
    }


def direction_quality(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    directions: Directions,
    seed: int,
    items_per_probe: int,
    batch_size: int = 64,
    control_by_layer: list[float] | None = None,
) -> dict:
    """Held-out separation per probe and layer, whether a direction was found, and the
    cosine and transfer matrices at the best layer.

    `control_by_layer`: the untrained twin's separation per layer, a bar to clear.
    """
    pairs = pair_states(model, tokenizer, probe_items(seed, items_per_probe, "eval"), batch_size)
    probes = list(directions)
    layers = sorted(directions[probes[0]])
    wins = {  # probe -> layer -> [n] 1 / 0.5 / 0: good above, tied with, below bad
        p: {k: pair_wins((pairs[p][0][k] - pairs[p][1][k]) @ directions[p][k]) for k in layers}
        for p in probes
    }
    # Lists aligned with `layers` (JSON would turn integer keys into strings).
    sep = {p: [float(wins[p][k].mean()) for k in layers] for p in probes}
    by_layer = [float(np.mean([sep[p][i] for p in probes])) for i in range(len(layers))]
    # Layer 0 (embeddings) is the lexical baseline, never the best layer; ties: the shallowest.
    best = layers[1 + int(np.argmax(by_layer[1:]))]
    vectors = torch.stack([directions[p][best] for p in probes])
    transfer = [
        [separation((pairs[q][0][best] - pairs[q][1][best]) @ d, 0.0) for q in probes]
        for d in vectors
    ]
    low, high = bootstrap_ci(
        np.concatenate([wins[p][best] for p in probes]), 2000, np.random.default_rng(seed)
    )
    bar = max(0.5, by_layer[0], control_by_layer[best] if control_by_layer else 0.0)
    return {
        "probes": probes,
        "layers": layers,
        "items_per_probe": items_per_probe,
        "separation": sep,
        "separation_by_layer": by_layer,
        "lexical_baseline": by_layer[0],  # layer 0: the read-out token's embedding
        "best_layer": best,
        "best_ci": [low, high],  # over the held-out pairs, all probes pooled
        "untrained_by_layer": control_by_layer,
        # Found: the best layer beats chance, layer 0 and the untrained twin beyond its CI.
        # The best layer is picked on these pairs, so with few layers this is mildly lenient.
        "found": bool(low > bar),
        "cosine": np.round(cosine_matrix(vectors), 4).tolist(),
        "transfer": transfer,  # row: whose direction; column: whose held-out pairs
        **shared_structure(vectors),
    }


def untrained_twin(model: PreTrainedModel, seed: int) -> PreTrainedModel:
    """The same architecture with fresh random weights: the control for the words."""
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(model.config).to(model.device).eval()


def save_directions(directions: Directions, folder: Path, meta: dict) -> None:
    """`directions.safetensors` (key `probe.layer`) and `directions.json` with `meta`."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"{p}.{k}": v.contiguous()
        for p, by_layer in directions.items()
        for k, v in by_layer.items()
    }
    save_file(tensors, str(folder / "directions.safetensors"), metadata={"format": "pt"})
    (folder / "directions.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def load_directions(folder: Path) -> tuple[Directions, dict]:
    path = folder / "directions.safetensors"
    if not path.is_file():
        raise BenrlError(f"{path}: not found; run the directions stage first")
    directions: Directions = {}
    for key, vector in load_file(str(path)).items():
        probe, layer = key.rsplit(".", 1)
        directions.setdefault(probe, {})[int(layer)] = vector
    meta_path = folder / "directions.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return {p: dict(sorted(v.items())) for p, v in sorted(directions.items())}, meta
