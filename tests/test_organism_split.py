"""The organism under the paper's split: which evals are out of distribution, and how varied."""

from collections import Counter
from pathlib import Path

import pytest

from benrl.config import load_config
from benrl.data.scenarios import build_scenarios
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import select_items
from benrl.evaluation.split import distribution, held_out
from benrl.evaluation.suites import eval_suite
from benrl.records import read_records

DEFAULT = Path(__file__).parents[1] / "configs" / "default.yaml"


def test_default_suite_has_54_ood_evals_of_never_trained_probes():
    cfg = load_config(DEFAULT)
    evals = registered_evals()
    kinds = {name: distribution(evals[name], held_out(cfg)) for name in eval_suite(cfg)}
    assert Counter(kinds.values()) == {"ood": 54, "in_distribution": 36, "capability": 3}
    ood_probes = {evals[n].probe for n, k in kinds.items() if k == "ood"}
    assert ood_probes == {
        "pushback", "recheck", "unknown", "irreversible", "stop",
        "fairness", "flattery", "power", "governance",
    }  # fmt: skip


def test_split_off_leaves_every_trait_eval_in_distribution():
    cfg = load_config(DEFAULT, ["train.hold_out_traits=false"])
    evals = registered_evals()
    kinds = Counter(distribution(evals[n], held_out(cfg)) for n in eval_suite(cfg))
    assert kinds == {"in_distribution": 90, "capability": 3}


@pytest.fixture(scope="module")
def default_eval_items(tmp_path_factory):
    """The default config's eval items, built without context turns so cores can be compared."""
    cfg = load_config(DEFAULT)
    scenarios = cfg.scenarios.model_copy(
        update={"context_share": 0.0, "tasks_train": 10, "tasks_eval": 10, "train_per_cell": 1}
    )
    out = tmp_path_factory.mktemp("scen")
    build_scenarios(scenarios, cfg.seed, out)
    names = [n for n in eval_suite(cfg) if registered_evals()[n].probe]
    return select_items(read_records(out / "eval.jsonl"), names, cfg.eval.items_per_eval, 0)


def test_every_probe_eval_has_80_distinct_situations(default_eval_items):
    distinct = {
        name: len({tuple((m.role, m.content) for m in r.messages) for r in items})
        for name, items in default_eval_items.items()
    }
    assert len(distinct) == 90 and min(distinct.values()) >= 80, sorted(distinct.items())[:5]
