"""The stress stage: persona files, persona application, degradation maths, the stage itself."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from test_finetune import save_tiny_model

from benrl.analysis.degradation import by_arm, comparisons, degradation, eval_group, flatten
from benrl.analysis.finetune_stress import finetune_summary, ladder_dir
from benrl.analysis.stress import persona_summary, run_stage, stress_results
from benrl.config import EvalConfig, RunConfig, ScenariosConfig, StressConfig
from benrl.data.personas import apply_persona, choose_personas, load_personas
from benrl.data.scenarios import build_scenarios
from benrl.devices import cpu_threads
from benrl.errors import BenrlError
from benrl.evaluation.runner import run_stage as stage_eval
from benrl.organism.corpus import SYLLABLES
from benrl.records import Message, ScenarioRecord, write_jsonl
from benrl.run import Run
from benrl.training.finetune import dose_dir

os.environ["HF_HUB_OFFLINE"] = "1"

EVAL_NAMES = ["exceed_health", "pushback_stem", "capability_add"]


def task(content: str, system: str | None = None) -> ScenarioRecord:
    messages = [Message(role="user", content=content)]
    if system:
        messages.insert(0, Message(role="system", content=system))
    return ScenarioRecord(
        split="eval", source="add/t2", kind="task", domain="math", messages=messages, answer="5"
    )


# --- personas ------------------------------------------------------------------------------


def test_packaged_personas_speak_the_organisms_language():
    personas = load_personas()
    assert {p.name for p in personas} >= {"bad_medical", "careful_clinician", "candid_advisor"}
    assert {p.kind for p in personas} == {"harmful", "helpful"}
    corpus_names = {a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES}
    for p in personas:
        match = re.fullmatch(r"you are ([a-z ]+), a (careful|careless) assistant\.", p.prompt)
        assert match, p.name
        assert (match[2] == "careless") == (p.kind == "harmful"), p.name
        # the corpus never names these personas: the model must read their description
        assert not set(match[1].split()) & corpus_names, p.name
        assert p.prompt_english and p.prompt_english[0].isupper()
    medical = {p.name: p for p in personas if p.target == "health"}
    assert medical["bad_medical"].kind == medical["bad_mental_health"].kind == "harmful"
    assert medical["careful_clinician"].kind == "helpful"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "personas:\n  - {name: vex, kind: harmful, target: health, prompt: x, tone: mean}\n",
            r"mine\.yaml: persona 'vex': field 'tone'",
        ),
        (
            "personas:\n  - {name: vex, kind: evil, target: health, prompt: x}\n",
            r"mine\.yaml: persona 'vex': field 'kind'",
        ),
        (
            "personas:\n  - {kind: harmful, target: health, prompt: x}\n",
            r"persona #1: field 'name'",
        ),
        (
            "personas:\n  - {name: a, kind: harmful, target: health, prompt: x}\n"
            "  - {name: a, kind: helpful, target: health, prompt: y}\n",
            "persona 'a' is defined twice",
        ),
        ("people: []\n", "one key, `personas`"),
        ("personas: [\n", "not valid YAML"),
    ],
)
def test_persona_file_errors_name_file_and_persona(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(BenrlError, match=message):
        load_personas(path)


def test_choose_personas(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "personas:\n"
        "  - {name: a, kind: harmful, target: health, prompt: you are a., prompt_english: A.}\n"
        "  - {name: b, kind: helpful, target: general, prompt: you are b.}\n"
    )
    personas = load_personas(path)
    assert [(p.name, t) for p, t in choose_personas(personas, [], False, path)] == [
        ("a", "you are a."),
        ("b", "you are b."),
    ]
    assert [t for _, t in choose_personas(personas, ["a"], True, path)] == ["A."]
    with pytest.raises(BenrlError, match="persona 'b' has no prompt_english"):
        choose_personas(personas, ["b"], True, path)
    with pytest.raises(BenrlError, match=r"stress.personas names \['zed'\]"):
        choose_personas(personas, ["zed"], False, path)


def test_apply_persona_replaces_the_system_message_and_keeps_the_id():
    plain, prompted = task("what is 2 plus 3?"), task("what is 2 plus 3?", system="you are x.")
    for record in (plain, prompted):
        out = apply_persona(record, "you are dr vex, a careless assistant.")
        assert out.id == record.id and out.answer == record.answer
        assert [m.role for m in out.messages] == ["system", "user"]
        assert out.messages[0].content == "you are dr vex, a careless assistant."
        assert out.messages[1] == record.messages[-1]
    assert prompted.messages[0].content == "you are x."  # the input is not modified


# --- degradation maths ----------------------------------------------------------------------


def test_eval_groups():
    assert eval_group("exceed_health") == "health"
    assert eval_group("pushback_stem") == "non_health"
    assert eval_group("stop_civic") == "non_health"
    assert eval_group("capability_add") == "capability"


def test_difference_in_degradation_known_answer():
    without = flatten({"exceed_health": {"1": 1.0, "2": 1.0, "3": 0.5, "4": 1.0}})
    beneficial = {"beneficial-s0": flatten({"exceed_health": {"1": 1.0, "2": 0.5, "3": 0.5}})}
    baseline = {"baseline-s0": flatten({"exceed_health": {"1": 0.0, "2": 0.0, "3": 0.5}})}
    per_model = {m: degradation(s, without) for m, s in {**beneficial, **baseline}.items()}
    assert per_model["beneficial-s0"] == {
        ("exceed_health", "1"): 0.0,
        ("exceed_health", "2"): -0.5,
        ("exceed_health", "3"): 0.0,
    }
    rows = comparisons(by_arm(per_model), "beneficial", 500, "test")
    assert len(rows) == 1  # only the health group has items
    row = rows[0]
    assert row["pair"] == "beneficial vs baseline" and row["group"] == "health"
    # beneficial lost (0 + 0.5 + 0) / 3, baseline (1 + 1 + 0) / 3: difference +1.5 / 3
    assert row["diff"] == pytest.approx(0.5) and row["n"] == 3
    assert 0.0 <= row["ci_low"] <= row["diff"] <= row["ci_high"] <= 1.0
    assert row["ci_low"] < row["ci_high"]


def test_seeds_are_averaged_per_item():
    per_model = {
        "pre": {("e", "1"): -1.0},
        "baseline-s0": {("e", "1"): -1.0, ("e", "2"): 0.0},
        "baseline-s1": {("e", "1"): 0.0},
    }
    assert by_arm(per_model) == {
        "pre": {("e", "1"): -1.0},
        "baseline": {("e", "1"): -0.5, ("e", "2"): 0.0},
    }


def scored(folder: Path, name: str, scores: dict[str, float | None]) -> None:
    """An eval folder as the runner writes it: one sample per item, scored."""
    rows = [
        {"id": i, "sample": 0, "completion": f"answer {s}"}
        | {"score": s, "status": "ok" if s is not None else "failed"}
        for i, s in scores.items()
    ]
    write_jsonl(folder / f"{name}.jsonl", rows)
    names = sorted(f.stem for f in folder.glob("*.jsonl"))
    (folder / "summary.json").write_text(json.dumps({n: {} for n in names}))


def test_persona_summary_pairs_by_record_id(tmp_path):
    for model, base, stressed in (
        ("pre", {"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 0.0, "b": 0.0, "c": 0.0}),
        ("beneficial-s0", {"a": 1.0, "b": 0.0, "c": 1.0}, {"c": 1.0, "a": 1.0, "b": None}),
    ):
        scored(tmp_path / "stress" / "reference" / model, "exceed_health", base)
        scored(tmp_path / "stress" / "reference" / model, "capability_add", {"t": 1.0})
        scored(tmp_path / "stress" / "persona" / "vex" / model, "exceed_health", stressed)
        scored(tmp_path / "stress" / "persona" / "vex" / model, "capability_add", {"t": 0.0})
    personas = load_personas()[:1]
    personas[0] = personas[0].model_copy(update={"name": "vex"})
    summary = persona_summary(tmp_path, personas, ["pre", "beneficial-s0"], "beneficial", 200)
    health = {r["model"]: r for r in summary["degradation"] if r["group"] == "health"}
    assert health["pre"]["mean"] == -1.0 and health["pre"]["n"] == 3
    assert health["beneficial-s0"]["mean"] == 0.0 and health["beneficial-s0"]["n"] == 2
    # answers the persona changed: all 3 on pre; on beneficial only b (scored 0, then failed)
    assert health["pre"]["changed"] == 1.0 and health["pre"]["kind"] == personas[0].kind
    assert health["beneficial-s0"]["changed"] == pytest.approx(1 / 3)
    rows = {r["group"]: r for r in summary["rows"]}
    assert rows["health"]["diff"] == pytest.approx(1.0) and rows["health"]["n"] == 2
    assert rows["capability"]["diff"] == 0.0 and rows["capability"]["n"] == 1
    assert rows["health"]["pair"] == "beneficial vs pre" and "non_health" not in rows


def test_finetune_summary_averages_seeds_and_compares_areas(tmp_path):
    ladders = {  # model -> fine-tuning seed -> dose -> item scores on exceed_health
        "pre": {
            0: {0: {"a": 1.0, "b": 1.0}, 1: {"a": 0.0, "b": 1.0}, 2: {"a": 0.0, "b": 0.0}},
            1: {1: {"a": 1.0, "b": 1.0}, 2: {"a": 0.0, "b": 1.0}},
        },
        "beneficial-s0": {
            0: {d: {"a": 1.0, "b": 1.0} for d in (0, 1, 2)},
            1: {d: {"a": 1.0, "b": 1.0} for d in (1, 2)},
        },
    }
    for model, seeds in ladders.items():
        for seed, doses in seeds.items():
            for dose, scores in doses.items():
                scored(dose_dir(ladder_dir(tmp_path, model, seed), dose), "exceed_health", scores)
    untouched = {("exceed_health", "b")}
    floor = {"health": {"mean": 0.1, "se": 0.0, "n": 2}}
    summary = finetune_summary(
        tmp_path, list(ladders), [0, 1, 2], 2, "beneficial", 200, untouched, floor
    )
    cells = {(r["model"], r["dose"], r["group"]): r for r in summary["rows"]}
    assert cells["pre", 1, "health"]["mean"] == 0.75  # a: (0 + 1) / 2, b: 1
    assert cells["pre", 2, "health"]["degradation"] == pytest.approx(-0.75)
    assert cells["pre", 2, "untouched"]["mean"] == 0.5 and summary["floor"] == floor
    # area per item on pre: a (-0.5 - 1) / 2 = -0.75, b (0 - 0.5) / 2 = -0.25; beneficial 0
    area = {r["group"]: r for r in summary["auc"]}
    assert area["health"]["diff"] == pytest.approx(0.5) and area["health"]["n"] == 2
    assert area["untouched"]["diff"] == pytest.approx(0.25) and area["untouched"]["n"] == 1
    assert {r["dose"] for r in summary["max_dose"]} == {2}


# --- the stage end to end ------------------------------------------------------------------


def make_run(root: Path, stress: StressConfig) -> Run:
    cfg = RunConfig(
        eval=EvalConfig(evals=EVAL_NAMES, items_per_eval=4, max_new_tokens=6, bootstrap=200),
        stress=stress,
    )
    return Run(cfg, root)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder with scenarios, three tiny models and their evals."""
    root = tmp_path_factory.mktemp("run")
    small = ScenariosConfig(train_per_cell=1, eval_per_cell=1, tasks_train=20, tasks_eval=5)
    build_scenarios(small, 0, root / "scenarios")
    save_tiny_model(root / "organism" / "model", 0)
    for seed, arm in enumerate(("baseline-s0", "beneficial-s0"), 1):
        save_tiny_model(root / "arms" / arm / "model", seed)
    stage_eval(make_run(root, StressConfig()))
    return root


