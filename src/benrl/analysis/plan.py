"""The analysis plan: what the report will test, fixed in the run folder before training.

A result is only as good as the freedom the analyst had after seeing the data. So
before the train stage the run writes `analysis_plan.json`: the primary comparison,
the evals (and which are out of distribution for the compared arm), alpha, the test,
how refusals and unscored items are handled, and the training seeds per arm, with the
plan's hash. On a later call, a plan that differs from the one on disk is refused once
training has started, unless forced (`benrl run --force plan`); a forced change is
recorded in the file (`replaced`: the earlier plans and their hashes), and the report
prints the hash, says the plan was changed, and lists any difference between the plan
and what it analysed (an eval added after training, a changed alpha, ...).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benrl.config import RunConfig
from benrl.errors import BenrlError
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.split import distribution, held_out
from benrl.evaluation.suites import eval_suite
from benrl.runfolder import hash_json
from benrl.training.arms import arm_spec

PLAN_FILE = "analysis_plan.json"
FORCE_PLAN = "plan"  # the `--force` value that accepts a changed plan

TEST_HIERARCHICAL = (
    "hierarchical bootstrap over training seeds then items; Student t with the seed "
    "degrees of freedom; Benjamini-Hochberg across evals"
)
TEST_ITEMS = (
    "paired item bootstrap CI and sign-flip p-value, conditional on one training run; "
    "Benjamini-Hochberg across evals"
)


def analysis_plan(cfg: RunConfig) -> dict:
    """The plan a config implies (plain JSON values; its hash is `plan_hash`)."""
    evals = eval_suite(cfg)
    registry = registered_evals()
    seeds = {a: cfg.train.seeds_for(a) for a in cfg.eval.models if a != "pre"}
    primary = [cfg.eval.compare, cfg.eval.against]
    multi = any(seeds.get(arm, 1) > 1 for arm in primary)
    return {
        "primary_comparison": f"{cfg.eval.compare} vs {cfg.eval.against}",
        "evals": evals,
        "ood_evals": [n for n in evals if distribution(registry[n], held_out(cfg)) == "ood"],
        "unseen_domain_evals": unseen_domain_evals(cfg.eval.compare, evals),
        "alpha": cfg.eval.alpha,
        "test": TEST_HIERARCHICAL if multi else TEST_ITEMS,
        "bootstrap": cfg.eval.bootstrap,
        "refusal_handling": "headline on every item, and a second headline without the items "
        "either model refused",
        "exclusions": "items with a failed judge verdict are left out of that model's scores; "
        "items only one model scored are unpaired and dropped",
        "seeds": seeds,
        "seed_aa": f"{cfg.eval.against} seeds split in halves",
    }


def unseen_domain_evals(arm: str, evals: list[str]) -> list[str]:
    """Evals with domains, none of which `arm` trained on (baseline and pre: none)."""
    if arm in ("pre", "baseline"):
        return []
    registry = registered_evals()
    all_domains = {d for ev in registry.values() for d in ev.domains}
    seen = arm_spec(arm).trained_domains(all_domains)
    return [n for n in evals if registry[n].domains and not set(registry[n].domains) & seen]


def plan_hash(plan: dict) -> str:
    return hash_json(plan)


def read_plan(run_dir: Path) -> dict | None:
    """The run's plan file ({plan, hash, written, replaced}), None if it has none."""
    path = run_dir / PLAN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BenrlError(f"{path}: not valid JSON ({e.msg}); restore or delete it") from e


def fix_plan(run_dir: Path, cfg: RunConfig, force: bool = False) -> dict:
    """Write the plan before training, or check the config still implies the same plan.

    Refuses (BenrlError) a changed plan once training has started, unless `force`;
    before training a changed plan simply replaces the old one. Returns the file's data.
    """
    plan = analysis_plan(cfg)
    digest = plan_hash(plan)
    stored = read_plan(run_dir)
    if stored and stored["hash"] == digest:
        return stored
    data = {"plan": plan, "hash": digest, "written": _now(), "replaced": []}
    # A run folder from before plans existed: the plan is written late, and says so.
    data["after_training"] = stored is None and training_started(run_dir)
    if stored and training_started(run_dir):
        if not force:
            changes = "; ".join(plan_changes(stored["plan"], plan))
            raise BenrlError(
                f"the analysis plan of {run_dir} was fixed before training ({stored['hash']}) "
                f"and this config changes it ({changes}); rerun with --force {FORCE_PLAN} to "
                "accept, and the report will say so"
            )
        previous = {"hash": stored["hash"], "plan": stored["plan"], "written": stored["written"]}
        data["replaced"] = [*stored.get("replaced", []), previous]
    (run_dir / PLAN_FILE).write_text(json.dumps(data, indent=2, sort_keys=True))
    return data


def training_started(run_dir: Path) -> bool:
    """Whether any arm has a manifest (its training began, finished or not)."""
    return any((run_dir / "arms").glob("*/manifest.json"))


def plan_changes(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two plans, key by key."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            if sorted(map(str, a)) == sorted(map(str, b)):
                continue  # the same entries in another order
            added, dropped = [x for x in b if x not in a], [x for x in a if x not in b]
            parts = [f"added {added}" if added else "", f"dropped {dropped}" if dropped else ""]
            changes.append(f"{key}: " + ", ".join(p for p in parts if p))
        else:
            changes.append(f"{key}: {a!r} -> {b!r}")
    return changes


def plan_check(run_dir: Path, analysed: dict) -> dict:
    """For the report: the plan's hash, forced changes, and plan vs what was analysed.

    `analysed` has the plan's keys the report can observe (evals, alpha, primary
    comparison, seeds, test); only those keys are compared.
    """
    stored = read_plan(run_dir)
    if stored is None:
        return {"hash": None, "line": "no analysis plan was fixed before training"}
    planned = {k: stored["plan"].get(k) for k in analysed}
    differences = plan_changes(planned, analysed)
    replaced = stored.get("replaced", [])
    when = "written after training" if stored.get("after_training") else "fixed before training"
    line = f"analysis plan {stored['hash']} ({when})"
    if replaced:
        line += (
            f"; CHANGED after training began (forced), replacing "
            f"{', '.join(r['hash'] for r in replaced)}"
        )
    line += (
        "; the analysis differs from the plan: " + "; ".join(differences)
        if differences
        else "; the analysis matches the plan"
    )
    return {
        "hash": stored["hash"],
        "forced_changes": [r["hash"] for r in replaced],
        "differences": differences,
        "line": line,
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
