"""The no-op fast path of ``mien apply``: taken only while nothing it rests on has changed.

Each test records a no-op (apply twice), then changes one thing a user or another program
could change — a managed file's content, mode, owner, a symlink in its place or in place of
its directory, the state, the persona — and checks that the next apply plans in full and
puts the machine right, instead of answering "nothing to change" from the record.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import needs_root, run_mien

PERSONA = """\
name: quiet
environment_variables:
  EDITOR: vim
application_configuration:
  app:
    path: ~/.config/app/settings.json
    format: json
    values: {theme: dark, size: 12}
  motd:
    path: /etc/motd
    format: text
    content: "hello\\n"
"""

# Runs the console script's entry point in-process and says afterwards whether the engine
# was imported: the fast path never imports it.
DRIVER = """\
import sys
from mien.cli.entry import main
sys.argv = ["mien", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
print("full" if "mien.agent.engine" in sys.modules else "fast")
sys.exit(code)
"""


@pytest.fixture
def setup(machine: Path, tmp_path: Path) -> tuple[Path, Path]:
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "quiet.yaml").write_text(PERSONA)
    return machine, personas


def apply(root: Path, personas: Path, *extra: str, ok: bool = True) -> tuple[str, str]:
    """Run ``mien apply quiet``; return (which path answered, stderr)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER,
            "apply",
            "quiet",
            "--root",
            str(root),
            "--user",
            "alice",
            "--personas",
            str(personas),
            "--yes",
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
        timeout=120,
    )
    assert (proc.returncode == 0) is ok, proc.stderr
    return proc.stdout.strip(), proc.stderr


def recorded(root: Path, personas: Path) -> None:
    assert apply(root, personas)[0] == "full"  # applies
    assert apply(root, personas)[0] == "full"  # finds nothing to change, records that
    path, err = apply(root, personas)
    assert path == "fast"
    assert err.startswith("persona quiet is applied; nothing to change (")


def settings(root: Path) -> Path:
    return root / "home/alice/.config/app/settings.json"


def test_repeat_apply_answers_from_the_record(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    recorded(root, personas)
    record = root / "var/lib/mien/fastpath/noop.json"
    st = record.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, os.geteuid())
    # The same persona with other options is another question.
    assert apply(root, personas, "--overlay", str(personas / "quiet.yaml"))[0] == "full"


def test_same_size_edit_with_old_mtime_is_noticed(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    recorded(root, personas)
    target = settings(root)
    before = target.read_bytes()
    st = target.stat()
    target.write_bytes(before.replace(b"dark", b"DARK"))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # ctime still moves
    path, err = apply(root, personas)
    assert path == "full"
    assert "nothing to change" not in err  # the edit was seen (and kept as the user's)


def test_mode_change_is_noticed(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    recorded(root, personas)
    motd = root / "etc/motd"
    mode = stat.S_IMODE(motd.stat().st_mode)
    motd.chmod(mode | 0o002)
    content = motd.read_bytes()
    path, err = apply(root, personas)
    assert path == "full"
    # Only the mode drifted (the bytes are mien's): the apply puts the mode back.
    assert motd.read_bytes() == content
    assert stat.S_IMODE(motd.stat().st_mode) == mode, err
    assert apply(root, personas)[0] == "full"  # changed something: nothing recorded
    assert apply(root, personas)[0] == "fast"


@needs_root()
def test_owner_change_is_noticed(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    recorded(root, personas)
    target = settings(root)
    owner = target.stat()
    os.chown(target, 1001, 1001)
    assert apply(root, personas)[0] == "full"
    # Only the owner drifted: the apply gives the file back to whom mien gave it.
    after = target.stat()
    assert (after.st_uid, after.st_gid) == (owner.st_uid, owner.st_gid)


def test_symlink_in_place_of_a_file_is_noticed(setup: tuple[Path, Path], tmp_path: Path) -> None:
    root, personas = setup
    recorded(root, personas)
    motd = root / "etc/motd"
    elsewhere = tmp_path / "motd-copy"
    shutil.copy2(motd, elsewhere)
    motd.unlink()
    motd.symlink_to(elsewhere)
    path, err = apply(root, personas, ok=False)  # planned in full: a link is refused
    assert path == "full" and "link" in err


def test_symlink_in_place_of_a_directory_is_noticed(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    root, personas = setup
    recorded(root, personas)
    config = root / "home/alice/.config"
    moved = tmp_path / "config-copy"
    shutil.copytree(config, moved, symlinks=True)
    shutil.rmtree(config)
    config.symlink_to(moved)
    path, err = apply(root, personas, ok=False)  # planned in full: a link is refused
    assert path == "full" and "link" in err


def test_deleted_file_is_put_back(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    recorded(root, personas)
    (root / "etc/motd").unlink()
    assert apply(root, personas)[0] == "full"
    assert (root / "etc/motd").read_text() == "hello\n"


def test_state_change_is_noticed(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    recorded(root, personas)
    result = run_mien("customize", "set", "environment_variables.EDITOR", "nano", "--root", root)
    assert result.returncode == 0, result.stderr
    assert apply(root, personas)[0] == "full"


def test_persona_edit_is_noticed(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    recorded(root, personas)
    (personas / "quiet.yaml").write_text(PERSONA.replace("EDITOR: vim", "EDITOR: nano"))
    assert apply(root, personas)[0] == "full"
    assert "nano" in (root / "etc/profile.d").joinpath("mien.sh").read_text()


def test_new_persona_file_is_noticed(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    recorded(root, personas)
    (personas / "other.yaml").write_text("name: quiet\n")  # a second file claiming the name
    assert apply(root, personas)[0] == "full"


def test_forged_record_owned_by_someone_else_is_ignored(setup: tuple[Path, Path]) -> None:
    root, personas = setup
    recorded(root, personas)
    record = root / "var/lib/mien/fastpath/noop.json"
    if os.geteuid() != 0:
        pytest.skip("needs root to give the record another owner")
    os.chown(record, 1000, 1000)
    assert apply(root, personas)[0] == "full"
