"""The ``mien`` console script: a fast path for ``mien exec``, then the full CLI.

Shells and scripts may call ``mien exec`` for every command, so it must not pay for building
the Typer application (and importing pydantic through it). Everything else, including
``mien exec --help``, goes to :mod:`mien.cli.main`.
"""

from __future__ import annotations

import os
import sys


def _fast_exec(argv: list[str]) -> bool:
    """``mien exec [--root DIR] [-v] [--] CMD...`` without building the Typer app.

    Shims and scripts call ``mien exec`` for every command; this keeps its start-up to the
    interpreter and the router. Anything else (``--help``, unknown options) goes to Typer.
    """
    args = argv[1:]
    root, verbose = "/", False
    while args and args[0] != "--" and args[0].startswith("-"):
        if args[0] == "--root" and len(args) > 1:
            root, args = args[1], args[2:]
        elif args[0].startswith("--root="):
            root, args = args[0].split("=", 1)[1], args[1:]
        elif args[0] in ("-v", "--verbose"):
            verbose, args = True, args[1:]
        else:
            return False
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        return False
    from pathlib import Path

    from mien.cli import common
    from mien.cli.machine.execute import exec_command

    try:
        exec_command(args, Path(root), verbose)
    except common.CommandFailed as exc:
        common.error(str(exc))
        sys.exit(exc.status)
    return True


def main() -> None:
    # pydantic scans every installed distribution for plugins when it loads (~12 ms);
    # mien uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if len(sys.argv) > 2 and sys.argv[1] == "exec" and _fast_exec(sys.argv[1:]):
        return
    from mien.cli.main import main as full

    full()


if __name__ == "__main__":
    main()
