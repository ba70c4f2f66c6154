"""Crash-safe file changes under a root: the only code in the agent that writes files.

A write goes to a temporary file in the same directory, is fsynced, given its mode and
owner, renamed over the target and the directory fsynced, so a reader (or a crash) sees the
old file or the new one, never half of either. Every path is an absolute path on the
machine, opened under the root without following links (:mod:`mien.agent.safepath`): a
link a user planted in a managed path is refused, never written through. Directories a
write has to create are listed by :func:`missing_dirs`, so the engine can journal them
and remove them on rollback.

Used by :mod:`mien.agent.transaction` and the handlers' operations.
"""

from __future__ import annotations

import os
from pathlib import Path

from mien.agent import safepath
from mien.agent.handlers.base import FileState

_IS_ROOT = os.geteuid() == 0


def missing_dirs(root: Path, path: str) -> list[str]:
    """Parent directories of ``path`` that do not exist yet, outermost first."""
    return safepath.missing_dirs(root, path)


def make_dir(root: Path, path: str, owner: tuple[int, int] | None = None) -> None:
    """Create ``path`` (mode 0755, its parent exists), owned by ``owner`` when root."""
    safepath.mkdir(root, path, 0o755, owner if _IS_ROOT else None)


def write(root: Path, path: str, state: FileState) -> None:
    """Atomically make ``path`` hold ``state`` (content, mode, owner)."""
    if state.content is None:
        remove(root, path)
        return
    owner = (state.uid, state.gid) if _IS_ROOT else None
    safepath.write(root, path, state.content, state.mode, owner)


def remove(root: Path, path: str) -> None:
    """Delete ``path`` if it exists (and make the deletion durable)."""
    safepath.remove(root, path)


def remove_dir_if_empty(root: Path, path: str) -> bool:
    """Remove the directory ``path`` if empty; whether it is gone."""
    return safepath.rmdir_if_empty(root, path)


def sweep_temp_files(root: Path, directory: str) -> None:
    """Remove temporary files an interrupted write left behind in ``directory``."""
    safepath.sweep_temp_files(root, directory)


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
