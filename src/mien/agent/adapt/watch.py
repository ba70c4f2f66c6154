"""Counting changes under the paths a persona watches (the ``file_access`` domain).

Linux inotify through ctypes (no new dependency): one non-blocking inotify descriptor, one
watch per named path, drained at each sample. The path is opened first by walking from the
root without following links (:func:`mien.agent.adapt.files.open_under`), and the watch is
put on ``/proc/self/fd/N`` — the inode already held — so a link planted at the path or above
it is refused rather than watched. Where inotify is not available (no libc symbol, no
``/proc``, the watch limit reached) a capped stat scan of the path stands in. A "change" is an
entry created, deleted, moved or attribute-changed, a file closed after writing, or a file
written (several writes to one file within a sample count once). Used by
:mod:`mien.agent.adapt.collectors`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import stat
import struct
from pathlib import Path

from mien.agent.adapt.files import open_under

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
_EVENT = struct.Struct("iIII")
SCAN_CAP = 10_000
"""The most directory entries the stat-scan fallback looks at per watched path."""


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        libc.inotify_init1  # noqa: B018 - a missing symbol raises here
    except (OSError, AttributeError):
        return None
    return libc


class Watcher:
    """Changes per named path since the previous :meth:`drain`."""

    def __init__(self, root: Path, paths: dict[str, str], use_inotify: bool = True) -> None:
        self.root = root
        self.paths = paths
        self.errors: dict[str, str] = {}
        # The watch goes on /proc/self/fd/N; without /proc, scan instead.
        usable = use_inotify and os.path.isdir("/proc/self/fd")
        self._libc = _libc() if usable else None
        self._fd = -1
        if self._libc is not None:
            fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd < 0:
                self._libc = None
            else:
                self._fd = fd
        self._wds: dict[int, str] = {}
        self._watched: set[str] = set()
        self._scans: dict[str, dict[str, tuple[int, int, int]] | None] = {}

    @property
    def inotify(self) -> bool:
        return self._fd >= 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _add(self, name: str) -> None:
        """Put a watch on ``name``'s path if it exists now (retried every sample)."""
        assert self._libc is not None
        fd = open_under(self.root, self.paths[name], os.O_PATH)
        if fd is None:
            return
        try:
            wd = self._libc.inotify_add_watch(
                self._fd, f"/proc/self/fd/{fd}".encode(), ctypes.c_uint32(_MASK)
            )
        finally:
            os.close(fd)
        if wd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self._wds[wd] = name
        self._watched.add(name)

    def drain(self) -> dict[str, int]:
        """Changes per name since the previous call; the first call only starts watching."""
        self.errors = {}
        if self._fd < 0:
            return self._scan_all()
        counts = dict.fromkeys(self._watched, 0)
        written: set[tuple[int, bytes]] = set()
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            pos = 0
            while pos + _EVENT.size <= len(buf):
                wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
                entry = buf[pos + _EVENT.size : pos + _EVENT.size + length].rstrip(b"\0")
                pos += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    self.errors["*"] = "too many changes at once; some were not counted"
                    continue
                name = self._wds.get(wd)
                if name is None:
                    continue
                if mask & IN_IGNORED:
                    del self._wds[wd]  # the path went away: watch it again when it is back
                    self._watched.discard(name)
                    continue
                if mask & IN_MODIFY:
                    if (wd, entry) in written:
                        continue
                    written.add((wd, entry))
                counts[name] = counts.get(name, 0) + 1
        fresh: dict[str, int] = {}
        for name in self.paths:
            if name not in self._watched:
                try:
                    self._add(name)
                except OSError as exc:
                    self.errors[name] = _message(exc)
            if name in counts:
                fresh[name] = counts[name]
        return fresh

    def _scan_all(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, path in self.paths.items():
            try:
                now = _scan(self.root, path)
            except OSError as exc:
                self.errors[name] = _message(exc)
                continue
            seen = name in self._scans
            before = self._scans.get(name)
            self._scans[name] = now
            if not seen or (before is None and now is None):
                continue  # the first scan is the reference; a missing path is unknown
            old, new = before or {}, now or {}
            out[name] = sum(1 for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return out


def _scan(root: Path, path: str) -> dict[str, tuple[int, int, int]] | None:
    fd = open_under(root, path, os.O_RDONLY)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode):
            return {".": (st.st_mtime_ns, st.st_size, st.st_ino)}
        sig: dict[str, tuple[int, int, int]] = {}
        for i, entry in enumerate(os.scandir(fd)):
            if i >= SCAN_CAP:
                break
            est = entry.stat(follow_symlinks=False)
            sig[entry.name] = (est.st_mtime_ns, est.st_size, est.st_ino)
        return sig
    finally:
        os.close(fd)


def _message(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the inotify watch limit is reached (fs.inotify.max_user_watches)"
    return exc.strerror or str(exc)
