"""Entry point of the ``mien`` command.

Builds the Typer application from one module per command group and turns every expected
failure into a message and an exit status, never a traceback: 0 success, 1 the operation
failed (invalid persona, failed apply, refused request), 2 a usage error, 126 a command
refused by the persona's routing table, 130 interrupted.

Command modules import only the standard library and Typer at module level; anything heavy
(pydantic, SQLAlchemy, httpx, the server) is imported inside the command that needs it, so
``mien validate`` starts in a fraction of a second.
"""

from __future__ import annotations

import sys
from importlib import import_module

import typer

from mien import __version__
from mien.cli import common

app = typer.Typer(
    name="mien",
    help=(
        "Give Linux machines a persona: a declared role (settings, environment, files, "
        "software, schedules, command rules, adaptation) applied by an agent, switched "
        "live, rolled back exactly, and managed for a fleet.\n\n"
        "Start with [bold]mien validate FILE[/bold] and [bold]mien render FILE[/bold]; "
        "apply on a machine with [bold]mien plan[/bold] / [bold]mien apply[/bold]."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mien {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """mien: personas for Linux machines."""


# Which module registers each top-level command. `mien apply` then imports only the
# agent's commands, not the server's or the fleet client's (tens of milliseconds of start-up);
# anything else (--help, a typo) registers them all. tests/unit/cli checks this table
# against what the modules register.
COMMAND_MODULES: dict[str, str] = {
    **dict.fromkeys(("validate", "render", "explain", "schema"), "language.commands"),
    **dict.fromkeys(
        ("plan", "apply", "status", "history", "rollback", "customize"), "machine.commands"
    ),
    "exec": "machine.execute",
    "agent": "fleet.agent",
    **dict.fromkeys(("persona", "instance", "bind", "audit", "token", "config"), "fleet.commands"),
    "server": "fleet.server",
}


def register(argv: list[str] | None = None) -> None:
    """Register the module of the command in ``argv`` (all modules without one)."""
    command = next((a for a in (argv or []) if not a.startswith("-")), None)
    wanted = COMMAND_MODULES.get(command or "")
    modules = [wanted] if wanted else list(dict.fromkeys(COMMAND_MODULES.values()))
    for name in modules:
        if name not in _registered:
            import_module(f"mien.cli.{name}").register(app)
            _registered.add(name)


_registered: set[str] = set()


def main() -> None:
    """Run the CLI with mien's exit-status conventions."""
    register(sys.argv[1:])
    try:
        app(standalone_mode=True)
    except common.CommandFailed as exc:
        common.error(str(exc))
        sys.exit(exc.status)
    except KeyboardInterrupt:
        common.error("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
