"""A user's edit of a managed file is theirs, for that file only.

The attack: the persona user edits a dotfile mien manages; another persona uses the same
application name for a system file. The user's bytes (or keys) must never be written there
as root. Captured content is keyed by the file's path and its owner's uid, and restored
only at that path while that uid owns it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support import make_machine, run_mien

HOME = """\
name: home
application_configuration:
  bashrc:
    path: /home/{user}/.bashrc
    content: "# persona bashrc\\n"
  app:
    path: /home/{user}/.config/app.env
    format: env
    values: {COLOR: blue}
"""

SYSTEM = """\
name: system
application_configuration:
  bashrc:
    path: /etc/sudoers.d/mien
    content: "# no sudo for anyone\\n"
    mode: "0440"
  app:
    path: /etc/app.env
    format: env
    values: {COLOR: red}
"""


@pytest.fixture
def machine(tmp_path: Path) -> tuple[Path, Path]:
    root = make_machine(tmp_path / "root")
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "home.yaml").write_text(HOME)
    (personas / "system.yaml").write_text(SYSTEM)
    return root, personas


def _apply(root: Path, personas: Path, name: str) -> None:
    done = run_mien(
        "apply", name, "--root", root, "--personas", personas, "--user", "alice", "--yes"
    )
    assert done.returncode == 0, done.stderr


def _as_alice(path: Path, text: str) -> None:
    """The user edits a file they own (as root here, then owned by alice as it was)."""
    path.write_text(text)
    if os.geteuid() == 0:
        os.chown(path, 1000, 1000)


def test_user_edit_of_a_dotfile_never_reaches_a_system_file(machine: tuple[Path, Path]) -> None:
    root, personas = machine
    _apply(root, personas, "home")
    bashrc = root / "home/alice/.bashrc"
    app = root / "home/alice/.config/app.env"
    _as_alice(bashrc, "# persona bashrc\nalice ALL=(ALL) NOPASSWD: ALL\n")
    _as_alice(app, "COLOR=green\nLD_PRELOAD=/home/alice/evil.so\n")
    _apply(root, personas, "system")
    sudoers = (root / "etc/sudoers.d/mien").read_text()
    assert "NOPASSWD" not in sudoers
    assert sudoers == "# no sudo for anyone\n"
    assert "COLOR=red" in (root / "etc/app.env").read_text()
    assert "green" not in (root / "etc/app.env").read_text()
    # The edits are kept for the files they came from: back under `home`, both return.
    _apply(root, personas, "home")
    assert "NOPASSWD" in bashrc.read_text()
    assert "COLOR=green" in app.read_text()
    listed = json.loads(run_mien("customize", "list", "--root", root, "--output", "json").stdout)
    kept = [f for f in listed["saved_files"] if f["kept"]]
    assert [(f["path"], f["uid"]) for f in kept] == [("/home/alice/.bashrc", 1000)]
    captured = {c["key"]: c for c in listed["customizations"]}
    color = captured["application_configuration.app.values.COLOR"]
    assert (color["origin"], color["origin_uid"]) == ("/home/alice/.config/app.env", 1000)


def test_kept_edit_is_not_restored_once_another_uid_owns_the_file(
    machine: tuple[Path, Path], tmp_path: Path
) -> None:
    root, personas = machine
    _apply(root, personas, "home")
    bashrc = root / "home/alice/.bashrc"
    _as_alice(bashrc, "# alice's own line\n")
    _apply(root, personas, "system")
    # A persona now gives ~/.bashrc to root: alice's bytes must not be written as root.
    (personas / "rooted.yaml").write_text(
        "name: rooted\napplication_configuration:\n  bashrc:\n"
        '    path: /home/{user}/.bashrc\n    content: "# root\'s bashrc\\n"\n    owner: root\n'
    )
    _apply(root, personas, "rooted")
    assert bashrc.read_text() == "# root's bashrc\n"


def test_a_file_anyone_may_write_is_nobody_s_edit(machine: tuple[Path, Path]) -> None:
    root, personas = machine
    _apply(root, personas, "home")
    bashrc = root / "home/alice/.bashrc"
    _as_alice(bashrc, "# written by someone\n")
    bashrc.chmod(0o666)  # any user could have written this
    _apply(root, personas, "home")
    listed = json.loads(run_mien("customize", "list", "--root", root, "--output", "json").stdout)
    saved = [f for f in listed["saved_files"] if f["path"] == "/home/alice/.bashrc"]
    assert [(f["kept"], f["uid"]) for f in saved] == [(False, None)]
    assert bashrc.read_text() == "# persona bashrc\n"


def test_a_rollback_restores_captured_values_with_their_scope(machine: tuple[Path, Path]) -> None:
    root, personas = machine
    _apply(root, personas, "home")
    _as_alice(root / "home/alice/.config/app.env", "COLOR=green\n")
    _apply(root, personas, "home")  # history #2 holds the captured COLOR
    key = "application_configuration.app.values.COLOR"
    assert run_mien("customize", "unset", key, "--root", root).returncode == 0
    back = run_mien("rollback", "--to", "2", "--root", root, "--yes")
    assert back.returncode == 0, back.stderr
    listed = json.loads(run_mien("customize", "list", "--root", root, "--output", "json").stdout)
    color = {c["key"]: c for c in listed["customizations"]}[key]
    assert (color["value"], color["origin_uid"]) == ("green", 1000)
    _apply(root, personas, "system")
    assert "green" not in (root / "etc/app.env").read_text()
