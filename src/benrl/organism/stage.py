"""The organism stage: build the embedded model organism, or check the user's model folder.

With `model: organism` the stage pretrains the organism into `organism/` (resumable
from its checkpoints) and writes its card; `benrl organism build` and the controls
experiment go through the same manifest, so a finished build is reused and an edited
`organism` section rebuilds. With a Hugging Face model folder there is nothing to build.
"""

from __future__ import annotations

from pathlib import Path

from benrl.errors import BenrlError
from benrl.run import Run


def build_stage(run: Run, name: str = "organism") -> Path:
    """Build the organism of `run.cfg.organism` into `run.dir/name` unless its manifest matches."""
    from benrl.organism.model import build_organism

    stage = run.stage(name, ("organism",), {})
    if run.should_run(stage, "organism"):
        with stage.running() as extra:
            extra["card"] = build_organism(run.cfg.organism, run.cfg.seed, stage.dir)
    return stage.dir


def run_stage(run: Run) -> None:
    if run.cfg.model == "organism":
        build_stage(run)
    elif not (run.base_model / "config.json").exists():
        raise BenrlError(
            f"model: {run.base_model} is not a Hugging Face model folder (no config.json)"
        )
