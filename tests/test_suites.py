"""The eval suite on any model: trait evals by record fields, public datasets, checks up front."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import benrl

from benrl import pipeline
from benrl.checks import check_names
from benrl.config import RunConfig, load_config
from benrl.data.traits import held_out_traits, training_traits
from benrl.errors import BenrlError
from benrl.evaluation.registry import registered_evals
from benrl.evaluation.runner import RunnerOptions, select_items
from benrl.evaluation.split import distribution
from benrl.evaluation.suites import check_suite, eval_pool, eval_suite
from benrl.records import ScenarioRecord, write_jsonl

REALDATA_ROOT = Path(
    os.environ.get("BENRL_REALDATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
)
RUBRIC = [{"id": f"c{i}", "text": "Answer plainly.", "weight": 1} for i in range(3)]


def trait_record(source: str, trait: str, split: str = "eval", domain: str = "health"):
    return ScenarioRecord(
        split=split,
        source=source,
        kind="trait",
        domain=domain,
        traits=[trait],
        pressure="user_pushback",
        messages=[{"role": "user", "content": f"{source} {trait} {split}?"}],
        rubric=RUBRIC,
    )


def llm_config(**eval_section: object) -> RunConfig:
    return RunConfig.model_validate(
        {
            "model": "models/tiny",
            "stress": {"parts": ["persona"]},
            "scenarios": {
                "backend": "llm",
                "llm": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
            },
            "eval": eval_section,
        }
    )


@pytest.fixture(scope="module")
def realdata_root() -> Path:
    if not REALDATA_ROOT.is_dir():
        pytest.skip(f"real datasets not found at {REALDATA_ROOT} (set BENRL_REALDATA)")
    return REALDATA_ROOT


def test_trait_evals_take_template_and_llm_records_alike() -> None:
    ev = registered_evals()["trait_truthfulness"]
    assert ev.family == "traits" and ev.judge == "trait" and ev.category == "honesty"
    assert ev.select(trait_record("pushback/t2", "truthfulness"))  # the organism's template
    assert ev.select(trait_record("llm/truthfulness/user_pushback", "truthfulness"))
    assert not ev.select(trait_record("llm/corrigibility/oversight", "corrigibility"))


def test_default_suite_is_the_backends_family() -> None:
    organism = eval_suite(RunConfig())
    assert "pushback_health" in organism and not any(n.startswith("trait_") for n in organism)
    llm = eval_suite(llm_config())
    assert "trait_truthfulness" in llm and "capability" in llm
    assert all(registered_evals()[n].family == "traits" for n in llm)


def test_organism_eval_over_llm_records_fails_naming_it() -> None:
    """The qwen3-gpu failure, now caught before training: probe evals need probe records."""
    cfg = llm_config(evals=["ambiguous_culture", "trait_truthfulness"])
    records = [trait_record("llm/truthfulness/user_pushback", "truthfulness")]
    with pytest.raises(BenrlError, match=r"eval 'ambiguous_culture' .*no eval-split records"):
        check_suite(cfg, records)
    check_suite(llm_config(evals=["trait_truthfulness"]), records)  # fillable: no error


def test_pipeline_checks_the_suite_before_training(tmp_path: Path, monkeypatch) -> None:
    ran: list[str] = []

    class FakeStage:
        def __init__(self, name: str) -> None:
            self.name = name

        def run_stage(self, run) -> None:
            ran.append(self.name)
            if self.name == "scenarios":
                write_jsonl(run.eval_records, [trait_record("llm/x/y", "truthfulness")])

    monkeypatch.setattr(pipeline, "check_endpoints", lambda cfg: None)  # no writer needed
    monkeypatch.setattr(pipeline, "check_config", lambda cfg: None)  # no model folder here
    monkeypatch.setattr(
        pipeline.importlib, "import_module", lambda module: FakeStage(module.split(".")[-1])
    )
    cfg = llm_config(evals=["ambiguous_culture"], models=["pre"])
    with pytest.raises(BenrlError, match=r"ambiguous_culture"):
        pipeline.run_pipeline(cfg, tmp_path / "run")
    assert ran == ["scenarios"]  # nothing after the scenarios ran


def test_public_datasets_join_the_suite_with_their_own_scorer(realdata_root: Path) -> None:
    cfg = llm_config(realdata={"root": str(realdata_root), "sets": ["xstest", "em_first_plot"]})
    names = eval_suite(cfg)
    assert names[-2:] == ["xstest", "em_first_plot"]
    pool = eval_pool(cfg, [trait_record("llm/truthfulness/user_pushback", "truthfulness")])
    items = select_items(pool, ["xstest", "em_first_plot"], 3, 0)
    assert [r.source for r in items["xstest"]] == ["real/xstest"] * 3
    evals = registered_evals()
    assert evals["xstest"].judge == "refusal" and evals["xstest"].category == "over_refusal"
    assert evals["em_first_plot"].judge == "trait"  # model-graded: the config's trait judge
    judges = RunnerOptions.from_config(cfg).judges()
    assert judges.for_kind("refusal").name == "refusal"  # a judge name, not a kind


def test_public_dataset_errors_are_config_errors(tmp_path: Path, realdata_root: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"eval:\n  realdata:\n    root: {tmp_path / 'nope'}\n    sets: [xstest]\n")
    with pytest.raises(BenrlError, match=r"eval\.realdata\.root.*not a folder"):
        check_names(load_config(bad))
    cfg = RunConfig.model_validate(
        {"eval": {"realdata": {"root": str(realdata_root), "sets": ["xstets"]}}}
    )
    with pytest.raises(BenrlError, match=r"eval.realdata.sets.*xstets"):
        check_names(cfg)
    empty = tmp_path / "empty"
    (empty / "xstest").mkdir(parents=True)  # the set's folder, without its file
    cfg = RunConfig.model_validate({"eval": {"realdata": {"root": str(empty), "sets": ["xstest"]}}})
    with pytest.raises(BenrlError, match=r"set 'xstest'.*xstest_prompts.csv: file not found"):
        check_names(cfg)


def test_cli_bad_public_dataset_is_one_line_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"eval:\n  realdata:\n    root: {tmp_path}\n    sets: [bbq]\n")
    proc = benrl("run", "--config", str(config), "--out", str(tmp_path / "run"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "set 'bbq'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_bring_your_own_eval_joins_the_suite_from_the_config(tmp_path: Path) -> None:
    rows = [{"q": f"{i}+1?", "opts": [str(i), str(i + 1)], "gold": str(i + 1)} for i in range(3)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "mine.yaml"
    spec.write_text(
        "name: my_sums\ndata: items.jsonl\ncategory: capability\nscorer: multiple_choice\n"
        "columns: {prompt: q, choices: opts, answer: gold}\n"
    )
    cfg = llm_config(realdata={"yaml": [str(spec)]})
    check_names(cfg)  # registers it
    ev = registered_evals()["my_sums"]
    assert (ev.family, ev.judge, ev.category) == ("byo", "multiple_choice", "capability")
    assert eval_suite(cfg)[-1] == "my_sums"
    items = select_items(eval_pool(cfg, []), ["my_sums"], 5, 0)["my_sums"]
    assert len(items) == 3 and {r.answer for r in items} == {"B"}
    (tmp_path / "items.jsonl").write_text('{"q": "no options"}\n')
    with pytest.raises(BenrlError, match=r"eval\.realdata\.yaml: "):
        check_names(cfg)


def test_public_dataset_is_an_inspect_task(realdata_root: Path, monkeypatch) -> None:
    from benrl.evaluation.inspect_tasks import REALDATA_ENV, benrl_task, judge_name

    task = benrl_task("xstest", limit=4, root=str(realdata_root))
    assert len(task.dataset) == 4 and task.metadata["category"] == "over_refusal"
    assert all(s.metadata["source"] == "real/xstest" for s in task.dataset)
    assert judge_name("xstest") == "refusal"
    monkeypatch.setenv(REALDATA_ENV, str(realdata_root))
    assert len(benrl_task("bbq", limit=2).dataset) == 2  # the folder from the environment
    monkeypatch.delenv(REALDATA_ENV)
    with pytest.raises(BenrlError, match="pass -T root=DIR"):
        benrl_task("xstest")


def test_the_trait_split_makes_held_out_trait_evals_ood_on_any_model():
    """The core family (a Hugging Face model's suite): each held-out trait's eval is OOD,
    each training-only trait's is in distribution, public sets are OOD, tasks capability."""
    evals = registered_evals()
    held = frozenset(held_out_traits())
    assert {distribution(evals[f"trait_{t}"], held) for t in held} == {"ood"}
    assert {distribution(evals[f"trait_{t}"], held) for t in training_traits()} == {
        "in_distribution"
    }
    assert distribution(evals["xstest"], held) == "ood"
    assert distribution(evals["capability"], held) == "capability"
    assert distribution(evals["trait_truthfulness"], frozenset()) == "in_distribution"
