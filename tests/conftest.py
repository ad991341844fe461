"""Shared fixtures: the smoke run (`benrl run` on configs/smoke.yaml), built once per session.

Several test files read the same smoke run folder (pipeline contracts, the report in a
browser), so it is a session fixture: the organism and arms are trained once.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


def benrl(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "benrl.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def run_ok(*args: str) -> subprocess.CompletedProcess:
    proc = benrl(*args)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "smoke"
    run_ok("run", "--config", str(SMOKE), "--out", str(out))
    return out
