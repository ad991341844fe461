"""Run-folder integrity: one writer at a time, outputs checked on reuse, unreadable outputs named.

Cheap by design: stages here are `runfolder.Stage`s on tmp folders with a few small
files, not pipeline runs; the lock is held by a tiny second Python process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benrl import runfolder
from benrl.errors import BenrlError
from benrl.evaluation.runner import load_scores
from benrl.records import read_json, read_jsonl
from benrl.run import Run
from benrl.runfolder import Stage, run_lock

ROWS = [{"id": f"r{i}", "sample": 0, "score": i / 10, "status": "ok"} for i in range(10)]


def finished_stage(tmp_path: Path) -> Stage:
    """A completed eval-like stage: summary.json and one JSONL of scored samples."""
    stage = Stage(tmp_path, "evals/pre", "cfg")
    with stage.running():
        stage.dir.mkdir(parents=True, exist_ok=True)
        (stage.dir / "honesty.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        (stage.dir / "summary.json").write_text(json.dumps({"honesty": {"n": 10, "failed": 0}}))
        (stage.dir / "sub").mkdir()
        (stage.dir / "sub" / "weights.bin").write_bytes(b"\0" * 64)
    return stage


def test_manifest_records_outputs_with_sizes_and_hashes(tmp_path: Path) -> None:
    stage = finished_stage(tmp_path)
    outputs = stage.read_manifest()["outputs"]
    assert sorted(outputs) == ["honesty.jsonl", "sub/weights.bin", "summary.json"]
    assert outputs["sub/weights.bin"]["size"] == 64 and len(outputs["summary.json"]["sha256"]) == 16
    assert stage.is_complete()


def _shorten(path: Path) -> None:
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-3]))


def _cut_mid_line(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _edit_score(path: Path) -> None:  # same size, different content
    path.write_text(path.read_text().replace('"score": 0.1', '"score": 0.9'))


def _delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    ("damage", "file", "said"),
    [
        (_shorten, "honesty.jsonl", "changed size"),
        (_cut_mid_line, "honesty.jsonl", "changed size"),
        (_edit_score, "honesty.jsonl", "changed content"),
        (_delete, "honesty.jsonl", "is missing"),
        (_delete, "sub/weights.bin", "is missing"),
        (_edit_score, "summary.json", "changed"),
    ],
)
def test_damaged_output_reruns_the_stage_with_a_warning(
    tmp_path: Path, capsys, damage, file: str, said: str
) -> None:
    stage = finished_stage(tmp_path)
    if file == "summary.json":
        (stage.dir / file).write_text('{"honesty": {"n": 10, "failed": 1}}')
    else:
        damage(stage.dir / file)
    assert stage.matches() and not stage.is_complete()
    assert said in stage.changed_outputs() and file.split("/")[-1] in stage.changed_outputs()
    run = Run.__new__(Run)  # should_run needs only force and the preflight hook
    run.force, run.preflight = frozenset(), None
    assert run.should_run(stage, "eval")
    assert "warning" in capsys.readouterr().err


def test_untouched_outputs_are_reused(tmp_path: Path, capsys) -> None:
    stage = finished_stage(tmp_path)
    run = Run.__new__(Run)
    run.force, run.preflight = frozenset(), None
    assert not run.should_run(stage, "eval")
    assert "skip evals/pre" in capsys.readouterr().err


def test_manifest_without_outputs_still_counts_as_complete(tmp_path: Path) -> None:
    stage = finished_stage(tmp_path)
    manifest = stage.read_manifest()
    del manifest["outputs"]  # written before outputs were recorded
    stage.manifest_path.write_text(json.dumps(manifest))
    assert stage.is_complete()


def test_jsonl_cut_mid_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    stage = finished_stage(tmp_path)
    _cut_mid_line(stage.dir / "honesty.jsonl")
    with pytest.raises(BenrlError, match=r"honesty\.jsonl:10: not valid JSON"):
        load_scores(stage.dir)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b'{"id": "a", "score": 1}\n{"id": "b", "sco', ":2: not valid JSON"),
        (b'{"id": "a", "score": 1}\n\xff\xfe\n', "not UTF-8"),
        (b'{"id": "a"}\n', "row 1 is not a scored sample"),
        (b"[1, 2]\n", "row 1 is not a scored sample"),
    ],
)
def test_unreadable_eval_samples_are_named(tmp_path: Path, content: bytes, said: str) -> None:
    (tmp_path / "summary.json").write_text('{"x": {"n": 1, "failed": 0}}')
    (tmp_path / "x.jsonl").write_bytes(content)
    with pytest.raises(BenrlError, match=said):
        load_scores(tmp_path)


@pytest.mark.parametrize(
    ("content", "said"), [(b'{"a": ', "summary.json:1: not valid JSON"), (None, "not found")]
)
def test_unreadable_summary_is_named(tmp_path: Path, content: bytes | None, said: str) -> None:
    if content is not None:
        (tmp_path / "summary.json").write_bytes(content)
        with pytest.raises(BenrlError, match=said):
            read_json(tmp_path / "summary.json")
    else:
        with pytest.raises(BenrlError, match=said):
            read_jsonl(tmp_path / "nothing.jsonl")


HOLD = """
import sys, time
from pathlib import Path
from benrl.runfolder import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_writer_is_refused_naming_folder_and_pid(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BenrlError) as caught, run_lock(tmp_path):
            pass
        assert str(tmp_path) in str(caught.value) and f"pid {holder.pid}" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path):  # the kernel dropped the killed holder's lock
        assert (tmp_path / ".lock").read_text() == str(os.getpid())


def test_lock_is_released_after_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), run_lock(tmp_path):
        raise RuntimeError("stage failed")
    with run_lock(tmp_path):  # non-blocking: would raise if the lock were still held
        assert (tmp_path / ".lock").read_text() == str(os.getpid())


def test_lock_on_a_path_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BenrlError, match="not writable"), run_lock(blocker / "run"):
        pass


def test_training_log_cut_by_a_kill_resumes(tmp_path: Path) -> None:
    from benrl.training.train import truncate_log

    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"ste')
    truncate_log(log, 2)
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'
    log.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(BenrlError, match=r"log\.jsonl:2: not valid JSON"):
        truncate_log(log, 2)


def test_inputs_are_hashed_once_per_stage_and_anew_for_the_next(
    tmp_path: Path, monkeypatch
) -> None:
    scenarios = tmp_path / "scenarios.jsonl"
    scenarios.write_text('{"id": "a"}\n')
    hashed = []
    real_hash = runfolder.hash_path
    monkeypatch.setattr(runfolder, "hash_path", lambda p: hashed.append(p) or real_hash(p))
    run = Run.__new__(Run)
    run.force, run.preflight = frozenset(), None
    stage = Stage(tmp_path, "evals/pre", "cfg", {"scenarios": scenarios})
    assert run.should_run(stage, "eval")
    with stage.running():  # the skip check and both manifests share one hash
        pass
    assert hashed == [scenarios]
    assert not run.should_run(Stage(tmp_path, "evals/pre", "cfg", {"scenarios": scenarios}), "eval")
    scenarios.write_text('{"id": "b"}\n')  # a changed input reruns the stage: a new Stage hashes
    assert run.should_run(Stage(tmp_path, "evals/pre", "cfg", {"scenarios": scenarios}), "eval")
    assert len(hashed) == 3
