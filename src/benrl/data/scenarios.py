"""The scenarios stage: trait scenarios and standard tasks as scenario records.

Trait records come from a registered *trait source* chosen by `scenarios.backend`:
`llm` (an OpenAI-compatible endpoint writes them per taxonomy cell, here) or a
plug-in's (`template`, the organism's probes). Standard tasks come from the user's
`scenarios.tasks_file` or the registered task source. Records are deduplicated by their
content-derived id, so a rebuild with the same seed writes byte-identical files.

Writes `scenarios/{train,eval}.jsonl` and a card (`card.md`, `card.json`) with counts
per trait x domain x pressure x split and the share of multi-turn records.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benrl.config import ScenariosConfig
from benrl.errors import BenrlError
from benrl.plugins import Registry
from benrl.records import ScenarioRecord, read_records, write_jsonl
from benrl.run import Run

# (config, seed, split, stage folder) -> trait records of the split
TraitSource = Callable[[ScenariosConfig, int, str, Path], list[ScenarioRecord]]
# (config, seed, split) -> standard-task records of the split
TaskSource = Callable[[ScenariosConfig, int, str], list[ScenarioRecord]]
TRAIT_SOURCES: Registry[TraitSource] = Registry("scenarios.backend")
TASK_SOURCES: Registry[TaskSource] = Registry("task source")
TRAIT_SOURCE_FAMILY: dict[str, str] = {}  # trait source -> the eval family it fills by default
DEFAULT_TASK_SOURCE = "world"  # the organism's; a real model names scenarios.tasks_file
register_task_source = TASK_SOURCES.register


def register_trait_source(name: str, source: TraitSource, eval_family: str = "traits") -> None:
    """Add a trait source; `eval_family` is the eval family an empty `eval.evals` runs on it."""
    TRAIT_SOURCES.register(name, source)
    TRAIT_SOURCE_FAMILY[name] = eval_family


def trait_source_family(name: str) -> str:
    """The default eval family of the trait source `name`."""
    TRAIT_SOURCES.get(name)  # an unknown source is an error naming the known ones
    return TRAIT_SOURCE_FAMILY[name]


def dedupe(records: list[ScenarioRecord]) -> list[ScenarioRecord]:
    seen: dict[str, ScenarioRecord] = {}
    for record in records:
        seen.setdefault(record.id, record)
    return list(seen.values())


def build_scenarios(cfg: ScenariosConfig, seed: int, out_dir: Path) -> dict:
    """Write train/eval records and the card; returns the card's figures."""
    traits = TRAIT_SOURCES.get(cfg.backend)
    splits = {
        split: traits(cfg, seed, split, out_dir) + standard_tasks(cfg, split, seed)
        for split in ("train", "eval")
    }
    for split, records in splits.items():
        if not records:
            raise BenrlError(f"scenarios: the {split} split is empty")
        write_jsonl(out_dir / f"{split}.jsonl", records)
    unchecked = frozenset(r.id for r in read_records(cfg.tasks_file)) if cfg.tasks_file else None
    card = scenario_card(splits, unchecked or frozenset())
    (out_dir / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True))
    (out_dir / "card.md").write_text(card_markdown(card, splits))
    if card["family_overlap"]:  # the card says "must be 0": an eval would measure training data
        shown = ", ".join(card["family_overlap"][:3])
        raise BenrlError(
            f"scenarios: {len(card['family_overlap'])} template families are shared by train "
            f"and eval ({shown}, ...; see {out_dir / 'card.md'}); evals must use held-out wordings"
        )
    return card["totals"]


def standard_tasks(cfg: ScenariosConfig, split: str, seed: int) -> list[ScenarioRecord]:
    """The registered task source's tasks, or the user's task file (records keep their split)."""
    if cfg.tasks_file is None:
        return TASK_SOURCES.get(DEFAULT_TASK_SOURCE)(cfg, seed, split)
    records = [r for r in read_records(cfg.tasks_file) if r.split == split]
    wrong = [r.id for r in records if r.kind != "task"]
    if wrong:
        raise BenrlError(f"{cfg.tasks_file}: records {wrong[:3]} are not kind 'task'")
    return records


