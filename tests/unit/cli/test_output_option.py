"""Every command takes ``--output json`` — walked from the command tree itself, so a new
command without it fails here. The exceptions print another program's output or a log,
never a result of their own, and are named with the reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from mien.cli import main

# Commands whose output is not theirs to shape.
EXEMPT = {
    "exec": "its output is the command it runs",
    "app shell": "its output is the program's it runs in the sandbox, on a terminal",
    "server": "it serves until stopped and writes a log",
    "agent run": "it runs until stopped and writes a log",
    "agent serve-socket": "it serves until stopped and writes a log",
    "schema": "it prints a JSON Schema document, JSON already",
}


def commands() -> dict[str, Any]:
    main.register()
    root = typer.main.get_command(main.app)
    found: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, command in group.commands.items():
            path = f"{prefix} {name}".strip()
            if hasattr(command, "commands") and command.commands:
                if getattr(command, "invoke_without_command", False):
                    found[path] = command
                walk(command, path)
            else:
                found[path] = command

    walk(root, "")
    return found


def test_every_command_offers_output_json() -> None:
    found = commands()
    assert {"rollback", "customize set", "persona delete", "token revoke", "bind rm"} <= set(found)
    missing = []
    for path, command in sorted(found.items()):
        if path in EXEMPT:
            continue
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        if "--output" not in options:
            missing.append(path)
    assert missing == []


def test_the_exemptions_are_real_commands_and_the_readme_names_them() -> None:
    assert set(EXEMPT) <= set(commands())
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    claim = readme[readme.index("takes `--output json`") :][:400]
    named = set(re.findall(r"`mien ([a-z -]+)`", claim))
    assert named == set(EXEMPT)
