"""``mien exec``: run one command through the active persona's command routing table.

A restricted command is refused (``mien: 'CMD' is restricted by persona 'NAME'``, exit
status 126); an overridden one runs its replacement with the same arguments; anything else
runs as is. The command replaces the ``mien`` process, so its exit status, signals and
terminal are its own. 127 means the command (or an override's replacement) was not found.

This path reads ``/etc/mien/routes.json`` with :mod:`json` and imports no pydantic unless an
event has to be audited. See docs/command-router.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mien.cli.common import fail, info

_HELP = (
    "Run CMD through the persona's command routing table.\n\n"
    "A restricted command is refused with exit status 126; an overridden command runs its "
    "replacement with the same arguments and exit status; others run unchanged. Refusals "
    "and overrides are audited. 127: the command was not found.\n\n"
    "Put [bold]--[/bold] before CMD when options follow it: [bold]mien exec -- ls -la[/bold]."
)


def register(app: typer.Typer) -> None:
    app.command(
        "exec",
        help=_HELP,
        # Options end at CMD (so `mien exec ls -la` passes -la on), but an unknown option
        # before CMD is an error, never the command to run.
        context_settings={"allow_interspersed_args": False},
    )(exec_command)


def exec_command(
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="CMD", help="The command and its arguments.", show_default=False),
    ] = None,
    root: Annotated[
        Path,
        typer.Option("--root", help="Machine root whose routing table applies.", file_okay=False),
    ] = Path("/"),
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Say on stderr how the command was routed.")
    ] = False,
) -> None:
    from mien.agent import router, router_exec

    if not command:
        fail("no command given (mien exec [--root DIR] [-v] [--] CMD [ARGS...])", 2)
    try:
        table = router.load_table(root)
    except router.RouteError as exc:
        # Fail closed: an unreadable table must not quietly lift the persona's restrictions.
        fail(f"{exc}; refusing to run {command[0]!r}", router.REFUSED)
    if table is None:
        if verbose:
            path = router.host_path(root, router.ROUTES_PATH)
            info(f"mien: no routing table at {path} (no persona applied): running as is")
        table = router.RoutingTable(None)
    try:
        decision = table.route(command, router.routed_from(os.environ))
    except router.RouteError as exc:
        fail(str(exc), 2)
    if verbose and table.persona is not None:
        info(f"mien: {decision.reason}")
    done = router_exec.run(root, command, table=table)
    # Only reached when the command was refused or could not be started.
    if not done.audited:
        info(f"mien: warning: could not record '{decision.command}' in the audit log")
    fail(done.message, done.status)
