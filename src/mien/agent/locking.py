"""One agent transaction at a time per machine root.

Used by :mod:`mien.agent.recovery` (for the engine) around every command that may change
a root (and ``mien recover``), so an apply, a rollback and the agent's loop never
interleave.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATE_DIR = "var/lib/mien"


@contextmanager
def exclusive(root: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold the root's agent lock: one transaction (or recovery) at a time per root.

    A ``flock`` on ``ROOT/var/lib/mien/lock``: the kernel drops it when the holder dies,
    even by ``kill -9``, which is how recovery knows an open transaction is abandoned.
    """
    import fcntl

    lock_dir = root / STATE_DIR
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            raise Busy(f"another mien is applying a persona on {root}") from None
        yield
    finally:
        os.close(fd)


class Busy(Exception):
    """Another process holds the root's lock."""
