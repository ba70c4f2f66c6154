"""A pseudo-terminal of a test's own with ``mien`` running on it (``pty.fork``), so that
``mien app shell`` is driven as a person at a terminal would drive it: keys typed, output
read, the window resized, the exit status and the terminal's modes afterwards."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time


class Terminal:
    """The master side of a pseudo-terminal whose child runs ``mien``."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int, cols: int) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: becomes mien
            os.execve(sys.executable, [sys.executable, "-m", "mien.cli.main", *argv], env)
        self.pid, self.fd = pid, fd
        self.resize(rows, cols)
        self.seen = b""

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, wanted: bytes, timeout: float = 30) -> bytes:
        """Read until ``wanted`` has been printed since the last call; what came before it."""
        deadline = time.monotonic() + timeout
        while wanted not in self.seen:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, left))
            if not ready:
                raise AssertionError(f"{wanted!r} not printed in {timeout}s: {self.seen[-2000:]!r}")
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"the terminal closed before {wanted!r}: {self.seen!r}")
            self.seen += chunk
        before, _, self.seen = self.seen.partition(wanted)
        return before

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with_data, _, _ = select.select([self.fd], [], [], 0.1)
            if with_data:
                with contextlib.suppress(OSError):
                    self.seen += os.read(self.fd, 65536)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, 9)
        raise AssertionError(f"mien app shell did not end: {self.seen[-2000:]!r}")
