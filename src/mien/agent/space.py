"""Disk space for a transaction: checked before anything changes, reserved for the undo.

A full disk in the middle of an apply must not leave the machine mixing two personas. So
before a transaction starts, :func:`reserve` checks that every filesystem it writes to has
room for the new files, the journal's before-images and the new history entry, and then
sets aside ``ROOT/var/lib/mien/reserve`` (allocated, not sparse) as large as what an undo
must write back. The reserve is released (deleted) before an undo or a recovery runs, and
after the commit, so an undo finds the room it needs even when the apply filled the disk.
The reserve only helps on the filesystem of the state directory; elsewhere the check is all.

Used by :mod:`mien.agent.transaction`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from mien.agent.locking import STATE_DIR

RESERVE = "reserve"
# Room for SQLite's own pages, WAL frames and directory entries beyond the bytes counted.
SLACK = 256 * 1024


class NoSpace(Exception):
    """Not enough space to apply (and undo) safely; nothing was changed."""


def _device(path: Path) -> tuple[int, Path]:
    while not path.exists():
        path = path.parent
    return os.stat(path).st_dev, path


def _size(path: Path) -> int:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    return st.st_size


def reserve(root: Path, writes: Sequence[tuple[Path, int]]) -> Path:
    """Check room for ``writes`` (host path, new size) and allocate the undo reserve.

    Raises :class:`NoSpace` (nothing changed) when a filesystem is too full.
    """
    state_dir = root / STATE_DIR
    befores = sum(_size(path) for path, _ in writes)
    afters = sum(size for _, size in writes)
    undo_room = befores + SLACK
    state_dev, _ = _device(state_dir)
    # The state database grows by the before-images (journal) and the new files (history).
    need: dict[int, int] = {state_dev: undo_room + befores + afters + SLACK}
    where: dict[int, Path] = {state_dev: state_dir}
    for path, size in writes:
        dev, existing = _device(path.parent)
        need[dev] = need.get(dev, 0) + size
        where.setdefault(dev, existing)
    for dev, bytes_needed in need.items():
        st = os.statvfs(where[dev])
        free = st.f_bavail * st.f_frsize
        if free < bytes_needed:
            raise NoSpace(
                f"not enough free space on the filesystem of {where[dev]}: the change and its "
                f"undo need {_human(bytes_needed)}, {_human(free)} is free"
            )
    path = state_dir / RESERVE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, undo_room)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        release(root)
        raise NoSpace(
            f"cannot reserve {_human(undo_room)} for an undo in {state_dir}: {exc}"
        ) from None
    os.close(fd)
    return path


def release(root: Path) -> None:
    """Give the reserved room back (before an undo, after a commit, at recovery)."""
    with contextlib.suppress(FileNotFoundError):
        (root / STATE_DIR / RESERVE).unlink()


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
