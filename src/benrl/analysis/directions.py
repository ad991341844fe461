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

Tracking: each model (RL arms, their snapshots, harmfully fine-tuned doses) is read at
the last prompt token, the state from which it chooses its answer, projected onto
every direction; the mean projection per probe is set against the model's eval scores,
across models and per item within a model.

Writes `directions/directions.safetensors` (+ `directions.json`) and `summary.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy import stats
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from benrl.analysis.pairs import ContrastPair, pair_source
from benrl.errors import BenrlError
from benrl.evaluation.generate import encode_prompts, load_model
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import load_scores
from benrl.records import Message, ScenarioRecord, read_records
from benrl.run import Run, console

if TYPE_CHECKING:
    from benrl.config import DirectionsConfig

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


# --- projection and tracking ------------------------------------------------------------


def projection(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    directions: Directions,
    prompts: list[Conversation],
    layer: int,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per probe: each prompt's last-token activation at `layer` projected on its direction."""
    layers = sorted(next(iter(directions.values())))
    if layer not in layers:
        raise BenrlError(f"directions: layer {layer} not among the directions' layers {layers}")
    states = prompt_states(model, tokenizer, prompts, batch_size)[layer]
    return {p: (states @ by_layer[layer]).numpy() for p, by_layer in directions.items()}


def tracked_models(
    run_dir: Path, model_ids: list[str], model_dirs: dict[str, Path] | None = None
) -> list[dict]:
    """Each model, then its RL snapshots and harmful fine-tuning doses that exist on disk."""
    entries = []
    for mid in model_ids:
        path = (model_dirs or {}).get(mid) or (
            run_dir / "organism" / "model" if mid == "pre" else run_dir / "arms" / mid / "model"
        )
        entries.append(
            {
                "id": mid,
                "model": mid,
                "kind": "model",
                "path": path,
                "evals": run_dir / "evals" / mid,
            }
        )
        for snap in _numbered(run_dir / "arms" / mid / "snapshots", "step-"):
            entries.append(
                {
                    "id": f"{mid}@{snap.name}",
                    "model": mid,
                    "kind": "snapshot",
                    "step": int(snap.name[5:]),
                    "path": snap,
                    "evals": None,
                    "tokenizer": path,
                }
            )
        for dose in _numbered(run_dir / "stress" / "finetune" / mid, "dose-"):
            entries.append(
                {
                    "id": f"{mid}+{dose.name}",
                    "model": mid,
                    "kind": "dose",
                    "dose": int(dose.name[5:]),
                    "path": dose / "model",
                    "evals": _dose_evals(dose),
                    "tokenizer": path,
                }
            )
    return entries


def _numbered(folder: Path, prefix: str) -> list[Path]:
    """Sub-folders `<prefix><N>` holding a model, by N."""
    found = [
        d
        for d in folder.glob(f"{prefix}*")
        if d.name[len(prefix) :].isdigit()
        and ((d / "config.json").is_file() or (d / "model" / "config.json").is_file())
    ]
    return sorted(found, key=lambda d: int(d.name[len(prefix) :]))


def _dose_evals(dose: Path) -> Path | None:
    """Where a fine-tuned dose's evals are: `dose-N/evals/` or `dose-N/` (with a summary.json)."""
    return next((f for f in (dose / "evals", dose) if (f / "summary.json").is_file()), None)


def _load(entry: dict):
    tok = entry["path"]
    if not any((tok / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json")):
        tok = entry.get("tokenizer", tok)  # snapshots and doses may be saved without one
    return load_model(entry["path"], tok)


def probe_scores(eval_dir: Path | None) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean score per probe over its evals' scored items, and probe eval -> record id -> score."""
    if eval_dir is None or not (eval_dir / "summary.json").is_file():
        return {}, {}  # not evaluated (yet)
    probe_of = probe_of_eval()
    by_eval = {n: s for n, s in load_scores(eval_dir)[0].items() if n in probe_of and s}
    by_probe: dict[str, list[float]] = {}
    for name, by_id in by_eval.items():
        by_probe.setdefault(probe_of[name], []).extend(by_id.values())
    return {p: float(np.mean(s)) for p, s in by_probe.items()}, by_eval


def track(
    run_dir: Path,
    model_ids: list[str],
    directions: Directions,
    layer: int,
    seed: int,
    prompts_per_probe: int = 32,
    items_per_eval: int = 20,
    batch_size: int = 64,
    model_dirs: dict[str, Path] | None = None,
) -> dict:
    """Mean projection per probe for every tracked model, and whether it predicts behaviour.

    Prompts are fixed eval-template probe items (same for every model). Per-item
    correlations use scored eval items whose prompts are in `scenarios/eval.jsonl`.
    """
    items = probe_items(seed, prompts_per_probe, "eval")
    prompts = [p.messages for probes in items.values() for p in probes]
    owner = np.array([name for name, probes in items.items() for _ in probes])
    eval_path = run_dir / "scenarios" / "eval.jsonl"
    records = {r.id: r for r in read_records(eval_path)} if eval_path.is_file() else {}
    models = {}
    for entry in tracked_models(run_dir, model_ids, model_dirs):
        model, tokenizer = _load(entry)
        proj = projection(model, tokenizer, directions, prompts, layer, batch_size)
        means, scored = probe_scores(entry["evals"])
        row = {k: entry[k] for k in ("model", "kind", "step", "dose") if k in entry}
        row["projection"] = {p: float(proj[p][owner == p].mean()) for p in directions}
        row["score"] = means
        if items_per_eval and scored and records:
            row["items"] = item_correlation(
                model, tokenizer, directions, layer, scored, records, items_per_eval, batch_size
            )
        models[entry["id"]] = row
        del model
    return {
        "layer": layer,
        "prompts_per_probe": prompts_per_probe,
        "models": models,
        "correlation": across_models(models),
    }


def item_correlation(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    directions: Directions,
    layer: int,
    scored: dict[str, dict[str, float]],
    records: dict[str, ScenarioRecord],
    per_eval: int,
    batch_size: int,
) -> dict:
    """Within one model: an item's projection on its probe's direction vs the item's score.

    `scored` is probe eval -> record id -> score; records give the items' prompts.
    Per probe, and pooled over probes after centring each probe's projections and scores
    (so differences between probes' scales do not pass for a correlation).
    """
    probe_of = probe_of_eval()
    flat = [  # (probe, record id, score), the first `per_eval` matched ids of each eval
        (probe_of[name], i, by_id[i])
        for name, by_id in sorted(scored.items())
        if probe_of[name] in directions
        for i in sorted(i for i in by_id if i in records)[:per_eval]
    ]
    if not flat:
        return {}
    states = prompt_states(model, tokenizer, [records[i].messages for _, i, _ in flat], batch_size)
    xs: dict[str, list[float]] = {}
    ys: dict[str, list[float]] = {}
    for (p, _, score), state in zip(flat, states[layer], strict=True):
        xs.setdefault(p, []).append(float(state @ directions[p][layer]))
        ys.setdefault(p, []).append(score)
    chosen = sorted(xs)
    pooled_x = np.concatenate([np.asarray(xs[p]) - np.mean(xs[p]) for p in chosen])
    pooled_y = np.concatenate([np.asarray(ys[p]) - np.mean(ys[p]) for p in chosen])
    return {
        "per_probe": {p: correlation(xs[p], ys[p]) for p in chosen},
        "pooled_centred": correlation(pooled_x, pooled_y),
    }


def across_models(models: dict[str, dict]) -> dict:
    """Mean projection vs mean eval score over (model, probe) pairs of the scored models."""
    scored = {mid: row for mid, row in models.items() if row["score"]}
    pairs = [
        (mid, p) for mid, row in scored.items() for p in row["score"] if p in row["projection"]
    ]
    if not pairs:
        return {}
    x = {(m, p): models[m]["projection"][p] for m, p in pairs}
    y = {(m, p): models[m]["score"][p] for m, p in pairs}
    probes = sorted({p for _, p in pairs})
    centre = {  # per probe: the mean over models, removed to compare models on each probe
        p: (
            np.mean([x[k] for k in pairs if k[1] == p]),
            np.mean([y[k] for k in pairs if k[1] == p]),
        )
        for p in probes
    }
    return {
        "pooled": correlation([x[k] for k in pairs], [y[k] for k in pairs]),
        "pooled_centred": correlation(
            [x[k] - centre[k[1]][0] for k in pairs], [y[k] - centre[k[1]][1] for k in pairs]
        ),
        "per_model": {
            m: correlation([x[k] for k in pairs if k[0] == m], [y[k] for k in pairs if k[0] == m])
            for m in scored
        },
        "per_probe": {
            p: correlation([x[k] for k in pairs if k[1] == p], [y[k] for k in pairs if k[1] == p])
            for p in probes
        },
    }


# --- the stage, its results and its figure ----------------------------------------------


def build_directions(
    cfg: DirectionsConfig,
    seed: int,
    base_model: Path,
    run_dir: Path,
    model_ids: list[str],
    model_dirs: dict[str, Path],
    out_dir: Path,
) -> dict:
    """Compute, judge, save and track the directions; write summary.json; return it."""
    model, tokenizer = load_model(base_model)
    directions = compute_directions(model, tokenizer, seed, cfg.items_per_probe, cfg.batch_size)
    quality = direction_quality(
        model, tokenizer, directions, seed, cfg.eval_items_per_probe, cfg.batch_size
    )
    del model
    layer = cfg.layer or quality["best_layer"]
    if layer not in quality["layers"]:
        raise BenrlError(
            f"directions.layer: {layer} is not a layer of the model {quality['layers']}"
        )
    meta = {
        "seed": seed,
        "items_per_probe": cfg.items_per_probe,
        "probes": quality["probes"],
        "layers": quality["layers"],
        "hidden_size": int(next(iter(directions.values()))[layer].numel()),
        "source_model": "pre",
    }
    save_directions(directions, out_dir, meta)
    summary = {
        "meta": meta,
        "quality": quality,
        "separation": {  # the headline figures the report prints
            "best_layer": quality["best_layer"],
            "mean_at_best_layer": quality["separation_by_layer"][
                quality["layers"].index(quality["best_layer"])
            ],
            "lexical_baseline": quality["lexical_baseline"],
            "mean_offdiag_cosine": quality["mean_offdiag_cosine"],
            "top_component_share": quality["top_component_share"],
        },
        "track": track(
            run_dir,
            model_ids,
            directions,
            layer,
            seed,
            cfg.eval_items_per_probe,
            cfg.items_per_eval,
            cfg.batch_size,
            model_dirs,
        ),
    }
    summary["correlation"] = summary["track"]["correlation"]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def run_stage(run: Run) -> None:
    """The pipeline stage: runs after the evals (and the stress stage, when there is one)."""
    cfg = run.cfg.directions
    if not cfg.enabled:
        return
    if run.cfg.model != "organism":
        console.print(
            f"[yellow]warning:[/yellow] directions use the '{PAIR_SOURCE}' contrast pairs "
            "(the organism's language) on a model that is not the organism"
        )
    inputs = {"base_model": run.base_model}
    if run.eval_records.exists():
        inputs["scenarios"] = run.eval_records
    model_dirs = {mid: run.model_dir(mid) for mid in run.model_ids()}
    for mid, path in model_dirs.items():
        if mid != "pre":
            inputs[f"model/{mid}"] = path
        for folder in (
            run.dir / "evals" / mid,
            run.dir / "arms" / mid / "snapshots",
            run.dir / "stress" / "finetune" / mid,
        ):
            if folder.exists():  # optional inputs: their appearing reruns the stage
                inputs[str(folder.relative_to(run.dir))] = folder
    stage = run.stage("directions", ("directions",), inputs)
    if run.should_run(stage, "directions"):
        with stage.running() as extra:
            summary = build_directions(
                cfg, run.cfg.seed, run.base_model, run.dir, run.model_ids(), model_dirs, stage.dir
            )
            extra["separation"] = summary["separation"]
            extra["correlation"] = summary["correlation"].get("pooled_centred")


def directions_results(run_dir: Path) -> dict:
    """The stage's summary for the report; {} when the stage has not run."""
    path = run_dir / "directions" / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}
