"""A full disk during a switch of personas, on a real small filesystem (a tmpfs mounted for
the test; needs root). Whatever the fill level, the machine is never left mixing two
personas while ``mien status`` names one: the switch happens, or it is refused or undone
with nothing changed, or every command stops with exit status 3 naming ``mien recover``
until an undo succeeds."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Run, Tree, make_machine, run_mien, snapshot, tree_diff

KB = 1024
BIG = "x" * 63 + "\n"


def _persona(name: str, files: dict[str, int]) -> str:
    lines = [f"name: {name}", f"environment_variables: {{APP_ENV: {name}}}"]
    lines.append("application_configuration:")
    for i, (path, size) in enumerate(files.items()):
        lines.append(f"  f{i}:\n    path: {path}")
        lines.append(f'    content: "{name} {path}\\n{BIG * (size // 64)}"'.replace("\n", "\\n", 0))
    return "\n".join(lines) + "\n"


ONE = {"/etc/motd": 40 * KB, "/etc/issue": 40 * KB, "/etc/one/a.txt": 60 * KB}
TWO = {"/etc/motd": 60 * KB, "/etc/issue": 60 * KB, "/etc/two/deep/b.txt": 120 * KB}


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _setup(root: Path, personas: Path) -> None:
    make_machine(root)
    personas.mkdir(exist_ok=True)
    (personas / "one.yaml").write_text(_persona("one", ONE))
    (personas / "two.yaml").write_text(_persona("two", TWO))


def _apply(root: Path, personas: Path, name: str, **env: str) -> Run:
    return run_mien(
        "apply", name, "--root", root, "--personas", personas, "--user", "alice", "--yes", env=env
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tree]:
    """The tree with persona one, then two, applied on a roomy disk."""
    base = tmp_path_factory.mktemp("reference")
    root, personas = base / "root", base / "personas"
    _setup(root, personas)
    out = {}
    for name in ("one", "two"):
        assert _apply(root, personas, name).returncode == 0
        out[name] = snapshot(root)
    return out


def _fill(mount: Path, leave: int) -> Path:
    filler = mount / "filler"
    st = os.statvfs(mount)
    size = st.f_bavail * st.f_frsize - leave
    with open(filler, "wb") as fh:
        if size > 0:
            with contextlib.suppress(OSError):
                os.posix_fallocate(fh.fileno(), 0, size)
    return filler


def _consistent(root: Path, reference: dict[str, Tree], what: str) -> str | None:
    """The persona status names; fails unless the tree is exactly that persona's."""
    status = run_mien("status", "--root", root, "--output", "json")
    assert "Traceback" not in status.stderr, status.stderr
    if status.returncode == 3:
        assert "mien recover" in status.stderr, status.stderr
        return None
    assert status.returncode == 0, (what, status.stderr)
    active = json.loads(status.stdout)["active"]
    tree = snapshot(root)
    tree.pop("filler", None)
    assert tree_diff(reference[active], tree) == [], (what, active)
    return str(active)


@pytest.mark.parametrize("leave_kb", [0, 4, 16, 64, 128, 200, 280, 360, 440, 520, 640, 900])
def test_switch_on_a_filling_disk_never_mixes_personas(
    tmp_path: Path, reference: dict[str, Tree], leave_kb: int
) -> None:
    with tmpfs(tmp_path / "disk", "3m") as mount:
        root, personas = mount / "root", tmp_path / "personas"
        _setup(root, personas)
        assert _apply(root, personas, "one").returncode == 0
        filler = _fill(mount, leave_kb * KB)
        switched = _apply(root, personas, "two")
        assert "Traceback" not in switched.stderr, switched.stderr
        assert switched.returncode in (0, 1, 3), switched.stderr
        if switched.returncode == 3:
            assert "mien recover" in switched.stderr
        elif switched.returncode == 1:
            assert "nothing was changed" in switched.stderr
        if 64 <= leave_kb <= 128:  # the database opens, the change would not fit: refused
            assert switched.returncode == 1, switched.stderr
            assert "not enough free space" in switched.stderr
        _consistent(root, reference, "on the full disk")
        filler.unlink()
        recovered = run_mien("recover", "--root", root)
        assert recovered.returncode == 0, recovered.stderr
        active = _consistent(root, reference, "after recover")
        assert active == ("two" if switched.returncode == 0 else "one")


def test_an_undo_that_fails_is_never_recorded_as_done(
    tmp_path: Path, reference: dict[str, Tree]
) -> None:
    with tmpfs(tmp_path / "disk", "3m") as mount:
        root, personas = mount / "root", tmp_path / "personas"
        _setup(root, personas)
        assert _apply(root, personas, "one").returncode == 0
        # Killed after the third change; then the disk fills, room reserved for undo included.
        assert _apply(root, personas, "two", MIEN_CRASH_AT="written:3").returncode == -9
        (root / "var/lib/mien/reserve").unlink(missing_ok=True)
        filler = _fill(mount, 0)
        stuck = run_mien("status", "--root", root)
        assert stuck.returncode == 3, stuck.stderr
        assert "could not be undone" in stuck.stderr
        assert "mien recover" in stuck.stderr
        # Each later command retries the undo; until it succeeds, none names a persona.
        _consistent(root, reference, "retried on the full disk")
        filler.unlink()
        recovered = run_mien("recover", "--root", root)
        assert recovered.returncode == 0, recovered.stderr
        assert _consistent(root, reference, "after recover") == "one"
