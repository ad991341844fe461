"""Scenario build: deterministic, schema-valid, splits disjoint by template family."""

import json

import pytest

from benrl.config import ScenariosConfig
from benrl.data.scenarios import build_scenarios
from benrl.errors import BenrlError
from benrl.records import ScenarioRecord, read_records

SMALL = ScenariosConfig(train_per_cell=2, eval_per_cell=2, tasks_train=30, tasks_eval=10)


def test_build_is_deterministic(tmp_path):
    build_scenarios(SMALL, 0, tmp_path / "a")
    build_scenarios(SMALL, 0, tmp_path / "b")
    for name in ("train.jsonl", "eval.jsonl", "card.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    build_scenarios(SMALL, 1, tmp_path / "c")
    assert (tmp_path / "a" / "train.jsonl").read_bytes() != (
        tmp_path / "c" / "train.jsonl"
    ).read_bytes()


def test_records_valid_and_families_disjoint(tmp_path):
    build_scenarios(SMALL, 0, tmp_path)
    train, evals = read_records(tmp_path / "train.jsonl"), read_records(tmp_path / "eval.jsonl")
    assert {r.split for r in train} == {"train"} and {r.split for r in evals} == {"eval"}
    assert not {r.source for r in train} & {r.source for r in evals}
    for record in train + evals:
        if record.kind == "trait":
            assert 3 <= len(record.rubric) <= 5 and all(c.check for c in record.rubric)
    ids = [r.id for r in train + evals]
    assert len(ids) == len(set(ids))
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["family_overlap"] == []
    assert card["totals"]["train_trait"] == sum(r.kind == "trait" for r in train)


def test_bad_record_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = ScenarioRecord(
        split="eval",
        source="x",
        kind="task",
        domain="math",
        answer="1.",
        messages=[{"role": "user", "content": "1?"}],
    )
    path.write_text(good.model_dump_json() + "\n" + '{"split": "eval"}\n')
    with pytest.raises(BenrlError, match=r"bad\.jsonl:2: bad record field"):
        read_records(path)


def test_record_must_end_with_user_turn():
    with pytest.raises(ValueError, match="must end with a user turn"):
        ScenarioRecord(
            split="eval",
            source="x",
            kind="task",
            domain="math",
            answer="1.",
            messages=[{"role": "assistant", "content": "hi"}],
        )
