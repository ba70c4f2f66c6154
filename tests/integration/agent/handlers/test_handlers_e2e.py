"""All built-in handlers together, through the real ``mien`` command on a temp root: seed
000's own persona applies with every setting either applied or honestly reported as
pending, a re-apply changes nothing, a switch and a rollback leave the root byte for byte
as it was."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import EXAMPLES, install_zsh, make_machine, run_mien, snapshot, tree_diff

OTHER = """\
name: writer
os_settings: {theme: light, editor: nano, terminal_shell: bash, font_size: 14}
application_settings: {browser_extensions: [dark reader]}
behavioral_settings: {security_scan_frequency: daily, logging_level: warning}
environment_variables: {PATH: "/opt/writer/bin:$PATH", GREETING: "it's $HOME"}
application_configuration:
  notes:
    path: ~/.config/notes/notes.ini
    values: {ui: {font: serif}}
resource_requirements: {cpu: 2, memory: 4GiB}
"""


def apply(root: Path, target: str | Path, personas: Path | None = None):  # type: ignore[no-untyped-def]
    extra = ["--personas", str(personas)] if personas else []
    return run_mien("apply", str(target), "--root", root, "--user", "alice", "--yes", *extra)


def test_seed_persona_switch_and_rollback(tmp_path: Path) -> None:
    root = install_zsh(make_machine(tmp_path / "root"))
    (root / "bin/bash").write_text("#!/bin/sh\n")
    (root / "bin/bash").chmod(0o755)
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "writer.yaml").write_text(OTHER)
    original = snapshot(root)

    first = apply(root, EXAMPLES / "persona_developer.yml")
    assert first.returncode == 0, first.stderr
    out = first.stdout + first.stderr
    assert "VS Code not installed: 3 extension(s) not applied" in out
    assert "dconf not installed" in out
    passwd = (root / "etc/passwd").read_text()
    assert "alice:x:1000:1000:Alice Example,,,:/home/alice:/bin/zsh" in passwd
    assert "export EDITOR='code --wait'" in (root / "etc/profile.d/mien.sh").read_text()
    assert (
        "gtk-application-prefer-dark-theme=1"
        in (root / "home/alice/.config/gtk-3.0/settings.ini").read_text()
    )
    assert (root / "etc/cron.d/mien-auto-update").exists()
    assert json.loads((root / "etc/mien/logging.json").read_text())["root"]["level"] == "DEBUG"
    developer = snapshot(root)

    again = apply(root, EXAMPLES / "persona_developer.yml")
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stderr
    assert tree_diff(developer, snapshot(root)) == []

    switched = apply(root, "writer", personas)
    assert switched.returncode == 0, switched.stderr
    assert "/home/alice:/bin/bash" in (root / "etc/passwd").read_text()
    assert not (root / "etc/cron.d/mien-auto-update").exists()
    assert (root / "etc/cron.d/mien-security-scan").exists()
    stored = json.loads((root / "etc/mien/settings.json").read_text())["settings"]
    assert stored == {
        "os_settings.font_size": 14,
        "resource_requirements": {"cpu": 2, "memory": "4GiB"},
    }
    assert (
        "os_settings.font_size: stored in /etc/mien/settings.json, not applied"
        in switched.stdout + switched.stderr
    )

    for target, expected in (("1", developer), ("0", original)):
        back = run_mien("rollback", "--to", target, "--root", root, "--yes")
        assert back.returncode == 0, back.stderr
        assert tree_diff(expected, snapshot(root)) == [], target


def test_edited_text_file_survives_a_switch_to_a_persona_without_it(tmp_path: Path) -> None:
    root = make_machine(tmp_path / "root")
    (root / "etc/motd").write_text("the original\n")
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "one.yaml").write_text(
        'name: one\napplication_configuration:\n  motd: {path: /etc/motd, content: "one\\n"}\n'
    )
    (personas / "two.yaml").write_text("name: two\nenvironment_variables: {X: '1'}\n")
    assert apply(root, "one", personas).returncode == 0
    (root / "etc/motd").write_text("edited by the admin\n")
    switched = apply(root, "two", personas)
    assert switched.returncode == 0, switched.stderr
    assert (root / "etc/motd").read_text() == "the original\n"  # two does not manage it
    # Kept for /etc/motd and its owner (never a value another persona's `motd` could carry).
    listed = json.loads(run_mien("customize", "list", "--root", root, "--output", "json").stdout)
    assert [(f["path"], f["uid"], f["kept"]) for f in listed["saved_files"]] == [
        ("/etc/motd", 0, True)
    ]
    assert "application_configuration.motd" not in (root / "etc/mien/settings.json").read_text()
    back = apply(root, "one", personas)
    assert back.returncode == 0, back.stderr
    assert (root / "etc/motd").read_text() == "edited by the admin\n"  # the edit is kept
