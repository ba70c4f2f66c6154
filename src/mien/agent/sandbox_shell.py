"""The sandbox host's end of ``mien app shell``: one interactive program in a lease, its
bytes relayed through the server to the lease holder.

:func:`serve` runs in a thread of its own (started by :class:`~mien.agent.sandbox_host.
SandboxHost` for each session ``GET /broker/host/work`` hands out). It dials the server's
relay (the host only ever connects out), then starts the program with the driver's
``spawn``:

* with a terminal: on a pseudo-terminal allocated here (``os.openpty``) of the holder's
  window size, which becomes the program's controlling terminal; resize messages set the
  window size (the program gets SIGWINCH); everything it prints comes back on stdout;
* without (the holder's stdin is not a terminal): on pipes; stdout and stderr come back
  apart and the holder's end of input closes the program's stdin.

When the program ends its exit status is sent as the last frame. If the holder goes away
first, the program is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import subprocess
import termios
import threading
from collections.abc import Callable
from typing import Any

from mien.client import shell as sockets
from mien.client._http import Session
from mien.protocol import shell as wire
from mien.protocol.broker import HostShell

CHUNK = 65536


def set_window(fd: int, rows: int, cols: int) -> None:
    """The terminal's window size (the kernel signals SIGWINCH to its foreground group)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def serve(
    session: Session,
    driver: Any,
    handle: Any,
    shell: HostShell,
    *,
    touch: Callable[[], None] = lambda: None,
    warn: Callable[[str], None] = lambda _m: None,
) -> int | None:
    """Relay one shell session until its program ends; its exit status (``None`` when it
    could not start or the holder left first)."""
    try:
        socket = sockets.connect(session, f"/broker/host/shells/{shell.id}")
    except Exception as exc:
        warn(f"lease {shell.lease_id}: shell session {shell.id}: {exc}")
        return None
    with socket:
        try:
            if shell.tty:
                return _terminal(socket, driver, handle, shell, touch)
            return _pipes(socket, driver, handle, shell, touch)
        except Exception as exc:
            warn(f"lease {shell.lease_id}: shell: {type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                socket.send(wire.error(f"the shell could not run: {exc}"))
            return None


def _start(
    socket: Any, driver: Any, handle: Any, shell: HostShell, **stdio: Any
) -> subprocess.Popen[bytes] | None:
    spawn = getattr(driver, "spawn", None)
    if spawn is None:
        socket.send(wire.error("this sandbox host's driver cannot start interactive programs"))
        return None
    env = {"TERM": shell.term} if shell.tty else {}
    try:
        proc: subprocess.Popen[bytes] = spawn(
            handle, list(shell.argv), tty=shell.tty, env=env, **stdio
        )
    except Exception as exc:
        socket.send(wire.error(f"cannot start {' '.join(shell.argv)}: {exc}"))
        return None
    return proc


def _terminal(
    socket: Any, driver: Any, handle: Any, shell: HostShell, touch: Callable[[], None]
) -> int | None:
    master, slave = os.openpty()
    try:
        set_window(master, shell.rows, shell.cols)
        try:
            proc = _start(socket, driver, handle, shell, stdin=slave, stdout=slave, stderr=slave)
        finally:
            os.close(slave)  # the program holds it now: EIO on the master when it is gone
        if proc is None:
            return None
        left = threading.Event()

        def from_holder() -> None:
            try:
                for message in socket:
                    touch()
                    if isinstance(message, bytes):
                        stream, payload = wire.split(message)
                        if stream == wire.STDIN:
                            _write_all(master, payload)
                    else:
                        control = wire.control(message)
                        size = wire.window(control) if control["type"] == "resize" else None
                        if size is not None:
                            set_window(master, *size)
            except Exception:
                pass  # the connection is gone: the same as the holder leaving
            left.set()

        threading.Thread(target=from_holder, daemon=True, name="mien-shell-in").start()
        while True:
            ready, _, _ = select.select([master], [], [], 0.25)
            if left.is_set() and proc.poll() is None:
                _kill(proc)
                return None
            if not ready:
                if proc.poll() is not None and not _has_data(master):
                    break
                continue
            try:
                chunk = os.read(master, CHUNK)
            except OSError:  # EIO: every copy of the slave side is closed
                break
            if not chunk:
                break
            socket.send(wire.data(wire.STDOUT, chunk))
            touch()
        status = _status(proc.wait())
        socket.send(wire.exited(status))
        return status
    finally:
        os.close(master)


def _pipes(
    socket: Any, driver: Any, handle: Any, shell: HostShell, touch: Callable[[], None]
) -> int | None:
    pipe = subprocess.PIPE
    proc = _start(socket, driver, handle, shell, stdin=pipe, stdout=pipe, stderr=pipe)
    if proc is None:
        return None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin = proc.stdin
    left = threading.Event()

    def from_holder() -> None:
        try:
            for message in socket:
                touch()
                if isinstance(message, bytes):
                    stream, payload = wire.split(message)
                    if stream == wire.STDIN and not stdin.closed:
                        with contextlib.suppress(BrokenPipeError):
                            stdin.write(payload)
                            stdin.flush()
                elif wire.control(message)["type"] == "eof":
                    with contextlib.suppress(BrokenPipeError):
                        stdin.close()
        except Exception:
            pass
        left.set()

    def to_holder(fh: Any, stream: int) -> None:
        while chunk := os.read(fh.fileno(), CHUNK):
            socket.send(wire.data(stream, chunk))
            touch()

    threading.Thread(target=from_holder, daemon=True, name="mien-shell-in").start()
    readers = [
        threading.Thread(target=to_holder, args=(proc.stdout, wire.STDOUT), daemon=True),
        threading.Thread(target=to_holder, args=(proc.stderr, wire.STDERR), daemon=True),
    ]
    for reader in readers:
        reader.start()
    while proc.poll() is None:
        if left.wait(0.25) and proc.poll() is None:
            _kill(proc)
            return None
    for reader in readers:
        reader.join(5)
    status = _status(proc.returncode)
    socket.send(wire.exited(status))
    return status


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _has_data(fd: int) -> bool:
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def _status(code: int) -> int:
    return 128 - code if code < 0 else code
