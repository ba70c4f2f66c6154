"""File operations under a machine root that never follow a symbolic link.

The agent runs as root over directories its users can write (their homes, and whatever a
persona gives them). A textual check of a path is not enough: ``~/.config`` may be a link
to ``/etc`` that the user planted, before the apply or between two of its steps. So every
operation here starts from a descriptor of the root (the ``--root`` directory, which the
operator chose) and opens each component of the path with ``openat`` and ``O_NOFOLLOW``;
the last component is opened, created, renamed or removed relative to its parent's
descriptor. A link anywhere below the root is refused with :class:`UnsafePath`, and a link
swapped in after a component was opened changes nothing: the descriptor is already held.

Reads are capped (:data:`READ_CAP`): a file larger than that is refused with
:class:`TooLarge` instead of being read into memory and copied into the state database.

Paths are absolute paths *on the machine* (``/home/alice/.config/app.json``), as the
handlers' :class:`~mien.agent.handlers.base.Context` uses them. Used by
:mod:`mien.agent.fileops`, :mod:`mien.agent.transaction` and the handlers' context.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

READ_CAP = 16 * 1024 * 1024
"""The largest file mien reads, journals or keeps a copy of (16 MiB)."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path under the root goes through a symbolic link, or is not what it must be."""


class TooLarge(OSError):
    """A file is larger than :data:`READ_CAP`; it was not read."""


def parts_of(path: str) -> list[str]:
    """The components of an absolute machine path (``..`` refused)."""
    if not path.startswith("/"):
        raise UnsafePath(f"{path!r} is not an absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"{path!r}: '..' is not allowed")
    return parts


def _refuse(root_fd: int, parts: list[str], upto: int, path: str, fd: int) -> UnsafePath:
    shown = "/" + "/".join(parts[: upto + 1])
    try:
        st = os.stat(parts[upto], dir_fd=fd, follow_symlinks=False)
    except OSError:
        return UnsafePath(f"{path}: {shown} cannot be opened")
    if stat.S_ISLNK(st.st_mode):
        return UnsafePath(
            f"{path}: {shown} is a symbolic link; mien does not follow links under the root"
            " (remove the link, or manage the path it points to)"
        )
    return UnsafePath(f"{path}: {shown} is not a directory")


def _walk(root: Path, parts: list[str], path: str) -> int | None:
    """A descriptor of the directory ``/parts...`` (None when a component is missing)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for i, part in enumerate(parts):
        try:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            os.close(fd)
            return None
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                os.close(fd)
                raise
            problem = _refuse(fd, parts, i, path, fd)
            os.close(fd)
            raise problem from None
        os.close(fd)
        fd = nxt
    return fd


@contextlib.contextmanager
def parent(root: Path, path: str) -> Iterator[tuple[int | None, str]]:
    """``(descriptor of the parent directory or None when it is missing, last name)``."""
    parts = parts_of(path)
    if not parts:
        raise UnsafePath(f"{path!r} is the root itself")
    fd = _walk(root, parts[:-1], path)
    try:
        yield fd, parts[-1]
    finally:
        if fd is not None:
            os.close(fd)


def lstat(root: Path, path: str) -> os.stat_result | None:
    """The entry at ``path`` itself (a link is not followed); None when it is missing."""
    with parent(root, path) as (fd, name):
        if fd is None:
            return None
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None


def exists(root: Path, path: str) -> bool:
    return lstat(root, path) is not None


def read(root: Path, path: str, cap: int = READ_CAP) -> tuple[bytes, os.stat_result] | None:
    """The bytes and status of the regular file at ``path``; None when it is missing.

    A link, a directory or a device at ``path`` is refused (:class:`UnsafePath`), and so
    is a file larger than ``cap`` (:class:`TooLarge`, nothing of it is read).
    """
    with parent(root, path) as (dir_fd, name):
        if dir_fd is None:
            return None
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise UnsafePath(
                f"{path} is a symbolic link; mien does not read or write through links"
                " (remove the link)"
            ) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePath(f"{path} exists and is not a regular file")
            if st.st_size > cap:
                raise TooLarge(_too_large(path, st.st_size, cap))
            chunks = []
            left = cap + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
            if len(data) > cap:  # it grew while being read
                raise TooLarge(_too_large(path, len(data), cap))
            return data, st
        finally:
            os.close(fd)


def _too_large(path: str, size: int, cap: int) -> str:
    return (
        f"{path} is {size / 1048576:.1f} MiB; mien reads and keeps copies of files up to"
        f" {cap // 1048576} MiB, so it neither read nor saved this one: move it away or"
        " stop managing this path"
    )


def mkdir(root: Path, path: str, mode: int = 0o755, owner: tuple[int, int] | None = None) -> None:
    """Create the directory ``path`` (its parent must exist); give it to ``owner``."""
    with parent(root, path) as (fd, name):
        if fd is None:
            raise FileNotFoundError(errno.ENOENT, "parent directory is missing", path)
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, mode, dir_fd=fd)
        if owner is not None:
            # Not following: if the user swapped a link in meanwhile, only the link changes.
            os.chown(name, *owner, dir_fd=fd, follow_symlinks=False)


def missing_dirs(root: Path, path: str) -> list[str]:
    """Directories above ``path`` that do not exist yet, outermost first (links refused)."""
    parts = parts_of(path)[:-1]
    for i in range(len(parts) + 1):
        fd = _walk(root, parts[:i], path)
        if fd is None:
            return ["/" + "/".join(parts[:j]) for j in range(i, len(parts) + 1)]
        os.close(fd)
    return []


def write(root: Path, path: str, content: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """Atomically make ``path`` hold ``content``: a temporary file in the same directory,
    fsynced, given its mode and owner, renamed over the target, the directory fsynced."""
    with parent(root, path) as (dir_fd, name):
        if dir_fd is None:
            raise FileNotFoundError(errno.ENOENT, "parent directory is missing", path)
        tmp = f".{name}.{secrets.token_hex(4)}.mien-tmp"
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dir_fd,
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                if owner is not None:
                    os.fchown(fh.fileno(), *owner)
                os.fsync(fh.fileno())
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)


def remove(root: Path, path: str) -> None:
    """Delete the entry ``path`` (a link itself, never its target) if it exists."""
    with parent(root, path) as (fd, name):
        if fd is None:
            return
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            return
        os.fsync(fd)


def rmdir_if_empty(root: Path, path: str) -> bool:
    """Remove the directory ``path`` if it is empty; whether it is gone now."""
    with parent(root, path) as (fd, name):
        if fd is None:
            return True
        try:
            os.rmdir(name, dir_fd=fd)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True


def sweep_temp_files(root: Path, directory: str) -> None:
    """Remove temporary files an interrupted write left behind in ``directory``."""
    fd = _walk(root, parts_of(directory), directory)
    if fd is None:
        return
    try:
        for name in os.listdir(fd):
            if name.startswith(".") and name.endswith(".mien-tmp"):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
