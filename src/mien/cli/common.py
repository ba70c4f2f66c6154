"""Helpers every command module shares: output to the terminal, errors, ``--output json``.

Messages for people go to stderr; results (rendered personas, tables, JSON) go to stdout so
they can be piped. Rich is imported only when a table or colour is actually printed.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from typing import Any, NoReturn


class CommandFailed(Exception):
    """An expected failure: print the message and exit with ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


def fail(message: str, status: int = 1) -> NoReturn:
    raise CommandFailed(message, status)


def error(message: str) -> None:
    """Print an error line on stderr (``mien: message``)."""
    sys.stderr.write(f"mien: {message}\n")


def warn(message: str) -> None:
    sys.stderr.write(f"mien: warning: {message}\n")


def info(message: str) -> None:
    sys.stderr.write(f"{message}\n")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def console(stderr: bool = False) -> Any:
    """A Rich console (imported lazily); plain when NO_COLOR is set or not a terminal."""
    from rich.console import Console

    return Console(
        stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True
    )


def plural(count: int, word: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def esc(text: object) -> str:
    """Text from data (paths, messages, values) made safe to embed in Rich markup."""
    from rich.markup import escape

    return escape(str(text))


def table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """Print rows as a Rich table on stdout."""
    from rich.table import Table

    t = Table(title=title, show_edge=False, header_style="bold")
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console().print(t)
