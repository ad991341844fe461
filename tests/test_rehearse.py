"""`benrl rehearse`: every shipped config's stage plan runs on CPU, offline, at toy size.

One rehearsal per file in configs/ (a new config is rehearsed without touching this
file). Configs that name public datasets read the shared sample folder (BENRL_REALDATA, or
../shared/realdata next to the repo); where it is absent, as in CI, an invented miniature
in the same format (tests/realdata_miniature.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from realdata_miniature import write_miniature

from benrl.evaluation.registry import registered_evals
from benrl.rehearsal.plan import NOTICE, load_for_rehearsal, rehearse

pytestmark = pytest.mark.slow  # each rehearsal runs every stage of a config
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
REALDATA_ROOT = Path(os.environ.get("BENRL_REALDATA") or ROOT.parent / "shared" / "realdata")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_rehearsal_runs_every_stage_and_eval(config: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(config.read_text())
    cfg_sets: list[str] = raw.get("eval", {}).get("realdata", {}).get("sets", [])
    realdata = REALDATA_ROOT if cfg_sets else None
    if realdata and not realdata.is_dir():  # as in CI: an invented miniature, same format
        realdata = write_miniature(tmp_path / "realdata", cfg_sets)
    cfg = load_for_rehearsal(config, realdata)
    out = rehearse(cfg, tmp_path / "run")
    assert (out / "REHEARSAL.md").read_text().strip() == NOTICE
    results = json.loads((out / "report" / "results.json").read_text())
    small = json.loads((out / "config.json").read_text())
    assert small["train"]["arms"] == cfg.train.arms  # the plan is the config's
    for model_id in results["models"]:
        summary = json.loads((out / "evals" / model_id / "summary.json").read_text())
        for name in cfg.eval.realdata.sets:  # public datasets scored, with their category
            assert summary[name]["category"] == registered_evals()[name].category
    text = json.dumps(results)
    for name in cfg.eval.realdata.sets:
        assert f'"{name}"' in text
    # A real model's generic control is graded by a model judge: its reward has variance
    # even at toy size. The organism is built at toy size here and answers incoherently
    # to every prompt, so its generic reward is 0 throughout and says nothing.
    if "generic" in cfg.train.arms and cfg.model != "organism":
        log = read_jsonl(out / "arms" / "generic-s0" / "log.jsonl")
        assert max(row["reward_std"] for row in log if "reward_std" in row) > 0
