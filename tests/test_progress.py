"""Progress bars: drawn on a terminal, silent elsewhere (tests, CI, logs), nested safely."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from benrl import progress


@pytest.fixture
def terminal(monkeypatch) -> io.StringIO:
    """Make the bars think stderr is an 80-column terminal; return what they draw."""
    screen = io.StringIO()
    monkeypatch.setattr(progress, "CONSOLE", Console(file=screen, force_terminal=True, width=80))
    return screen


def test_quiet_when_stderr_is_not_a_terminal(capsys) -> None:
    with progress.progress_bar("judging (grader)", 5) as advance:
        advance(5)
    assert advance is progress._noop
    assert capsys.readouterr().err == ""


def test_drawn_on_a_terminal_unless_turned_off(terminal, monkeypatch) -> None:
    with progress.progress_bar("judging (grader)", 3) as advance:
        advance(1)
        advance(2)
    assert advance is not progress._noop and "judging (grader)" in terminal.getvalue()
    monkeypatch.setenv("BENRL_PROGRESS", "0")
    with progress.progress_bar("judging (grader)", 3) as advance:
        assert advance is progress._noop


def test_a_bar_inside_a_live_bar_is_drawn_without_error(terminal) -> None:
    with progress.progress_bar("training", 10) as outer:
        with progress.progress_bar("judging (grader)", 4) as inner:
            inner(4)
        outer(10)
    assert "training" in terminal.getvalue() and "judging (grader)" in terminal.getvalue()
