"""Crash-safe file changes under a root: the only code in the agent that writes files.

A write goes to a temporary file in the same directory, is fsynced, given its mode and
owner, renamed over the target and the directory fsynced, so a reader (or a crash) sees the
old file or the new one, never half of either. Directories the write has to create are
reported to a callback first, so the engine can journal them and remove them on rollback.

Used by :mod:`mien.agent.engine` only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from mien.agent.handlers.base import FileState

_IS_ROOT = os.geteuid() == 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def missing_dirs(path: Path) -> list[Path]:
    """Parent directories of ``path`` that do not exist yet, outermost first."""
    out: list[Path] = []
    parent = path.parent
    while not parent.exists():
        out.append(parent)
        parent = parent.parent
    return list(reversed(out))


def make_dirs(dirs: list[Path], before_each: Callable[[Path], None] | None = None) -> None:
    for d in dirs:
        if before_each is not None:
            before_each(d)
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o755)


def write(path: Path, state: FileState) -> None:
    """Atomically make ``path`` hold ``state`` (content, mode, owner)."""
    if state.content is None:
        remove(path)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".mien-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(state.content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, state.mode)
        if _IS_ROOT:
            os.chown(tmp, state.uid, state.gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def remove(path: Path) -> None:
    """Delete ``path`` if it exists (and make the deletion durable)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(path.parent)


def remove_dir_if_empty(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        path.rmdir()


def sweep_temp_files(directory: Path) -> None:
    """Remove temporary files an interrupted write left behind in ``directory``."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in directory.iterdir():
            if entry.name.endswith(".mien-tmp") and entry.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


def same(a: FileState, b: FileState) -> bool:
    """Whether two states are equal as far as this process can make them so.

    Ownership only counts when running as root (others cannot chown).
    """
    if a.content != b.content:
        return False
    if a.content is None:
        return True
    if a.mode != b.mode:
        return False
    return not _IS_ROOT or (a.uid == b.uid and a.gid == b.gid)
