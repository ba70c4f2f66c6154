"""Through the real ``mien apply`` on a temp root: a user's commented YAML, TOML and VS Code
``settings.json`` (JSON with comments and trailing commas) get the persona's keys and keep
every comment; a switch takes the keys back out, leaving the files as the user wrote them;
a rollback restores them byte for byte; a user's edit next to a comment is captured."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import make_machine, run_mien, snapshot, tree_diff
from tests.unit.agent.handlers.test_format_editors import JSONC, TOML, YAML

FILES = {
    "home/alice/.config/Code/User/settings.json": JSONC,
    "home/alice/.config/app/config.yaml": YAML,
    "home/alice/.config/tool/config.toml": TOML,
}
PERSONA = {
    "name": "dev",
    "application_configuration": {
        "vscode": {
            "path": "~/.config/Code/User/settings.json",
            "values": {"editor.fontSize": 14, "editor.rulers": [100]},
        },
        "app": {"path": "~/.config/app/config.yaml", "values": {"editor": {"size": 14}}},
        "tool": {"path": "~/.config/tool/config.toml", "values": {"editor": {"size": 14}}},
    },
}


def apply(root: Path, target: Path):  # type: ignore[no-untyped-def]
    return run_mien("apply", target, "--root", root, "--user", "alice", "--yes")


def test_comments_survive_apply_switch_and_rollback(tmp_path: Path) -> None:
    root = make_machine(tmp_path / "root")
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    original = snapshot(root)
    dev = tmp_path / "dev.yaml"
    dev.write_text(json.dumps(PERSONA))
    other = tmp_path / "other.yaml"
    other.write_text('{"name": "other", "environment_variables": {"X": "1"}}')

    first = apply(root, dev)
    assert first.returncode == 0, first.stderr
    vscode = (root / "home/alice/.config/Code/User/settings.json").read_text()
    assert vscode == JSONC.replace('Size": 12', 'Size": 14').replace(
        '"Default Light+",\n', '"Default Light+",\n    "editor.rulers": [\n        100\n    ],\n'
    )
    yaml_text = (root / "home/alice/.config/app/config.yaml").read_text()
    assert yaml_text.startswith("# Managed by mien (persona dev).")
    assert yaml_text.split("\n", 1)[1] == YAML.replace("size: 12", "size: 14")
    toml_text = (root / "home/alice/.config/tool/config.toml").read_text()
    assert toml_text.split("\n", 1)[1] == TOML.replace("size = 12", "size = 14")
    applied = snapshot(root)

    again = apply(root, dev)
    assert again.returncode == 0, again.stderr
    assert tree_diff(applied, snapshot(root)) == []

    switched = apply(root, other)
    assert switched.returncode == 0, switched.stderr
    for rel, text in FILES.items():
        assert (root / rel).read_text() == text, rel  # the user's file, as the user wrote it

    for target, expected in (("1", applied), ("0", original)):
        back = run_mien("rollback", "--to", target, "--root", root, "--yes")
        assert back.returncode == 0, back.stderr
        assert tree_diff(expected, snapshot(root)) == [], target


def test_a_users_edit_of_a_commented_settings_json_is_captured(tmp_path: Path) -> None:
    root = make_machine(tmp_path / "root")
    settings = root / "home/alice/.config/Code/User/settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(JSONC)
    dev = tmp_path / "dev.yaml"
    dev.write_text(json.dumps(PERSONA))
    assert apply(root, dev).returncode == 0
    settings.write_text(
        settings.read_text().replace('Size": 14', 'Size": 16 /* bigger */')
        + "// my note at the end\n"
    )
    again = apply(root, dev)
    assert again.returncode == 0, again.stderr
    text = settings.read_text()
    assert '"editor.fontSize": 16 /* bigger */,' in text
    assert text.endswith("// my note at the end\n")
    listed = run_mien("customize", "list", "--root", root)
    assert "application_configuration.vscode.values" in listed.stdout, listed.stdout
