"""Arm mixtures: exact trait share, identical prompts for generic, pools by domain."""

import pytest

from benrl.config import ScenariosConfig
from benrl.data.scenarios import build_scenarios
from benrl.data.traits import held_out_traits
from benrl.errors import BenrlError
from benrl.records import read_records
from benrl.training.arms import batch_composition, build_mixture, rows_per_probe


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    out = tmp_path_factory.mktemp("scen")
    build_scenarios(
        ScenariosConfig(train_per_cell=2, eval_per_cell=1, tasks_train=40, tasks_eval=5), 0, out
    )
    return read_records(out / "train.jsonl")


def test_trait_fraction_is_exact(records):
    rows = build_mixture(records, "beneficial", 400, 0.05, 0)
    assert len(rows) == 400 and sum(r.kind == "trait" for r in rows) == 20
    assert all(r.kind == "task" for r in build_mixture(records, "baseline", 400, 0.05, 0))


def test_generic_sees_the_same_rows_as_beneficial(records):
    ids = [r.id for r in build_mixture(records, "beneficial", 200, 0.1, 3)]
    assert ids == [r.id for r in build_mixture(records, "generic", 200, 0.1, 3)]
    assert ids != [r.id for r in build_mixture(records, "beneficial", 200, 0.1, 4)]


def test_domain_pools(records):
    health = build_mixture(records, "health_only", 200, 0.5, 0)
    assert {r.domain for r in health if r.kind == "trait"} == {"health"}
    other = build_mixture(records, "no_health_science", 200, 0.5, 0)
    assert not {r.domain for r in other if r.kind == "trait"} & {"health", "science"}


def test_composition_and_errors(records):
    steps = batch_composition(build_mixture(records, "beneficial", 40, 0.25, 0), 8)
    assert len(steps) == 5 and sum(s.get("trait", 0) for s in steps) == 10
    with pytest.raises(BenrlError, match="unknown arm 'wizard'"):
        build_mixture(records, "wizard", 10, 0.1, 0)
    with pytest.raises(BenrlError, match="no records"):
        build_mixture([r for r in records if r.kind == "task"], "beneficial", 10, 0.5, 0)


def test_held_out_traits_never_enter_any_arm(records):
    held = frozenset(held_out_traits())
    for arm in ("beneficial", "generic", "health_only", "no_health_science"):
        rows = build_mixture(records, arm, 2000, 0.25, 0, held)
        trait_rows = [r for r in rows if r.kind == "trait"]
        assert len(trait_rows) == 500 and not any(held & set(r.traits) for r in trait_rows)
    # without the split the same pool does hold them: the filter, not the data, keeps them out
    rows = build_mixture(records, "beneficial", 2000, 0.25, 0)
    assert any(held & set(r.traits) for r in rows)


def test_trait_rows_are_spread_evenly_over_the_trained_probes(records):
    held = frozenset(held_out_traits())
    counts = rows_per_probe(build_mixture(records, "beneficial", 3600, 0.05, 0, held))
    assert set(counts) == {"ambiguous", "benign", "exceed", "hostile", "loophole", "rollout"}
    assert set(counts.values()) == {30}
    uneven = rows_per_probe(build_mixture(records, "beneficial", 100, 0.25, 0, held))
    assert sum(uneven.values()) == 25 and set(uneven.values()) == {4, 5}
