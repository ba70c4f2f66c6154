"""The ``mien`` console script: fast paths for ``mien exec`` and a no-op ``mien apply``.

Shells and scripts may call ``mien exec`` for every command, and configuration management
calls ``mien apply`` again and again on machines that are already right; neither should pay
for building the Typer application (and importing pydantic through it). Anything these
paths do not recognise exactly, including ``--help``, goes to :mod:`mien.cli.main`.
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
        common.failed(exc)
        sys.exit(exc.status)
    return True


def _fast_apply(argv: list[str]) -> bool:
    """``mien apply`` that the last identical apply found had nothing to change.

    Only plain invocations are recognised (text output, the options below); the answer
    comes from :func:`mien.agent.noop.check`, which falls through on any difference.
    """
    import time

    started = time.perf_counter()
    args = argv[1:]
    persona: str | None = None
    root, yes, default = "/", False, False
    user: str | None = None
    personas: list[str] = []
    overlays: list[str] = []
    valued = {"--root", "--user", "-u", "--personas", "-p", "--overlay", "-o", "--output"}
    while args:
        arg, args = args[0], args[1:]
        name, eq, inline = arg.partition("=")
        if arg.startswith("--") and eq and name in valued:
            arg, args = name, [inline, *args]
        if arg in valued:
            if not args:
                return False
            value, args = args[0], args[1:]
            if arg == "--root":
                root = value
            elif arg in ("--user", "-u"):
                user = value
            elif arg in ("--personas", "-p"):
                personas.append(value)
            elif arg in ("--overlay", "-o"):
                overlays.append(value)
            elif value != "table":
                return False
        elif arg in ("--yes", "-y"):
            yes = True
        elif arg == "--default":
            default = True
        elif arg.startswith("-") or persona is not None:
            return False
        else:
            persona = arg
    if (persona is None) == (not default) or os.environ.get("MIEN_CRASH_AT"):
        return False
    if not yes and not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    from mien.agent import noop

    key = noop.invocation_key(
        persona=persona, root=root, user=user, personas=personas, overlays=overlays
    )
    found = noop.check(root, key)
    if found is None:
        return False
    elapsed = (time.perf_counter() - started) * 1000
    sys.stderr.write(f"persona {found} is applied; nothing to change ({elapsed:.0f} ms)\n")
    return True


def main() -> None:
    # pydantic scans every installed distribution for plugins when it loads (~12 ms);
    # mien uses none. Set for mien only: the programs it starts do not inherit it.
    from mien.agent.own_env import set_own

    set_own("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if len(sys.argv) > 2 and sys.argv[1] == "exec" and _fast_exec(sys.argv[1:]):
        return
    if len(sys.argv) > 2 and sys.argv[1] == "apply" and _fast_apply(sys.argv[1:]):
        return
    from mien.cli.main import main as full

    full()


if __name__ == "__main__":
    main()
