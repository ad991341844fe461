"""The directions stage: persona-vector style trait directions inside the model.

What happens inside the model when RL makes it broadly beneficial, and when harmful
fine-tuning undoes it? As in Anthropic's persona vectors work, each probe (trait) gets a
direction per layer: the mean difference of residual-stream activations between the
beneficial and the non-beneficial response, teacher-forced after the prompt (rendered
with the chat template) and averaged over the response's tokens, on train-template
items with the pre-RL model; normalised to unit length. Layer k is `hidden_states[k]`
of a forward pass, the output of block k (HF applies the final norm to the last one);
layer 0, the token embeddings, is kept as a lexical baseline.

Quality: on held-out eval-template items, how often the good response projects higher
than the bad one (separation, per probe and layer). Good and bad responses are different
words, so even token embeddings separate them: separation above the layer-0 baseline is
what the blocks add. Also the cosine similarity of the probes'
directions at the best layer, and how well each probe's direction separates the other
probes' pairs (transfer): with a coherent organism the traits share one character, so
the directions should share structure.

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
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from benrl.analysis.pairs import ContrastPair, pair_source
from benrl.errors import BenrlError
from benrl.evaluation.generate import encode_prompts
from benrl.evaluation.registry import registered_evals
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
    Layer 0 is the token embeddings, layer k the output of block k.
    """
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(len(r) for r in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        weight = torch.zeros((len(batch), width))
        for i, (row, (lo, hi)) in enumerate(
            zip(batch, spans[start : start + batch_size], strict=True)
        ):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
            weight[i, lo:hi] = 1.0 / (hi - lo)
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
    return torch.cat(out, dim=1)


def response_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[Conversation],
    responses: list[str],
    batch_size: int = 64,
) -> torch.Tensor:
    """Teacher-forced mean activation over each response's tokens: [layers, n, hidden]."""
    prompts = encode_prompts(tokenizer, conversations)
    answers = tokenizer(responses, add_special_tokens=False)["input_ids"]
    if any(not a for a in answers):
        raise BenrlError("directions: a response tokenizes to no tokens")
    rows = [p + a for p, a in zip(prompts, answers, strict=True)]
    spans = [(len(p), len(p) + len(a)) for p, a in zip(prompts, answers, strict=True)]
    return span_means(model, rows, spans, _pad_id(tokenizer), batch_size)


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
    """Per probe: response states of the good and of the bad responses, [layers, n, hidden]."""
    flat = [p for probes in items.values() for p in probes]
    convs = [p.messages for p in flat] * 2
    states = response_states(
        model, tokenizer, convs, [p.good for p in flat] + [p.bad for p in flat], batch_size
    )
    good, bad = states[:, : len(flat)], states[:, len(flat) :]
    out, start = {}, 0
    for name, probes in items.items():
        out[name] = (good[:, start : start + len(probes)], bad[:, start : start + len(probes)])
        start += len(probes)
    return out


# --- the math ---------------------------------------------------------------------------


def mean_difference(good: torch.Tensor, bad: torch.Tensor) -> torch.Tensor:
    """Unit vector along mean(good) - mean(bad); inputs are [n, hidden]."""
    diff = good.mean(0) - bad.mean(0)
    norm = diff.norm()
    if norm == 0:
        raise BenrlError("directions: good and bad responses have identical mean activations")
    return diff / norm


def separation(good_proj: np.ndarray, bad_proj: np.ndarray) -> float:
    """Share of pairs whose good response projects higher than its bad response."""
    return float(np.mean(np.asarray(good_proj) - np.asarray(bad_proj) > 0))


def cosine_matrix(vectors: torch.Tensor) -> np.ndarray:
    """Pairwise cosine similarity of the rows of [k, hidden]."""
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    return (unit @ unit.T).numpy()


def shared_structure(vectors: torch.Tensor) -> dict:
    """How much the directions share: mean off-diagonal cosine, top component's variance share."""
    cos = cosine_matrix(vectors)
    k = len(cos)
    singular = torch.linalg.svdvals(vectors / vectors.norm(dim=1, keepdim=True))
    return {
        "mean_offdiag_cosine": float((cos.sum() - np.trace(cos)) / (k * (k - 1))),
        "top_component_share": float(singular[0] ** 2 / (singular**2).sum()),
    }


def correlation(x: list[float] | np.ndarray, y: list[float] | np.ndarray) -> dict:
    """Pearson and Spearman correlation with p-values; None where undefined (n < 3, constant)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out: dict = {"n": len(x), "pearson": None, "pearson_p": None, "spearman": None}
    out["spearman_p"] = None
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
    out.update(
        pearson=float(pearson.statistic),
        pearson_p=float(pearson.pvalue),
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
) -> dict:
    """Held-out separation per probe and layer; cosine and transfer matrices at the best layer."""
    pairs = pair_states(model, tokenizer, probe_items(seed, items_per_probe, "eval"), batch_size)
    probes = list(directions)
    layers = sorted(directions[probes[0]])
    gaps = {  # probe -> layer -> [n] projection of good minus bad
        p: {k: (pairs[p][0][k] - pairs[p][1][k]) @ directions[p][k] for k in layers} for p in probes
    }
    # Lists aligned with `layers` (JSON would turn integer keys into strings).
    sep = {p: [float((gaps[p][k] > 0).float().mean()) for k in layers] for p in probes}
    by_layer = [float(np.mean([sep[p][i] for p in probes])) for i in range(len(layers))]
    # Layer 0 (embeddings) is the lexical baseline, never the best layer; ties: the shallowest.
    best = layers[1 + int(np.argmax(by_layer[1:]))]
    vectors = torch.stack([directions[p][best] for p in probes])
    transfer = [
        [float(((pairs[q][0][best] - pairs[q][1][best]) @ d > 0).float().mean()) for q in probes]
        for d in vectors
    ]
    return {
        "probes": probes,
        "layers": layers,
        "items_per_probe": items_per_probe,
        "separation": sep,
        "separation_by_layer": by_layer,
        "lexical_baseline": by_layer[0],  # layer 0: the response's mean token embedding
        "best_layer": best,
        "cosine": np.round(cosine_matrix(vectors), 4).tolist(),
        "transfer": transfer,  # row: whose direction; column: whose held-out pairs
        **shared_structure(vectors),
    }


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
