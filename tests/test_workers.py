"""Stage units side by side (`benrl.workers`): where they run, what they keep, how they fail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from worker_units import fail_after_a_figure, note_where

from benrl.devices import cpu_threads
from benrl.errors import BenrlError
from benrl.report.results import stage_spans, stage_totals
from benrl.runfolder import Stage
from benrl.workers import Unit, run_units


def manifest(stage: Stage) -> dict:
    return json.loads(stage.manifest_path.read_text())


def units_of(tmp_path: Path, works: list[tuple]) -> list[Unit]:
    return [
        Unit(Stage(tmp_path, f"unit-{k}", "hash"), f"unit {k}", work, args)
        for k, (work, args) in enumerate(works)
    ]


def test_one_worker_runs_the_units_here_in_order(tmp_path):
    units = units_of(tmp_path, [(note_where, ("a",)), (note_where, ("b",))])
    run_units(units, workers=1)
    got = [manifest(u.stage) for u in units]
    assert [m["status"] for m in got] == ["complete", "complete"]
    assert [m["pid"] for m in got] == [os.getpid()] * 2
    assert [m["tag"] for m in got] == ["a", "b"]


@pytest.mark.skipif(cpu_threads() < 2, reason="workers need two cores")
def test_two_workers_run_units_in_processes_with_a_share_of_the_cores(tmp_path):
    units = units_of(tmp_path, [(note_where, (tag,)) for tag in "abcde"])
    run_units(units, workers=2)
    got = [manifest(u.stage) for u in units]
    assert all(m["status"] == "complete" for m in got)
    assert [m["tag"] for m in got] == list("abcde")  # each unit's own arguments
    pooled, last = got[:4], got[4]
    assert os.getpid() not in {m["pid"] for m in pooled}
    assert len({m["pid"] for m in pooled}) <= 2
    assert {m["threads"] for m in pooled} == {cpu_threads() // 2}
    # the fifth would run alone on half the cores: it runs here, on all of them
    assert last["pid"] == os.getpid() and last["threads"] == torch.get_num_threads()


def test_one_core_runs_every_unit_here(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a machine shared with other jobs
    units = units_of(tmp_path, [(note_where, (tag,)) for tag in "ab"])
    run_units(units, workers=2)
    assert [manifest(u.stage)["pid"] for u in units] == [os.getpid()] * 2


@pytest.mark.skipif(cpu_threads() < 2, reason="workers need two cores")
def test_a_failed_unit_raises_and_the_finished_ones_are_kept(tmp_path):
    works = [(note_where, ("a",)), (fail_after_a_figure, ("the judge is down",))]
    units = units_of(tmp_path, works + [(note_where, (tag,)) for tag in "cdef"])
    with pytest.raises(BenrlError, match="the judge is down"):
        run_units(units, workers=2)
    assert manifest(units[0].stage)["status"] == "complete"
    failed = manifest(units[1].stage)
    assert failed["status"] == "failed" and failed["reached"] is True  # figures it reached
    # later units either ran (a worker was free before the failure) or never started
    later = [u.stage for u in units[2:]]
    assert all(not s.manifest_path.exists() or manifest(s)["status"] == "complete" for s in later)


PARENT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from worker_units import sleep_long
from benrl.runfolder import Stage
from benrl.workers import Unit, run_units
root = Path({root!r})
run_units([Unit(Stage(root, f"u{{k}}", "h"), "", sleep_long, (str(root / f"pid{{k}}"),))
           for k in range(2)], 2)
"""


def start_parent(tmp_path: Path, **popen) -> tuple[subprocess.Popen, list[int]]:
    """A run whose two workers each sleep in a unit; return it and the workers' pids."""
    script = PARENT.format(tests=str(Path(__file__).parent), root=str(tmp_path))
    parent = subprocess.Popen([sys.executable, "-c", script], **popen)
    pid_files = [tmp_path / "pid0", tmp_path / "pid1"]
    deadline = time.monotonic() + 120
    while not all(p.is_file() and p.read_text() for p in pid_files):
        assert time.monotonic() < deadline and parent.poll() is None, "workers never started"
        time.sleep(0.2)
    return parent, [int(p.read_text()) for p in pid_files]


def wait_gone(pids: list[int], what: str) -> None:
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.skipif(cpu_threads() < 2, reason="workers need two cores")
def test_workers_die_with_a_killed_run(tmp_path):
    """A killed run leaves no worker writing into the folder its resumed run will use."""
    parent, workers = start_parent(tmp_path)
    parent.kill()
    parent.wait()
    wait_gone(workers, "a worker outlived the killed run")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups as on Linux")
@pytest.mark.skipif(cpu_threads() < 2, reason="workers need two cores")
def test_ctrl_c_stops_the_running_units_as_failed(tmp_path):
    """Ctrl-C reaches the run and its workers (one process group, as a terminal sends it):
    the units stop instead of finishing their minute, each marked failed for the resume."""
    parent, workers = start_parent(
        tmp_path,
        start_new_session=True,  # its own group, with Ctrl-C's default meaning
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.killpg(parent.pid, signal.SIGINT)
    assert parent.wait(timeout=30) != 0
    wait_gone(workers, "a worker outlived the interrupted run")
    for k in range(2):
        unit = json.loads((tmp_path / f"u{k}" / "manifest.json").read_text())
        assert unit["status"] == "failed"


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_stage_times_count_parts_side_by_side_once(tmp_path):
    spans = {
        "organism": [-5.0, 0.0],
        "arms/a-s0": [0.0, 10.0],
        "arms/b-s0": [2.0, 12.0],  # beside a-s0: 2 more seconds of wall time
        "arms/c-s0": [20.0, 25.0],
        "evals/pre": [30.0, 31.0],
    }
    assert stage_totals(spans) == {"organism": 5, "train": 17, "eval": 1, "total": 23}
    # manifests written before `started_epoch` carry only the start to the second
    for name, started, seconds in (
        ("evals/pre", "2026-01-01T00:00:00", 4.0),
        ("evals/x-s0", "2026-01-01T00:00:02", 4.0),
    ):
        folder = tmp_path / name
        folder.mkdir(parents=True)
        manifest = {"stage": name, "started": started, "seconds": seconds}
        (folder / "manifest.json").write_text(json.dumps(manifest))
    assert stage_totals(stage_spans(tmp_path))["eval"] == 6.0