def llm_trait_records(
    cfg: ScenariosConfig, _seed: int, split: str, out_dir: Path
) -> list[ScenarioRecord]:
    """Trait scenarios written by an LLM for every taxonomy cell (resumable, cached)."""
    from benrl.data.scenarios_llm import generate_llm_scenarios
    from benrl.data.traits import load_taxonomy
    from benrl.judging.llm_client import LLMEndpointConfig

    tax = load_taxonomy()
    unknown = [d for d in cfg.llm_domains if d not in tax.domains]
    if unknown:
        raise BenrlError(f"scenarios.llm_domains: unknown domain(s) {unknown}")
    domains = cfg.llm_domains or list(tax.domains)
    requests = [
        {
            "trait": name,
            "domain": domain,
            "pressure": pname,
            "split": split,
            "variant": v,
            "trait_description": trait.definition,
            "domain_description": dom.description,
            "pressure_description": pressure.description,
            "rubric_hints": list(trait.rubric),
        }
        for name, trait in tax.traits.items()
        for domain, dom in tax.domains.items()
        if domain in domains
        for pname, pressure in tax.pressures.items()
        if name in pressure.traits
        for v in range(cfg.llm_per_cell)
    ]
    path = out_dir / f"llm_{split}.jsonl"
    report = generate_llm_scenarios(requests, LLMEndpointConfig.model_validate(cfg.llm), path)
    (out_dir / f"llm_{split}_report.json").write_text(report.model_dump_json(indent=2))
    return sorted(read_records(path), key=lambda r: r.id) if path.exists() else []


def family(record: ScenarioRecord) -> str:
    """The template family a record was instantiated from (its `source`).

    A generated record (`llm/...`) is written afresh for its split, so its "family" is its
    own user text: the check then catches a writer that returned the same conversation
    for train and eval.
    """
    if record.source.startswith("llm/"):
        text = "\n".join(m.content for m in record.messages if m.role == "user")
        return f"{record.source}#{hash_text(text)}"
    return record.source


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def scenario_card(
    splits: dict[str, list[ScenarioRecord]], unchecked: frozenset[str] = frozenset()
) -> dict:
    cells: Counter[str] = Counter()
    totals: dict[str, int] = {}
    multi_turn: dict[str, float] = {}
    families: dict[str, list[str]] = {}
    for split, records in splits.items():
        traits = [r for r in records if r.kind == "trait"]
        totals[f"{split}_trait"] = len(traits)
        totals[f"{split}_task"] = len(records) - len(traits)
        multi_turn[split] = round(
            sum(sum(m.role == "user" for m in r.messages) > 1 for r in traits)
            / max(1, len(traits)),
            3,
        )
        # a user's task file has no templates: its records keep their source in both splits
        families[split] = sorted({family(r) for r in records if r.id not in unchecked})
        for r in traits:
            for trait in r.traits:
                cells[f"{split}|{trait}|{r.domain}|{r.pressure}"] += 1
    overlap = sorted(set(families["train"]) & set(families["eval"]))
    return {
        "totals": totals,
        "multi_turn_share": multi_turn,
        "families": families,
        "family_overlap": overlap,
        "cells": dict(sorted(cells.items())),
    }


def card_markdown(card: dict, splits: dict[str, list[ScenarioRecord]]) -> str:
    lines = [
        "# Scenario card",
        "",
        "| split | trait records | task records | multi-turn share |",
        "|---|---|---|---|",
    ]
    for split in splits:
        t = card["totals"]
        lines.append(
            f"| {split} | {t[f'{split}_trait']} | {t[f'{split}_task']} | "
            f"{card['multi_turn_share'][split]:.1%} |"
        )
    lines += [
        "",
        f"Template families shared by train and eval: {len(card['family_overlap'])} (must be 0).",
        "",
        "## Records per trait x split",
        "",
        "| trait | train | eval |",
        "|---|---|---|",
    ]
    per_trait: Counter[tuple[str, str]] = Counter()
    for key, count in card["cells"].items():
        split, trait, _, _ = key.split("|")
        per_trait[trait, split] += count
    for trait in sorted({t for t, _ in per_trait}):
        lines.append(f"| {trait} | {per_trait[trait, 'train']} | {per_trait[trait, 'eval']} |")
    lines += ["", "## One example per family", ""]
    shown: set[str] = set()
    for split, records in splits.items():
        for r in records:
            if r.source in shown:
                continue
            shown.add(r.source)
            turns = " / ".join(f"{m.role}: {m.content}" for m in r.messages)
            lines.append(f"- `{r.source}` ({split}, {r.pressure}): {turns}")
    return "\n".join(lines) + "\n"


register_trait_source("llm", llm_trait_records)


def run_stage(run: Run) -> None:
    stage = run.stage("scenarios", ("scenarios",), {})
    if run.should_run(stage, "scenarios"):
        with stage.running() as extra:
            extra["totals"] = build_scenarios(run.cfg.scenarios, run.cfg.seed, stage.dir)
