"""The holder's end of ``mien app shell``: this terminal (or these pipes) connected to a
program in the lease's sandbox through the server's relay (:mod:`mien.protocol.shell`).

With a terminal on standard input, the terminal is put in raw mode (every key goes to the
program inside; restored on every way out), its window size is sent at start and on each
SIGWINCH. Otherwise standard input is sent as it comes, its end closes the program's
input, and the program's stdout and stderr arrive apart. The program's exit status is
this command's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from typing import Any

from mien.client import shell as sockets
from mien.client._http import Session
from mien.protocol import shell as wire


class ShellEnded(Exception):
    """The session ended without an exit status; the message says why."""


def window_size(fd: int) -> tuple[int, int]:
    size = os.get_terminal_size(fd)
    return size.lines or 24, size.columns or 80


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """``fd``'s terminal in raw mode for the block, restored however the block ends."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def open_session(api: Session, lease_id: str, argv: list[str], *, terminal: bool, term: str) -> Any:
    """Connect to the lease's shell (refusals raise the client's errors)."""
    params: list[tuple[str, Any]] = [("tty", terminal), ("term", term)]
    if terminal:
        rows, cols = window_size(sys.stdin.fileno())
        params += [("rows", rows), ("cols", cols)]
    params += [("arg", a) for a in argv]
    return sockets.connect(api, f"/broker/leases/{lease_id}/shell", params)


def relay(socket: Any, *, terminal: bool) -> int:
    """Pipe this process's stdio through ``socket`` until the program's exit status."""
    stdin = sys.stdin.fileno()
    out = {wire.STDOUT: sys.stdout.buffer, wire.STDERR: sys.stderr.buffer}

    def send_input() -> None:
        with contextlib.suppress(Exception):
            while chunk := os.read(stdin, 65536):
                socket.send(wire.data(wire.STDIN, chunk))
            if not terminal:
                socket.send(wire.eof())

    previous = None
    if terminal:

        def resized(_signum: int, _frame: Any) -> None:
            with contextlib.suppress(Exception):
                socket.send(wire.resize(*window_size(stdin)))

        previous = signal.signal(signal.SIGWINCH, resized)
    threading.Thread(target=send_input, daemon=True, name="mien-shell-stdin").start()
    try:
        with raw_terminal(stdin) if terminal else contextlib.nullcontext():
            return _receive(socket, out)
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)


def _receive(socket: Any, out: dict[int, Any]) -> int:
    from websockets.exceptions import ConnectionClosed

    try:
        for message in socket:
            if isinstance(message, bytes):
                stream, payload = wire.split(message)
                target = out.get(stream)
                if target is not None:
                    target.write(payload)
                    target.flush()
                continue
            control = wire.control(message)
            if control["type"] == "exit" and isinstance(control.get("status"), int):
                return int(control["status"])
            if control["type"] == "error":
                raise ShellEnded(str(control.get("detail") or "the shell ended"))
    except ConnectionClosed as exc:
        raise ShellEnded(f"the connection to the server was lost ({exc})") from None
    raise ShellEnded("the server closed the shell without an exit status")
