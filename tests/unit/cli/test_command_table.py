"""The start-up shortcut in ``mien.cli.main`` (register only the module of the command
being run) must know every command: a command missing from its table would only work
when another module's command is not being run."""

from __future__ import annotations

from importlib import import_module

import typer
import typer.main

from mien.cli.main import COMMAND_MODULES


def names_registered_by(module: str) -> set[str]:
    app = typer.Typer()
    import_module(f"mien.cli.{module}").register(app)

    @app.callback()
    def _root() -> None:  # a group, so every command keeps its own name
        """Root."""

    return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_table_names_each_command_of_each_module() -> None:
    for module in set(COMMAND_MODULES.values()):
        expected = {c for c, m in COMMAND_MODULES.items() if m == module}
        assert names_registered_by(module) == expected, module
