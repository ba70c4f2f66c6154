"""A damaged or lost ``state.db``: mien refuses to act with a clear message and exit
status 3 (never a traceback, never a silent fresh start), and ``mien recover`` brings the
last good state back from the backup (or, with ``--start-over``, starts afresh)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support import Run, make_machine, run_mien, snapshot, tree_diff

ONE = """\
name: one
environment_variables: {APP_ENV: one}
application_configuration:
  motd: {path: /etc/motd, content: "Welcome to persona one\\n"}
  app:
    path: /home/{user}/.config/app/settings.json
    values: {theme: dark}
"""
TWO = """\
name: two
environment_variables: {APP_ENV: two}
application_configuration:
  notes: {path: /etc/two/notes.ini, values: {main: {enabled: true}}}
"""


@pytest.fixture
def applied(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[str, int, bytes | None]]]:
    """A root where one then two were applied; returns it, its database and the tree
    as it was before mien."""
    root = make_machine(tmp_path / "root")
    (root / "etc/motd").write_text("The original message of the day\n")
    original = snapshot(root)
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "one.yaml").write_text(ONE)
    (personas / "two.yaml").write_text(TWO)
    for name in ("one", "two"):
        done = run_mien(
            "apply", name, "--root", root, "--personas", personas, "--user", "alice", "--yes"
        )
        assert done.returncode == 0, done.stderr
    return root, root / "var/lib/mien/state.db", original


def _refuses(done: Run) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert "mien recover" in done.stderr


def _damage(db: Path, how: str) -> None:
    data = db.read_bytes()
    if how == "truncated":
        db.write_bytes(data[: len(data) // 3])
    elif how == "not a database":
        db.write_bytes(b"this is not a database\n" * 100)
    elif how == "empty":
        db.write_bytes(b"")
    elif how == "deleted":
        db.unlink()


@pytest.mark.parametrize("how", ["truncated", "not a database", "empty", "deleted"])
def test_damaged_state_is_refused_then_recovered_from_the_backup(
    applied: tuple[Path, Path, dict[str, tuple[str, int, bytes | None]]], how: str
) -> None:
    root, db, original = applied
    _damage(db, how)
    before = snapshot(root)
    _refuses(run_mien("status", "--root", root))
    _refuses(run_mien("rollback", "--to", "0", "--root", root, "--yes"))
    assert tree_diff(before, snapshot(root)) == []
    done = run_mien("recover", "--root", root)
    assert done.returncode == 0, done.stderr
    assert "restored the state database from its backup" in done.stderr
    status = json.loads(run_mien("status", "--root", root, "--output", "json").stdout)
    assert status["active"] == "two"
    back = run_mien("rollback", "--to", "0", "--root", root, "--yes")
    assert back.returncode == 0, back.stderr
    assert tree_diff(original, snapshot(root)) == []


@pytest.mark.parametrize("fraction", [0.2, 0.4, 0.6, 0.8])
def test_garbage_mid_file_never_ends_in_a_traceback(
    applied: tuple[Path, Path, dict[str, tuple[str, int, bytes | None]]], fraction: float
) -> None:
    root, db, original = applied
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.seek(max(4096, int(size * fraction) // 4096 * 4096))  # a whole page, not the first
        fh.write(os.urandom(4096))
    back = run_mien("rollback", "--to", "0", "--root", root, "--yes")
    assert "Traceback" not in back.stderr, back.stderr
    if back.returncode != 0:
        _refuses(back)
        done = run_mien("recover", "--root", root)
        assert done.returncode == 0, done.stderr
        back = run_mien("rollback", "--to", "0", "--root", root, "--yes")
        assert back.returncode == 0, back.stderr
    assert tree_diff(original, snapshot(root)) == []


def test_start_over_sets_the_damaged_state_aside(
    applied: tuple[Path, Path, dict[str, tuple[str, int, bytes | None]]],
) -> None:
    root, db, _ = applied
    _damage(db, "not a database")
    (db.parent / "state.db.backup").write_bytes(b"damaged as well")
    failed = run_mien("recover", "--root", root)
    assert failed.returncode == 3, failed.stderr
    assert "--start-over" in failed.stderr
    done = run_mien("recover", "--start-over", "--root", root, "--user", "alice")
    assert done.returncode == 0, done.stderr
    assert any(p.name.startswith("state.db.abandoned-") for p in db.parent.iterdir())
    history = run_mien("history", "--root", root, "--output", "json")
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout) == []
