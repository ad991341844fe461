"""Work functions for the units of tests/test_workers.py, in a module of their own.

A worker process imports the module of each function it runs: this one imports only
torch (which a worker has already), not the test module's heavier imports.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from benrl.errors import BenrlError


def note_where(figures: dict, tag: str) -> None:
    """Say which process and how many torch threads ran the unit; write an output."""
    figures["pid"] = os.getpid()
    figures["threads"] = torch.get_num_threads()
    figures["tag"] = tag


def fail_after_a_figure(figures: dict, message: str) -> None:
    figures["reached"] = True
    raise BenrlError(message)


def sleep_long(figures: dict, pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)
