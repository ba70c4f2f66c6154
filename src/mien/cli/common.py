"""Helpers every command module shares: output to the terminal, errors, ``--output json``.

Messages for people go to stderr; results (rendered personas, tables, JSON) go to stdout so
they can be piped. When a command was asked for ``--output json``, its errors are JSON too:
one object ``{"code", "message", "details"}`` on stderr (:func:`error`). Rich is imported
only when a table or colour is actually printed.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
from enum import Enum
from typing import Any, NoReturn

# The error codes of JSON errors, by exit status (a failure may name a more precise one).
ERROR_CODES = {1: "failed", 2: "usage", 124: "timeout", 126: "refused", 130: "interrupted"}

# Set by the entry point when the command line asks for ``--output json``.
json_errors = False


class CommandFailed(Exception):
    """An expected failure: print the message and exit with ``status``."""

    def __init__(
        self,
        message: str,
        status: int = 1,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or ERROR_CODES.get(status, "error")
        self.details = details or {}


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


def fail(
    message: str,
    status: int = 1,
    *,
    code: str | None = None,
    details: dict[str, Any] | None = None,
) -> NoReturn:
    raise CommandFailed(message, status, code=code, details=details)


def wants_json(argv: list[str]) -> bool:
    """Whether a command line asks for ``--output json`` (``-o json`` in the fleet commands)."""
    for i, arg in enumerate(argv):
        if arg == "--":
            return False
        if arg in ("--output=json", "-ojson"):
            return True
        if arg in ("--output", "-o") and argv[i + 1 : i + 2] == ["json"]:
            return True
    return False


def error(
    message: str, *, status: int = 1, code: str | None = None, details: dict[str, Any] | None = None
) -> None:
    """Report an error on stderr: ``mien: message``, or one JSON object when the command
    was asked for ``--output json``."""
    if json_errors:
        payload = {
            "code": code or ERROR_CODES.get(status, "error"),
            "message": message,
            "details": {"exit_status": status, **(details or {})},
        }
        sys.stderr.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
        return
    sys.stderr.write(f"mien: {message}\n")


def failed(exc: CommandFailed) -> None:
    """Report an expected failure (see :func:`error`)."""
    error(str(exc), status=exc.status, code=exc.code, details=exc.details)


def warn(message: str) -> None:
    sys.stderr.write(f"mien: warning: {message}\n")


def info(message: str) -> None:
    sys.stderr.write(f"{message}\n")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def done(output: OutputFormat, message: str, data: dict[str, Any]) -> None:
    """The outcome of a command that changes something: ``message`` on stderr for people,
    ``data`` as JSON on stdout for ``--output json``."""
    if output is OutputFormat.json:
        print_json(data)
    else:
        info(message)


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


# Columns of prose that may wrap; every other column (ids, names, keys, times, hashes) is
# shown whole on one line.
PROSE = ("description", "why", "detail", "details", "error", "value", "what", "message")


def table(
    columns: list[str],
    rows: list[list[Any]],
    title: str | None = None,
    wrap: tuple[str, ...] = PROSE,
    width: int | None = None,
) -> None:
    """Print rows as a table on stdout without ever cutting a value short.

    Key columns stay on one line and prose columns fold; when the key columns alone do not
    fit the terminal, each row is printed as ``column: value`` lines instead."""
    from rich.console import Console
    from rich.table import Table

    out = Console(
        width=width, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=False
    )
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    needed = 0
    for i, column in enumerate(columns):
        longest = max([len(column), *(len(r[i]) for r in cells)])
        needed += (min(longest, 12) if column in wrap else longest) + 3
    if needed > out.width:
        if title:
            out.print(esc(title), style="bold")
        pad = max(len(c) for c in columns)
        for row in cells:
            for column, value in zip(columns, row, strict=True):
                out.print(f"{column:<{pad}}  {esc(value)}", soft_wrap=True)
            out.print()
        return
    t = Table(title=title, show_edge=False, header_style="bold", title_justify="left")
    for column in columns:
        if column in wrap:
            t.add_column(column, overflow="fold")
        else:
            t.add_column(column, no_wrap=True)
    for row in cells:
        t.add_row(*(esc(v) for v in row))
    out.print(t)


def paragraphs(text: str) -> str:
    """Help text as Typer's rich mode wants it: each prose paragraph on one line (it keeps
    single newlines), indented example lines kept as they are, and brackets that are not
    ``[bold]`` markup shown as brackets."""
    out = []
    for para in inspect.cleandoc(text).split("\n\n"):
        para = re.sub(r"\[(?!/?bold\])", r"\\[", para)
        if para.startswith("  "):
            # Typer dedents the help after its first paragraph; an empty markup tag in
            # front keeps the examples' indentation through that.
            out.append("\n".join("[bold][/bold]" + line for line in para.split("\n")))
        else:
            out.append(" ".join(para.split("\n")))
    return "\n\n".join(out)
