"""Progress of long work on stderr: a spinner with elapsed and expected time, only on a terminal.

The library never draws anything: the CLI wraps a call expected to take more than
:data:`MIN_SECONDS` (the plan's ``expected_seconds``, :mod:`dsecli.diffusion.plan`) in
:func:`solve_spinner`. Nothing is shown when stderr is not a terminal (a pipe, a log file) or
with ``--quiet``, so scripted output never gets control characters. The spinner is redrawn by
rich's own thread, so it keeps time while the main thread is inside a long LAPACK call (torch
releases the GIL there).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["MIN_SECONDS", "show_progress", "format_seconds", "solve_spinner", "BatchBar"]

# a solve expected to take less than this shows nothing
MIN_SECONDS = 3.0


def show_progress(expected_seconds: float | None, *, quiet: bool, is_terminal: bool) -> bool:
    """True when progress is worth showing: a terminal, not quiet, and more than :data:`MIN_SECONDS` expected.

    Returns
    -------
    bool
        Whether to draw the spinner.
    """
    return bool(is_terminal and not quiet and expected_seconds is not None and expected_seconds >= MIN_SECONDS)


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3.5 min"`` or ``"1.2 h"``.

    Returns
    -------
    str
        The duration for people.
    """
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@contextlib.contextmanager
def solve_spinner(label: str, expected_seconds: float | None, *, quiet: bool = False,
                  console: Any = None) -> Iterator[None]:
    """While the block runs: ``⠋ <label>  0:00:12 elapsed, ~40 s expected`` on stderr (transient).

    ``console`` is a rich console (default: stderr). Shown only when :func:`show_progress` says so.
    """
    if console is None:
        from dsecli.report.console import stderr_console

        console = stderr_console()
    if not show_progress(expected_seconds, quiet=quiet, is_terminal=console.is_terminal):
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    assert expected_seconds is not None
    progress = Progress(SpinnerColumn(), TextColumn(label, markup=False), TimeElapsedColumn(), TextColumn("elapsed,"),
                        TextColumn(f"~{format_seconds(expected_seconds)} expected"), console=console,
                        transient=True)
    progress.add_task(label, total=None)
    with progress:
        yield


class BatchBar:
    """``dse batch``'s progress bar on stderr (inputs done of all, elapsed, remaining, the input now
    running), only when stderr is a terminal and not ``quiet``; called as ``bar(done, total, label)``."""

    def __init__(self, quiet: bool, *, console: Any = None) -> None:
        self.progress = None
        self.task = None
        if console is None:
            from dsecli.report.console import stderr_console

            console = stderr_console()
        if quiet or not console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.description}", markup=False), console=console,
                                 transient=True)

    def __call__(self, done: int, total: int, label: str | None) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("", total=total)
        self.progress.update(self.task, completed=done, description=label or "")

    def stop(self) -> None:
        """Remove the bar (it is transient)."""
        if self.progress is not None:
            self.progress.stop()
