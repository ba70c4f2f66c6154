"""The agent against a hostile local user, through the real ``mien`` command on temp roots.

The persona user (alice) owns her home, so she can plant symbolic links in it before an
apply, or swap a directory for a link between two applies or in the middle of one. mien
runs as root: it must never create, rewrite, delete or read a file through such a link.
Every test puts a victim directory *outside* the root and checks it is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import make_machine, run_mien

APP = """\
name: {name}
application_configuration:
  app:
    path: /home/{{user}}/.config/app/notes.txt
    content: "persona {name}\\n"
"""

EMPTY = "name: empty\nenvironment_variables: {X: '1'}\n"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = make_machine(tmp_path / "root")
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "one.yaml").write_text(APP.format(name="one"))
    (personas / "two.yaml").write_text(APP.format(name="two"))
    (personas / "empty.yaml").write_text(EMPTY)
    victim = tmp_path / "victim"  # outside the root: e.g. /etc on a real machine
    (victim / "app").mkdir(parents=True)
    (victim / "app" / "notes.txt").write_text("root's own file\n")
    return root, personas, victim


def apply(root: Path, personas: Path, name: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_mien(
        "apply", name, "--root", root, "--personas", personas, "--user", "alice", "--yes", env=env
    )


def victim_files(victim: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(victim)): p.read_bytes() for p in sorted(victim.rglob("*")) if p.is_file()
    }


def test_a_planted_directory_link_is_not_written_through(
    setup: tuple[Path, Path, Path],
) -> None:
    root, personas, victim = setup
    (victim / "app" / "notes.txt").unlink()
    (root / "home/alice/.config").symlink_to(victim)
    result = apply(root, personas, "one")
    assert result.returncode != 0
    assert "/home/alice/.config is a symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert victim_files(victim) == {}  # nothing created outside the root
    assert (root / "home/alice/.config").is_symlink()


def test_a_link_swapped_in_after_an_apply_is_not_deleted_through(
    setup: tuple[Path, Path, Path],
) -> None:
    root, personas, victim = setup
    assert apply(root, personas, "one").returncode == 0
    config = root / "home/alice/.config"
    assert (config / "app/notes.txt").read_text() == "persona one\n"
    # The user moves her directory away and points the name at a directory of root's.
    config.rename(root / "home/alice/.config-real")
    config.symlink_to(victim)
    for persona in ("empty", "two"):  # a switch would delete, then rewrite, the file
        result = apply(root, personas, persona)
        assert result.returncode != 0, persona
        assert "is a symbolic link" in result.stderr
        assert "Traceback" not in result.stderr
        assert victim_files(victim) == {"app/notes.txt": b"root's own file\n"}
    rollback = run_mien("rollback", "--to", "0", "--root", root, "--yes")
    assert rollback.returncode != 0
    assert victim_files(victim) == {"app/notes.txt": b"root's own file\n"}


def test_an_undo_after_a_crash_does_not_follow_a_swapped_link(
    setup: tuple[Path, Path, Path],
) -> None:
    root, personas, victim = setup
    result = apply(root, personas, "one", env={"MIEN_CRASH_AT": "before-commit"})
    assert result.returncode == -9, result.stderr
    config = root / "home/alice/.config"
    assert (config / "app/notes.txt").read_text() == "persona one\n"
    # Before the next command recovers, the user swaps the directory for a link.
    config.rename(root / "home/alice/.config-real")
    config.symlink_to(victim)
    status = run_mien("status", "--root", root, "--user", "alice")
    assert "Traceback" not in status.stderr
    # The undo refuses the link, so the machine needs attention (exit 3) until recovered.
    assert status.returncode == 3, status.stderr
    assert "could not be undone" in status.stderr and "symbolic link" in status.stderr
    assert victim_files(victim) == {"app/notes.txt": b"root's own file\n"}


def test_directories_mien_creates_in_the_home_belong_to_the_user(
    setup: tuple[Path, Path, Path],
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give directories to the user")
    root, personas, _ = setup
    assert apply(root, personas, "one").returncode == 0
    for d in (".config", ".config/app"):
        assert (root / "home/alice" / d).stat().st_uid == 1000, d
    assert apply(root, personas, "empty").returncode == 0
    assert not (root / "home/alice/.config").exists()  # created by mien, pruned when empty


def test_a_link_deeper_in_the_path_is_refused(setup: tuple[Path, Path, Path]) -> None:
    """``~/.config/app -> victim`` is refused as well as ``~/.config -> victim``."""
    root, personas, victim = setup
    (root / "home/alice/.config").mkdir()
    (root / "home/alice/.config/app").symlink_to(victim / "app")
    result = apply(root, personas, "one")
    assert result.returncode != 0
    assert "/home/alice/.config/app is a symbolic link" in result.stderr
    assert victim_files(victim) == {"app/notes.txt": b"root's own file\n"}


SECRET = b'{"password": "hunter2"}\n'

MERGED = """\
name: merged
application_configuration:
  app:
    path: /home/{user}/.config/app.json
    values: {theme: dark}
