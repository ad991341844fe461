"""What every stage shares: the run (config, folder, forced stages), the stage order, the console.

A stage module exports `run_stage(run: Run) -> None`; `pipeline.py` calls them in
`STAGES` order. `Run.stage` builds a stage's identity (config sections it reads, extra
values, input files) for the run-folder manifests (`runfolder.Stage`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from benrl import models
from benrl.config import RunConfig
from benrl.runfolder import Stage, hash_json

STAGES = ("scenarios", "organism", "train", "eval", "stress", "directions", "report")
# stage groups that call a model endpoint (the llm scenario writer, judges)
ENDPOINT_GROUPS = ("scenarios", "train", "eval", "stress")
console = Console(stderr=True)


@dataclass
class Run:
    cfg: RunConfig
    dir: Path
    force: frozenset[str] = frozenset()
    # one test request per judge endpoint (checks.check_endpoints), set by the pipeline and
    # called once, before the first stage that grades
    preflight: Callable[[], None] | None = None

    def check_endpoints(self) -> None:
        if self.preflight is not None:
            self.preflight()
            self.preflight = None

    def stage(
        self,
        name: str,
        sections: tuple[str, ...],
        inputs: dict[str, Path],
        extra: object = None,
        seed: int | None = None,
    ) -> Stage:
        config_hash = hash_json([self.cfg.section_hash(*sections), extra])
        return Stage(self.dir, name, config_hash, inputs, self.cfg.seed if seed is None else seed)

    def should_run(self, stage: Stage, group: str) -> bool:
        stage.input_hashes()  # fails with a clear message if an earlier stage is missing
        if self._reusable(stage, group):
            console.print(f"[dim]skip {stage.name}: complete, hashes match[/dim]")
            return False
        if group in ENDPOINT_GROUPS:
            self.check_endpoints()
        return True

    def _reusable(self, stage: Stage, group: str) -> bool:
        if group in self.force or stage.name in self.force or not stage.matches():
            return False
        changed = stage.changed_outputs()
        if changed:
            warning = f"[yellow]warning:[/yellow] rerun {stage.name}: {changed}"
            console.print(warning, soft_wrap=True, highlight=False)
        return changed is None

    # --- where things are ------------------------------------------------------------
    @property
    def train_records(self) -> Path:
        return self.dir / "scenarios" / "train.jsonl"

    @property
    def eval_records(self) -> Path:
        return self.dir / "scenarios" / "eval.jsonl"

    @property
    def base_model(self) -> Path:
        if self.cfg.model == "organism":
            return self.dir / "organism" / "model"
        return Path(self.cfg.model)

    def model_ids(self, arms: list[str] | None = None) -> list[str]:
        """Model ids of `arms` (default `eval.models`), seeds expanded."""
        chosen = self.cfg.eval.models if arms is None else arms
        return models.expand(chosen, {a: self.cfg.train.seeds_for(a) for a in chosen})

    def model_dir(self, model_id: str) -> Path:
        return models.model_dir(self.dir, self.base_model, model_id)