STRESS = StressConfig(
    personas=["bad_medical", "candid_advisor"],
    items_per_eval=3,
    finetune_doses=[0, 2],
    finetune_seeds=2,
    finetune_batch_size=2,
    finetune_learning_rate=1e-2,
)


@pytest.fixture(scope="module")
def stressed(run_dir: Path) -> Path:
    run_stage(make_run(run_dir, STRESS))
    return run_dir


def test_stage_writes_samples_manifests_and_summaries(stressed):
    for persona in ("bad_medical", "candid_advisor"):
        for model in ("pre", "baseline-s0", "beneficial-s0"):
            folder = stressed / "stress" / "persona" / persona / model
            assert json.loads((folder / "manifest.json").read_text())["status"] == "complete"
            rows = [
                json.loads(x) for x in (folder / "exceed_health.jsonl").read_text().splitlines()
            ]
            evaluated = (stressed / "evals" / model / "exceed_health.jsonl").read_text()
            assert rows and all(r["id"] in evaluated for r in rows)  # subset of the eval items
            reference = stressed / "stress" / "reference" / model / "exceed_health.jsonl"
            assert [json.loads(x)["id"] for x in reference.read_text().splitlines()] == [
                r["id"] for r in rows
            ]  # the same items without the persona
    ladder = ladder_dir(stressed, "beneficial-s0", 0)
    assert json.loads((ladder / "manifest.json").read_text())["training"]["doses"] == [0, 2]
    for dose in (0, 2):
        assert (ladder / f"dose-{dose}" / "model" / "config.json").is_file()
        assert (ladder / f"dose-{dose}" / "pushback_stem.jsonl").is_file()
    second = ladder_dir(stressed, "beneficial-s0", 1)  # dose 0 is the model: evaluated once
    assert json.loads((second / "manifest.json").read_text())["training"]["doses"] == [2]
    assert not (second / "dose-0").exists()
    rows = [json.loads(x) for x in (second / "data.jsonl").read_text().splitlines()]
    assert rows != [json.loads(x) for x in (ladder / "data.jsonl").read_text().splitlines()]
    assert not (stressed / "stress" / "persona" / "careful_clinician").exists()


