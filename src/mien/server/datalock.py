"""One server per data directory: an exclusive lock on ``<data>/server.lock``.

``mien server`` takes it before it opens an SQLite database in its data directory and holds
it for its life. A second server on the same directory would otherwise start, keep its own
cache of the fleet and serve state that the first one has since changed (SQLite has no
change notifications between processes). The lock is an ``fcntl`` lock: the kernel drops
it with the process, so a server killed outright leaves nothing to clean up. Replicas on
PostgreSQL share the database by design and take no lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_NAME = "server.lock"


class DataDirInUse(Exception):
    """Another live process holds the data directory; the message says which and what to do."""


def lock_data_dir(data_dir: Path) -> int:
    """Lock ``data_dir`` for this process; returns the descriptor to keep open (closing it,
    or exiting, releases the lock). Raises :class:`DataDirInUse` or ``OSError``."""
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        who = f"another mien server (pid {holder})" if holder else "another mien server"
        raise DataDirInUse(
            f"data directory {data_dir} is already served by {who}; stop that one first, "
            "or give this one its own --data (several replicas need --db postgresql+asyncpg://…)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(fd: int) -> int | None:
    """The pid the lock's holder wrote (read capped: the file is ours, a line at most)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
