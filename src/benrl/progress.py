"""Rich progress bars for the long waits: eval generation, judging, LLM scenario writing.

A bar shows on stderr only when stderr is a terminal, so tests, CI and piped logs stay
quiet; `BENRL_PROGRESS=0` turns bars off in a terminal too. Every bar draws on one
shared console, so a bar inside another (a judge grading inside the training bar) is
stacked below it by rich (15+); an older rich that allows one live display at a time
makes the inner bar a no-op rather than an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.errors import LiveError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[int], None]
CONSOLE = Console(stderr=True)  # shared: rich nests live displays of one console only


def _noop(n: int = 1) -> None:
    return None


def enabled(console: Console) -> bool:
    return os.environ.get("BENRL_PROGRESS", "1") != "0" and console.is_terminal


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Advance]:
    """A transient bar of `total` steps; yields `advance(n)`, which is safe from any thread."""
    console = CONSOLE
    if total <= 1 or not enabled(console):
        yield _noop
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    try:
        progress.start()
    except LiveError:  # rich < 15 and another bar is live (e.g. training's): draw nothing
        yield _noop
        return
    task = progress.add_task(description, total=total)
    try:
        yield lambda n=1: progress.update(task, advance=n)
    finally:
        progress.stop()
