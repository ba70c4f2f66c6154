"""Entry point of the ``mien`` command.

Builds the Typer application from one module per command group and turns every expected
failure into a message and an exit status, never a traceback: 0 success, 1 the operation
failed (invalid persona, failed apply, refused request), 2 a usage error, 3 the machine needs
attention (``mien recover``: a damaged state database, or a transaction that could not be
undone), 126 a command refused by the persona's routing table, 130 interrupted.

Command modules import only the standard library and Typer at module level; anything heavy
(pydantic, SQLAlchemy, httpx, the server) is imported inside the command that needs it, so
``mien validate`` starts in a fraction of a second.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

import typer

from mien import __version__
from mien.cli import common

# What mien.agent.handlers.settings_store.stored_not_acted() says (not imported here: it
# loads every handler); tests/integration/test_claims.py holds the two to each other.
STORED_NOT_ACTED = "resource_requirements, access_controls"

app = typer.Typer(
    name="mien",
    help=(
        "Give Linux machines a persona: a declared role (settings, environment, files, "
        "software, schedules, command rules) applied by an agent, switched "
        "live, rolled back exactly, and managed for a fleet.\n\n"
        f"Stored, not acted on yet: {STORED_NOT_ACTED}.\n\n"
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
    **dict.fromkeys(("plan", "apply", "status", "history", "rollback"), "machine.commands"),
    "customize": "machine.customize",
    "switch": "machine.switch",
    "recover": "machine.recover",
    "exec": "machine.execute",
    "root": "machine.root",
    **dict.fromkeys(("events", "top"), "machine.adapt"),
    "agent": "fleet.agent",
    **dict.fromkeys(("persona", "instance", "bind", "audit", "token", "config"), "fleet.commands"),
    "server": "fleet.server",
    "app": "fleet.apps",
    "group": "fleet.groups",
    "policy": "fleet.policy",
    "fleet-rule": "fleet.fleet_rules",
    "provider": "fleet.providers",
    "rules": "language.rules",
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


def _completion(argv: list[str]) -> None:
    """``--show-completion SHELL`` / ``--install-completion SHELL`` for the shell named.

    Typer's own options take no value and detect the running shell, so ``--show-completion
    zsh`` printed the bash script from a bash prompt; a shell named here wins."""
    from typer import _completion_shared as completion

    for i, arg in enumerate(argv):
        flag, _, shell = arg.partition("=")
        if flag not in ("--show-completion", "--install-completion"):
            continue
        shell = shell or (argv[i + 1] if i + 1 < len(argv) else "")
        if not shell:
            return  # Typer detects the shell
        if shell not in ("bash", "zsh", "fish", "powershell", "pwsh"):
            common.error(f"{flag}: unknown shell {shell!r} (bash, zsh, fish, powershell, pwsh)")
            sys.exit(2)
        if flag == "--show-completion":
            typer.echo(
                completion.get_completion_script(
                    prog_name="mien", complete_var="_MIEN_COMPLETE", shell=shell
                )
            )
        else:
            _, path = completion.install(
                shell=shell, prog_name="mien", complete_var="_MIEN_COMPLETE"
            )
            typer.echo(f"{shell} completion installed in {path}")
        sys.exit(0)


def _plain_metavars() -> None:
    """Show option values as Click does (``--root PATH``), and flags with none at all:
    Typer's default help writes ``--yes <bool>``, which reads as if a value were needed."""
    from typer.core import TyperArgument, TyperOption

    def label(param: Any, ctx: Any) -> str | None:
        if param.metavar is not None:
            return str(param.metavar)
        if getattr(param, "is_flag", False):
            return None
        text = str(param.display_type(ctx)).strip("<>")
        if text.startswith("list[") and text.endswith("]"):
            text = text[5:-1]
        plain = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH", "path": "PATH"}
        text = plain.get(text, text if "|" in text or " " in text else text.upper())
        return text + ("..." if param.nargs != 1 or param.multiple else "")

    TyperOption.display_type_rich = label  # type: ignore[method-assign,assignment]
    TyperArgument.display_type_rich = label  # type: ignore[method-assign,assignment]


def main() -> None:
    """Run the CLI with mien's exit-status conventions."""
    argv = sys.argv[1:]
    _completion(argv)
    _plain_metavars()
    register(argv)
    common.json_errors = common.wants_json(argv)
    try:
        if common.json_errors:
            _run_json_errors()
        else:
            app(standalone_mode=True)
    except common.CommandFailed as exc:
        common.failed(exc)
        sys.exit(exc.status)
    except KeyboardInterrupt:
        common.error("interrupted", status=130)
        sys.exit(130)


def _run_json_errors() -> None:
    """Run the app with usage errors (bad options, missing arguments) reported as JSON."""
    # Typer carries its own copy of Click; its exceptions are the ones raised.
    from typer._click import exceptions as click
    from typer.exceptions import Abort

    try:
        status = app(standalone_mode=False)
    except click.UsageError as exc:
        common.error(exc.format_message(), status=2, code="usage")
        sys.exit(2)
    except click.ClickException as exc:
        common.error(exc.format_message(), status=exc.exit_code)
        sys.exit(exc.exit_code)
    except Abort:
        common.error("aborted", status=1)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
