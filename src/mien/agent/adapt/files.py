"""Reading the files telemetry watches: only what was appended, capped, never through a link.

The agent reads logs as root, and a log's directory may be writable by a user who could plant
a link to a file they may not read (``/var/log/app/app.log -> /etc/shadow``). So each read
walks from the root's descriptor with ``O_NOFOLLOW`` (:mod:`mien.agent.safepath`) and accepts
only a regular file; a FIFO or device is refused without blocking. :class:`LogTail` keeps the
position reached and reads only what was appended since, at most :data:`TAIL_CAP` bytes per
sample; a rotated (new inode) or truncated (shorter) file is read again from its start.
Used by :mod:`mien.agent.adapt.collectors`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mien.agent import safepath

TAIL_CAP = 256 * 1024
"""The most a log tail reads per sample; a faster-growing log is counted from its newest
:data:`TAIL_CAP` bytes and the count scaled up to what was appended."""


_LINK = "{} is a symbolic link; mien does not read or watch through links"


def open_under(root: Path, path: str, flags: int = os.O_RDONLY) -> int | None:
    """A descriptor of the entry ``path`` under ``root``, no link followed on the way or at
    the end; None when it is missing. Opened non-blocking, so a FIFO does not hang."""
    with safepath.parent(root, path) as (dir_fd, name):
        if dir_fd is None:
            return None
        try:
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise safepath.UnsafePath(_LINK.format(path)) from None
            raise
        if flags & os.O_PATH and stat.S_ISLNK(os.fstat(fd).st_mode):
            os.close(fd)  # O_PATH with O_NOFOLLOW opens the link itself
            raise safepath.UnsafePath(_LINK.format(path))
        return fd


def open_regular(root: Path, path: str) -> tuple[int, os.stat_result] | None:
    """A descriptor and status of the regular file at ``path`` (a link, FIFO, device or
    directory is refused with :class:`~mien.agent.safepath.UnsafePath`)."""
    fd = open_under(root, path)
    if fd is None:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise safepath.UnsafePath(f"{path} is not a regular file")
    return fd, st


@dataclass
class LogTail:
    """The lines appended to one log file since the previous call."""

    root: Path
    path: str
    cap: int = TAIL_CAP
    _ino: tuple[int, int] | None = field(default=None, init=False)
    _offset: int = field(default=0, init=False)
    started: bool = field(default=False, init=False)

    def read(self) -> tuple[list[str], float] | None:
        """The complete lines appended since the previous call and the factor by which they
        under-represent what was appended (1.0 unless more than the cap was appended: then
        only the newest lines were read). None on the first call, which only notes where the
        file ends (its history is not a rate). A missing file raises FileNotFoundError."""
        opened = open_regular(self.root, self.path)
        if opened is None:
            # Whatever appears here later was written after we started: read it from 0.
            self.started, self._ino, self._offset = True, None, 0
            raise FileNotFoundError(errno.ENOENT, "no such file", self.path)
        fd, st = opened
        try:
            ino = (st.st_dev, st.st_ino)
            if not self.started:
                self.started, self._ino, self._offset = True, ino, st.st_size
                return None
            if ino != self._ino or st.st_size < self._offset:
                self._ino, self._offset = ino, 0  # rotated or truncated: read it anew
            appended = st.st_size - self._offset
            if appended <= 0:
                return [], 1.0
            start = self._offset if appended <= self.cap else st.st_size - self.cap
            data = os.pread(fd, min(appended, self.cap), start)
        finally:
            os.close(fd)
        end = data.rfind(b"\n")
        if end < 0 and len(data) < self.cap:
            return [], 1.0  # a line still being written: read it when it is complete
        whole = data if end < 0 else data[: end + 1]
        self._offset = start + len(whole) if appended <= self.cap else st.st_size
        lines = whole.decode("utf-8", "replace").splitlines()
        if appended > self.cap:
            lines = lines[1:]  # the first line was cut by the cap
            return lines, appended / max(len(whole), 1)
        return lines, 1.0

    def count(self, matches: Callable[[str], bool]) -> int | None:
        """How many appended lines ``matches`` accepts (scaled when over the cap)."""
        got = self.read()
        if got is None:
            return None
        lines, scale = got
        return round(sum(1 for line in lines if matches(line)) * scale)


def read_capped(root: Path, path: str, cap: int) -> tuple[bytes, os.stat_result] | None:
    """At most ``cap`` bytes of the regular file at ``path`` (None when missing)."""
    opened = open_regular(root, path)
    if opened is None:
        return None
    fd, st = opened
    try:
        return os.pread(fd, cap, 0), st
    finally:
        os.close(fd)
