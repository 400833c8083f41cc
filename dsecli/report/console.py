"""The consoles of the command line: reports on standard output, messages and progress on stderr.

The CLI prints through these (:func:`dsecli.cli._app.emit`, ``warning:``/``error:`` lines); rich is
imported only here and in the other modules of :mod:`dsecli.report`.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["PIPE_WIDTH", "stderr_console", "stdout_console"]


def stderr_console() -> Any:
    """The console of messages and progress on standard error (soft-wrapped, no highlighting).

    Messages quote data (file names, keys, dataset paths): neither markup (``[x]``) nor emoji codes
    (``:x:``) are interpreted."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


# Width of the console when standard output is not a terminal (a pipe or a file): wide enough that
# rich never folds or cuts a cell ("…"); tables take their natural width, not this one.
PIPE_WIDTH = 100_000


def stdout_console() -> Any:
    """The console of reports on standard output: the terminal's width on a terminal; on a pipe or file a
    width no table reaches, so that nothing is cut or folded. Reports quote data (keys, names): neither
    markup nor emoji codes are interpreted."""
    from rich.console import Console

    console = Console(highlight=False, markup=False, emoji=False)
    if console.is_terminal:
        return console
    return Console(file=_TrimmedLines(sys.stdout), highlight=False, width=PIPE_WIDTH, no_color=True,
                   color_system=None, soft_wrap=False, markup=False, emoji=False)


class _TrimmedLines:
    """A text stream that passes whole lines on to ``target`` without their trailing blanks (rich pads a
    table's title and caption lines to the table's width)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.pending = ""

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        if lines:
            self.target.write("".join(line.rstrip() + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.target.write(self.pending.rstrip())
            self.pending = ""
        self.target.flush()

    def isatty(self) -> bool:
        return False