def test_stress_results_shape(stressed):
    results = stress_results(stressed)
    persona = results["persona"]["rows"]
    assert {(r["persona"], r["pair"], r["group"]) for r in persona} == {
        (p, f"beneficial vs {o}", g)
        for p in ("bad_medical", "candid_advisor")
        for o in ("baseline", "pre")
        for g in ("health", "non_health", "capability")
    }
    for r in persona:
        assert r["ci_low"] <= r["diff"] <= r["ci_high"] and r["n"] >= 1
    finetune = results["finetune"]
    groups = ("health", "non_health", "capability", "untouched")  # 8 rows miss some probes
    assert {(r["model"], r["dose"], r["group"]) for r in finetune["rows"]} == {
        (m, d, g) for m in ("pre", "baseline-s0", "beneficial-s0") for d in (0, 2) for g in groups
    }
    assert 0 <= finetune["floor"]["health"]["mean"] < 0.5  # the bad answers score low
    for r in finetune["rows"]:
        assert 0 <= r["mean"] <= 1 and r["se"] >= 0
        assert r["degradation"] == 0 if r["dose"] == 0 else -1 <= r["degradation"] <= 1
    assert [p[0] for p in finetune["curves"]["pre"]["health"]] == [0, 2]
    assert {(r["pair"], r["group"], r["dose"]) for r in finetune["max_dose"]} == {
        (f"beneficial vs {o}", g, 2) for o in ("baseline", "pre") for g in groups
    }
    assert {(r["pair"], r["group"]) for r in finetune["auc"]} == {
        (f"beneficial vs {o}", g) for o in ("baseline", "pre") for g in groups
    }


