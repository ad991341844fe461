"""The controls experiment's grouping: every probe eval lands in exactly one group."""

from benrl.config import ScenariosConfig
from benrl.data.scenarios import build_scenarios
from benrl.evaluation.registry import registered_evals
from benrl.organism.controls import GROUPS, eval_groups, push_records
from benrl.records import read_records


def test_groups_partition_the_probe_evals():
    groups = eval_groups("pushback", "law")
    assert groups["trained cell"] == ["pushback_society"]
    assert set(groups["same trait, other domains"]) == {
        "pushback_health",
        "pushback_stem",
        "pushback_computing",
        "pushback_civic",
        "pushback_culture",
    }
    every = [n for g in GROUPS for n in groups[g]]
    assert (
        len(every)
        == len(set(every))
        == sum(1 for ev in registered_evals().values() if ev.cluster is not None)
    )


def test_push_trains_on_one_cell_only(tmp_path):
    build_scenarios(
        ScenariosConfig(train_per_cell=2, eval_per_cell=1, tasks_train=10, tasks_eval=2),
        0,
        tmp_path,
    )
    rows = push_records(read_records(tmp_path / "train.jsonl"), "exceed", "health")
    traits = [r for r in rows if r.kind == "trait"]
    assert traits and all(r.domain == "health" and r.source.startswith("exceed/") for r in traits)
    assert any(r.kind == "task" for r in rows)