"""


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under ``root`` (mien's state database too) that contains ``needle``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


@pytest.fixture
def secret(setup: tuple[Path, Path, Path]) -> Path:
    _, _, victim = setup
    path = victim / "secret.json"  # e.g. /root/secret.json: only root may read it
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def test_a_planted_file_link_is_not_read_into_the_users_file(
    setup: tuple[Path, Path, Path], secret: Path
) -> None:
    root, personas, _ = setup
    (personas / "merged.yaml").write_text(MERGED)
    (root / "home/alice/.config").mkdir()
    (root / "home/alice/.config/app.json").symlink_to(secret)
    result = apply(root, personas, "merged")
    assert result.returncode != 0
    assert "/home/alice/.config/app.json is a symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert files_holding(root, b"hunter2") == []
    assert secret.read_bytes() == SECRET


def test_a_managed_file_swapped_for_a_link_is_not_captured(
    setup: tuple[Path, Path, Path], secret: Path
) -> None:
    """The user's "edit" of a managed text file is a link to root's file: mien must not
    keep its bytes as her customization (nor write them into a file she owns)."""
    root, personas, _ = setup
    assert apply(root, personas, "one").returncode == 0
    notes = root / "home/alice/.config/app/notes.txt"
    notes.unlink()
    notes.symlink_to(secret)
    for name in ("two", "empty", "one"):
        result = apply(root, personas, name)
        assert "Traceback" not in result.stderr
        assert files_holding(root, b"hunter2") == [], name
    assert secret.read_bytes() == SECRET


OWN = """\
name: own
application_configuration:
  db:
    path: {path}
    format: text
    content: "gone\\n"
"""


@pytest.mark.parametrize(
    "path",
    [
        "/var/lib/mien/state.db",
        "/var//lib/./mien/state.db",
        "/var/log/mien/audit.jsonl",
        "/etc/mien/routes.json",
        "/run/mien/lock",
        "/usr/local/lib/mien/shims/ls",
    ],
)
def test_a_persona_cannot_manage_miens_own_files(setup: tuple[Path, Path, Path], path: str) -> None:
    root, personas, _ = setup
    assert apply(root, personas, "one").returncode == 0
    (personas / "own.yaml").write_text(OWN.format(path=path))
    checked = run_mien("validate", personas / "own.yaml")
    assert checked.returncode != 0
    assert "own.yaml:4:11: application_configuration.db.path:" in checked.stdout
    assert "where mien keeps its own files" in checked.stdout
    result = apply(root, personas, "own")
    assert result.returncode != 0
    assert "application_configuration.db.path" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    history = run_mien("history", "--root", root)
    assert history.returncode == 0, history.stderr
    assert "one" in history.stdout


def test_a_home_in_miens_state_directory_is_refused_at_plan(
    setup: tuple[Path, Path, Path],
) -> None:
    """The spec cannot know where ``{home}`` is; the plan checks the resolved path."""
    root, personas, _ = setup
    with (root / "etc/passwd").open("a") as fh:
        fh.write("svc:x:1002:1002::/var/lib/mien:/bin/sh\n")
    assert apply(root, personas, "one").returncode == 0
    (personas / "own.yaml").write_text(OWN.format(path="'{home}/state.db'"))
    assert run_mien("validate", personas / "own.yaml").returncode == 0
    result = run_mien(
        "apply", "own", "--root", root, "--personas", personas, "--user", "svc", "--yes"
    )
    assert result.returncode != 0
    assert "application_configuration.db.path: /var/lib/mien/state.db is in /var/lib/mien" in (
        result.stderr
    )
    history = run_mien("history", "--root", root, "--output", "json")
    assert history.returncode == 0, history.stderr
    assert '"one"' in history.stdout


def test_a_huge_sparse_file_is_neither_read_whole_nor_copied(
    setup: tuple[Path, Path, Path],
) -> None:
    """64 MiB of holes costs nothing on disk; mien must not read it nor keep a copy."""
    root, personas, _ = setup
    notes = root / "home/alice/.config/app/notes.txt"
    notes.parent.mkdir(parents=True)
    with notes.open("wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    result = apply(root, personas, "one")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "/home/alice/.config/app/notes.txt is 64.0 MiB" in result.stderr
    assert "up to 16 MiB, so it neither read nor saved this one" in result.stderr
    assert notes.stat().st_size == 64 * 1024 * 1024  # left as it was

    # Once managed, the user swaps in a huge file: the next switch refuses the same way.
    notes.unlink()
    assert apply(root, personas, "one").returncode == 0
    with notes.open("wb") as fh:
        fh.truncate(100 * 1024 * 1024)
    result = apply(root, personas, "two")
    assert result.returncode != 0
    assert "notes.txt is 100.0 MiB" in result.stderr
    assert (root / "var/lib/mien/state.db").stat().st_size < 4 * 1024 * 1024
