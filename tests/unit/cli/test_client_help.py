"""Every fleet command's ``--help`` teaches with an example of itself, and renders (Rich
markup in help texts is easy to break with a stray ``[``)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from mien.cli.main import app, register

register()  # every command, as `mien --help` sees them

GROUPS = ["persona", "instance", "bind", "audit", "token", "config"]


def commands() -> list[tuple[str, str]]:
    out = []
    for info in app.registered_groups:
        if info.name not in GROUPS:
            continue
        group = info.typer_instance
        assert isinstance(group, typer.Typer)
        out.extend((info.name, cmd.name or "") for cmd in group.registered_commands)
    return out


def test_every_group_is_registered() -> None:
    assert {group for group, _ in commands()} == set(GROUPS)
    assert ("instance", "exec") in commands() and ("audit", "verify") in commands()


@pytest.mark.parametrize(("group", "command"), commands())
def test_help_teaches_with_an_example(group: str, command: str) -> None:
    result = CliRunner().invoke(app, [group, command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, result.output
    assert f"mien {group} {command}" in result.output.split("Example", 1)[1]


@pytest.mark.parametrize("group", GROUPS)
def test_group_help_renders(group: str) -> None:
    result = CliRunner().invoke(app, [group, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0 and f"mien {group}" in result.output
