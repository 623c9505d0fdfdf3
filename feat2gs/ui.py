"""What the command line prints: messages shown literally (never parsed as rich markup, never wrapped mid-path)
and the logging set-up shared by every command.

Paths and error texts may contain ``[...]`` (``/data/[run1]``, YAML's "expected ',' or ']'"); they are printed
as :class:`rich.text.Text`, which rich does not interpret, on a console that does not wrap lines.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console(stderr=True, soft_wrap=True, highlight=False)

# the two options every command has
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars; errors only")]
Verbose = Annotated[int, typer.Option("--verbose", "-v", count=True, help="more messages (-vv: debug)")]


def say(message: str, label: str = "", style: str = "green") -> None:
    """``label: message`` on stderr, the label styled, the message literal."""
    text = Text(f"{label}", style=style) + Text(f" {message}" if label else message)
    console.print(text)


def warn(message: str) -> None:
    say(message, "warning:", "bold yellow")


def error(message: str) -> None:
    say(message, "error:", "bold red")


def print_table(header: list[str], rows: list[list[object]], title: str | None = None) -> None:
    """A table on stdout, cells printed literally; the first column (names) is never wrapped or cut, whatever the
    terminal width, the others fold onto more lines when they must."""
    table = Table(title=title)
    for i, name in enumerate(header):
        table.add_column(name, no_wrap=i == 0, min_width=max((len(str(r[0])) for r in rows), default=0) if i == 0
                         else None, overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    Console(highlight=False).print(table)


class _LiteralFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def configure_logging(verbosity: int = 0, quiet: bool = False) -> None:
    """Once per process: feat2gs's log records go to stderr as ``level: message`` lines (no wrapping).
    verbosity 0: warnings, 1: info, 2: debug; ``quiet`` (or verbosity -1): errors only."""
    verbosity = -1 if quiet else verbosity
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("feat2gs")
    if not any(getattr(h, "_feat2gs", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LiteralFormatter())
        handler._feat2gs = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)