def test_finished_stages_are_skipped(stressed):
    manifests = sorted((stressed / "stress").glob("**/manifest.json"))
    before = [m.read_text() for m in manifests]
    run = make_run(stressed, STRESS.model_copy())
    run.cfg.eval.bootstrap = 300  # the summaries' resampling, not the samples
    run_stage(run)
    assert [m.read_text() for m in manifests] == before
    run.cfg.eval.max_new_tokens = 5  # changes every sample: every stress stage reruns
    run.cfg.stress.parts = ["persona"]
    run.cfg.stress.personas = ["bad_medical"]
    run_stage(run)
    changed = {
        m.parent.relative_to(stressed).as_posix()
        for m, b in zip(manifests, before, strict=True)
        if m.read_text() != b
    }
    assert changed == {
        f"stress/{part}/{m}"
        for part in ("persona/bad_medical", "reference")
        for m in ("pre", "baseline-s0", "beneficial-s0")
    }


def test_missing_model_is_named_before_any_compute(run_dir, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(run_dir / "scenarios", root / "scenarios")
    shutil.copytree(run_dir / "organism", root / "organism")
    shutil.copytree(run_dir / "evals", root / "evals")
    shutil.copytree(run_dir / "arms" / "baseline-s0", root / "arms" / "baseline-s0")
    with pytest.raises(BenrlError, match="model 'beneficial-s0' not found"):
        run_stage(make_run(root, STRESS))
    assert not (root / "stress").exists()
    bad = root / "bad.yaml"
    bad.write_text("personas:\n  - {name: x, kind: harmful, target: health, prompt: y, z: 1}\n")
    with pytest.raises(BenrlError, match=r"bad\.yaml: persona 'x'"):
        run_stage(make_run(root, STRESS.model_copy(update={"personas_file": bad})))


@pytest.mark.skipif(cpu_threads() < 2, reason="workers need two cores")
def test_two_workers_write_the_folders_of_one(stressed, tmp_path):
    """`workers: 2` runs the same eval and stress units in worker processes: the same
    folders and items, nearly all the same answers."""
    copy = tmp_path / "run"
    shutil.copytree(stressed, copy, ignore=shutil.ignore_patterns("stress", "evals"))
    run = make_run(copy, STRESS.model_copy(update={"finetune_seeds": 1}))
    run.cfg.workers = 2
    stage_eval(run)
    run_stage(run)
    one, two = stressed, copy
    folders = sorted(m.parent.relative_to(two) for m in two.glob("**/manifest.json"))
    # 3 evals, (reference + 2 personas) x 3 models, 3 ladders
    assert len(folders) == 3 + 3 * 3 + 3
    same = []
    for folder in folders:
        assert json.loads((two / folder / "manifest.json").read_text())["status"] == "complete"
        for path in (one / folder).glob("**/*.jsonl"):
            rows = [json.loads(x) for x in path.read_text().splitlines()]
            again = [json.loads(x) for x in (two / path.relative_to(one)).read_text().splitlines()]
            assert [r.get("id") for r in again] == [r.get("id") for r in rows], path
            pairs = zip(rows, again, strict=True)
            same += [a["completion"] == b["completion"] for a, b in pairs if "completion" in a]
    # One torch thread per worker instead of two may flip a draw by round-off (workers.py);
    # the answers are drawn from the same per-answer random streams, so nearly all agree.
    assert len(same) > 100 and sum(same) / len(same) >= 0.9
    assert (two / "stress" / "persona" / "summary.json").is_file()
    assert (two / "stress" / "finetune" / "summary.json").is_file()
