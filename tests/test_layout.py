"""Layout contracts: the import contract holds, one stage entry point, files stay small."""

import importlib
import subprocess
import sys
from pathlib import Path

from benrl.pipeline import STAGE_MODULES
from benrl.run import STAGES

SRC = Path(__file__).resolve().parents[1] / "src" / "benrl"
MAX_LINES = 600


def test_import_contract_is_kept() -> None:
    # The contract lives in pyproject.toml ([tool.importlinter]): the core never imports
    # the organism, and no two sibling modules or packages import each other in a circle.
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=SRC.parents[1], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_every_stage_module_exports_run_stage() -> None:
    assert tuple(STAGE_MODULES) == STAGES
    for name, module in STAGE_MODULES.items():
        assert callable(getattr(importlib.import_module(module), "run_stage", None)), name


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_every_module_says_what_it_is_for() -> None:
    missing = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if not p.read_text().lstrip().startswith('"""')
    ]
    assert not missing, f"modules without a docstring: {missing}"
