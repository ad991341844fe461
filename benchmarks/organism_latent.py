"""Issue 20's experiments: which corpus lets the organism learn the persona latent?

Builds one coherence-1 organism per corpus variant (each about 2-3 minutes on 2 cores;
a folder that already holds a built model is measured as it is) and measures, on each:

- the in-context persona shift (organism/latent.py): preference for a probe's good answer
  after a different probe answered well minus after it answered badly, with the ideal
  learner's value for that corpus;
- the persona-prompt shift: "a careful assistant" minus "a careless assistant", under a
  name the corpus never uses;
- capability (the card's greedy task accuracy) and validation loss.

    python benchmarks/organism_latent.py [VARIANT ...]

Prints the table and writes benchmarks/results/organism_latent.{json,md}; docs/organism.md
quotes it.
"""

from __future__ import annotations

import json
import sys

from figures import RESULTS_DIR, save_figures

from benrl.config import OrganismConfig
from benrl.organism.corpus import make_personas
from benrl.organism.latent import ideal_shift, in_context_shift, prompt_shift
from benrl.organism.model import build_organism, load_organism
from benrl.organism.world import World

PAIRS = 600
# the corpus before issue 20; a card written before an option existed had these values
LEGACY = {
    "document_masking": False,
    "propensity_beta": 1.0,
    "task_share": 0.5,
    "separate_tasks": False,
    "max_exchanges": 4,
}
BEFORE = {**LEGACY, "steps": 800, "persona_prompt_share": 0.3}
DECIDED = {**BEFORE, "propensity_beta": 0.2}  # personas near all-good or all-bad
VARIANTS: dict[str, tuple[str, dict]] = {
    "before": ("the corpus before issue 20 (uniform propensities)", BEFORE),
    "masked": (
        "+ each packed conversation attends only to itself",
        {**BEFORE, "document_masking": True},
    ),
    "decided": ("+ Beta(0.2, 0.2) propensities (unmasked)", {**DECIDED, "steps": 1000}),
    "decided_long": (
        "+ Beta(0.2, 0.2), 25% tasks, up to 6 exchanges, prompt in 50%, 1000 steps (unmasked)",
        {
            **DECIDED,
            "task_share": 0.25,
            "max_exchanges": 6,
            "persona_prompt_share": 0.5,
            "steps": 1000,
        },
    ),
    "decided_masked": (
        "Beta(0.2, 0.2), 30% tasks inside persona conversations, masked",
        {
            **DECIDED,
            "task_share": 0.3,
            "max_exchanges": 4,
            "persona_prompt_share": 0.5,
            "document_masking": True,
        },
    ),
    "probes_prompted": (
        "probes only, one per conversation, each with a persona prompt (20k documents, 400 steps)",
        {
            **DECIDED,
            "task_share": 0.0,
            "max_exchanges": 1,
            "persona_prompt_share": 1.0,
            "documents": 20_000,
            "steps": 400,
            "document_masking": True,
        },
    ),
    "probes_only": (
        "probes only, 1-3 per conversation, prompt in 50%, masked",
        {
            **DECIDED,
            "task_share": 0.0,
            "max_exchanges": 3,
            "persona_prompt_share": 0.5,
            "document_masking": True,
        },
    ),
    "separate_tasks": (
        "the default now: as probes_only, plus 30% of conversations made of tasks only",
        {
            **DECIDED,
            "task_share": 0.3,
            "separate_tasks": True,
            "max_exchanges": 3,
            "persona_prompt_share": 0.5,
            "document_masking": True,
        },
    ),
}


def measure(name: str, overrides: dict) -> dict:
    cfg = OrganismConfig(**overrides)
    folder = RESULTS_DIR / "organism_latent" / name
    if not (folder / "model").is_dir():
        build_organism(cfg, 0, folder)
    card = json.loads((folder / "card.json").read_text())
    built = {**LEGACY, **card["config"]}
    if any(built.get(k, cfg.model_dump()[k]) != v for k, v in overrides.items()):
        raise SystemExit(f"{folder} was built with another config; delete it to rebuild")
    model, tokenizer = load_organism(folder)
    model.eval()
    world = World(0)
    latent = in_context_shift(model, tokenizer, world, PAIRS, 0)
    latent["ideal"] = ideal_shift(
        make_personas(cfg.personas, cfg.coherence, 0, cfg.propensity_beta)
    )
    return {
        "variant": name,
        "overrides": overrides,
        "in_context": latent,
        "persona_prompt": prompt_shift(model, tokenizer, world, PAIRS, 0),
        "capability": card["capability"]["mean"],
        "val_loss": card["pretraining"]["val_loss"],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| variant | corpus | in-context shift [95% CI] (ideal) | persona-prompt shift [95% CI] "
        "| capability | val loss |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        c, p = r["in_context"], r["persona_prompt"]
        lines.append(
            f"| {r['variant']} | {VARIANTS[r['variant']][0]} | "
            f"{c['shift']:+.3f} [{c['ci'][0]:+.3f}, "
            f"{c['ci'][1]:+.3f}] ({c['ideal']:+.3f}) | {p['shift']:+.3f} [{p['ci'][0]:+.3f}, "
            f"{p['ci'][1]:+.3f}] | {100 * r['capability']:.1f}% | {r['val_loss']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    names = sys.argv[1:] or list(VARIANTS)
    rows = [measure(name, VARIANTS[name][1]) for name in names]
    markdown = table(rows)
    print(markdown)
    (RESULTS_DIR / "organism_latent.md").write_text(markdown)
    save_figures("organism_latent", {"rows": rows})


if __name__ == "__main__":
    main()
