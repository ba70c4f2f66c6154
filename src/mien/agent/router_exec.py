"""Running what the command router decided: replacing the process for ``mien exec``,
capturing a remote command's output with a timeout, and auditing both.

Split from :mod:`mien.agent.router` (the pure table and its rules) and imported only when a
command actually runs: ``mien exec`` calls :func:`run` after reading the table, and the
agent's sync loop runs remote commands through it with ``capture=True``.

The real command is looked up on ``PATH`` *without* the shim directories (a shim found there
would route the command back to itself), and the command then gets the shims first on its
``PATH`` so that what it runs in turn is routed too.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mien.agent.audit_log import local_actor
from mien.agent.own_env import for_children
from mien.agent.router import (
    DEFAULT_PATH,
    NOT_FOUND,
    OUTPUT_LIMIT,
    REFUSED,
    ROUTED_ENV,
    SHIMS_DIR,
    TIMED_OUT,
    Completed,
    Decision,
    Override,
    PassThrough,
    Refuse,
    RoutingTable,
    commands_log,
    host_path,
    load_table,
    routed_from,
)


def run(
    root: Path,
    argv: Sequence[str],
    *,
    capture: bool = False,
    timeout: float | None = None,
    actor: str | None = None,
    env: Mapping[str, str] | None = None,
    table: RoutingTable | None = None,
    limit: int = OUTPUT_LIMIT,
) -> Completed:
    """Route ``argv`` and run it, audited.

    Without ``capture`` (``mien exec``) a command that may run *replaces this process*, so
    this returns only when it is refused or cannot be started. With ``capture`` (remote
    commands) it runs as a subprocess in its own session, killed with its group after
    ``timeout`` seconds (status 124), and the first ``limit`` bytes of each output are kept.
    Raises :class:`~mien.agent.router.RouteError` for an unreadable table or an empty
    command line.
    """
    environ = dict(os.environ if env is None else env)
    if table is None:
        table = load_table(root) or RoutingTable(None)
    decision = table.route(argv, routed_from(environ))
    base = {
        "command": decision.command,
        "argv": list(argv),
        "via": "remote" if capture else "mien exec",
    }
    if isinstance(decision, Refuse):
        detail = {**base, "pattern": decision.pattern}
        ok = audit(root, "command.refused", table.persona, actor, detail)
        return Completed(decision, REFUSED, decision.reason, audited=ok)

    target = decision.argv
    if isinstance(decision, Override) and target[0].startswith("/"):
        # A replacement given as a path (or an inline script mien wrote) is a path on the
        # machine, as every path of a persona: under --root, never the host's.
        executable, problem = locate(str(host_path(root, target[0])), "", root)
    else:
        executable, problem = locate(target[0], environ.get("PATH", DEFAULT_PATH), root)
    ok = True
    if isinstance(decision, Override):
        detail = {**base, "replacement": list(decision.replacement.argv)}
        ok = audit(root, "command.overridden", table.persona, actor, detail)
    if problem:
        return _cannot_start(decision, target[0], problem, table.persona, ok)

    child_env = child_environment(root, environ, decision)
    if not capture:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(executable, list(target), child_env)
        except OSError as exc:
            return Completed(
                decision, REFUSED, f"{target[0]}: cannot run: {exc.strerror}", audited=ok
            )

    done = run_captured(executable, target, child_env, root, timeout, limit)
    ok = (
        audit(
            root,
            "command.run",
            table.persona,
            actor,
            {
                **base,
                "status": done.status,
                "duration": round(done.duration, 3),
                "timed_out": done.timed_out,
                "stdout_bytes": len(done.stdout) + done.stdout_dropped,
                "stderr_bytes": len(done.stderr) + done.stderr_dropped,
            },
        )
        and ok
    )
    return Completed(
        decision,
        done.status,
        done.message,
        done.stdout,
        done.stderr,
        done.stdout_dropped,
        done.stderr_dropped,
        done.timed_out,
        done.duration,
        ok,
    )


def _cannot_start(
    decision: Decision, name: str, problem: str, persona: str | None, audited: bool
) -> Completed:
    status = REFUSED if problem == "not executable" else NOT_FOUND
    if isinstance(decision, Override):
        what = "cannot be executed" if status == REFUSED else "is not installed"
        message = (
            f"'{decision.command}' is overridden by persona '{persona}' with "
            f"{decision.replacement.describe()}, but {name} {what}"
        )
    elif status == REFUSED:
        message = f"{name}: permission denied (not executable)"
    else:
        message = f"{name}: command not found"
    return Completed(decision, status, message, audited=audited)


# --- finding the real command --------------------------------------------------------------


def shim_dirs(root: Path) -> frozenset[str]:
    """Directories whose entries are shims, never the real command: the root's and the
    machine's (a host's own shims do not route commands for another root)."""
    dirs = {os.path.normpath(str(host_path(root, SHIMS_DIR))), SHIMS_DIR}
    return frozenset(dirs | {os.path.realpath(d) for d in dirs})


def locate(name: str, path: str, root: Path) -> tuple[str, str]:
    """The real executable for ``name`` on ``path``, skipping the shim directories and
    empty entries. Returns ``(path, "")`` or ``(name, "missing" | "not executable")``."""
    if "/" in name:
        if not os.path.exists(name):
            return name, "missing"
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            return name, "not executable"
        return name, ""
    skip = shim_dirs(root)
    for directory in path.split(":"):
        if not directory or os.path.normpath(directory) in skip:
            continue
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            if os.path.realpath(directory) in skip:
                continue
            return candidate, ""
    return name, "missing"


def child_environment(root: Path, environ: Mapping[str, str], decision: Decision) -> dict[str, str]:
    """The command's environment: the shims first on PATH (so the commands it runs are
    routed too) and the MIEN_ROUTED chain extended by an override, ended by a re-entry."""
    env = for_children(environ)
    shims = str(host_path(root, SHIMS_DIR))
    path = env.get("PATH", DEFAULT_PATH)
    if os.path.isdir(shims) and shims not in path.split(":"):
        env["PATH"] = f"{shims}:{path}"
    if isinstance(decision, Override) and decision.replacement.may_reenter(decision.command):
        chain = [n for n in env.get(ROUTED_ENV, "").split(":") if n]
        env[ROUTED_ENV] = ":".join([*chain, decision.command])
    elif isinstance(decision, PassThrough) and decision.reentered:
        env.pop(ROUTED_ENV, None)
    return env


# --- remote commands: a subprocess with a timeout and capped output -------------------------


@dataclass(frozen=True, slots=True)
class Captured:
    status: int
    message: str
    stdout: bytes
    stderr: bytes
    stdout_dropped: int
    stderr_dropped: int
    timed_out: bool
    duration: float


class _Capped:
    """Keeps the first ``limit`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = max(0, self.limit - len(self.data))
        self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - room)


def run_captured(
    executable: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    timeout: float | None,
    limit: int = OUTPUT_LIMIT,
    clock: Callable[[], float] = time.monotonic,
) -> Captured:
    """Run to completion or ``timeout`` (then the whole process group is killed).

    Output is read as it comes, so a command printing gigabytes costs ``limit`` bytes of
    memory. The command ends when *it* exits: a background child still holding the pipes
    does not keep the caller waiting (the exit is watched through a pidfd).
    """
    start = clock()
    try:
        proc = subprocess.Popen(
            list(argv),
            executable=executable,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        message = f"{argv[0]}: cannot run: {exc.strerror}"
        return Captured(REFUSED, message, b"", b"", 0, 0, False, clock() - start)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Capped(limit), _Capped(limit)
    streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    deadline = None if timeout is None else start + timeout
    timed_out = False
    with selectors.DefaultSelector() as sel, _pidfd(proc.pid) as pidfd:
        for fd in streams:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ)
        exited = False
        while not exited and any(_is_open(sel, fd) for fd in streams):
            wait = None if deadline is None else deadline - clock()
            if wait is not None and wait <= 0:
                timed_out = True
                break
            for key, _ in sel.select(wait):
                if key.fd == pidfd:
                    exited = True
                else:
                    _read(sel, key.fd, streams[key.fd])
        # What the command wrote before it exited is in the pipes: take it, then stop.
        for fd, sink in streams.items():
            while _is_open(sel, fd) and _read(sel, fd, sink):
                pass
    if not timed_out:
        try:
            remaining = None if deadline is None else max(0.0, deadline - clock())
            proc.wait(remaining)
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    code = proc.returncode
    status = TIMED_OUT if timed_out else (128 - code if code < 0 else code)
    message = f"timed out after {timeout:g}s: killed" if timed_out else ""
    duration = clock() - start
    return Captured(
        status,
        message,
        bytes(out.data),
        bytes(err.data),
        out.dropped,
        err.dropped,
        timed_out,
        duration,
    )


def _is_open(sel: selectors.BaseSelector, fd: int) -> bool:
    return fd in sel.get_map()


def _read(sel: selectors.BaseSelector, fd: int, sink: _Capped) -> bool:
    """Read what is there; False when nothing more is available now (or ever)."""
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return False
    if not chunk:
        sel.unregister(fd)
        return False
    sink.add(chunk)
    return True


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int | None]:
    """A descriptor that becomes readable when ``pid`` exits (None where unsupported; the
    caller then waits for the pipes to close)."""
    try:
        fd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


# --- audit -------------------------------------------------------------------------------------


def audit(
    root: Path, event: str, persona: str | None, actor: str | None, detail: Mapping[str, Any]
) -> bool:
    """Record ``event`` in the state database (and its audit.jsonl); a caller who cannot
    write the database (a non-root user) appends to the command log instead. Returns
    whether the event was recorded anywhere; the command's fate does not depend on it."""
    import json
    import sqlite3

    who = actor or local_actor()
    state_dir = host_path(root, "/var/lib/mien")
    if os.access(state_dir, os.W_OK) and os.access(state_dir / "state.db", os.W_OK):
        # Imported here: the state layer pulls in pydantic, which a passthrough never needs.
        from mien.agent.state import State

        try:
            with State(root, create=False) as state:
                state.audit(event, persona=persona, actor=who, **detail)
            return True
        except (OSError, sqlite3.Error, RuntimeError):
            pass
    # Only into the log of the real uid, which root created for it (see
    # mien.agent.handlers.command_log); root's own is created here when missing.
    uid = os.getuid()
    line = {"ts": round(time.time(), 6), "event": event, "actor": who, "uid": uid}
    line.update(persona=persona, **detail)
    data = (json.dumps(line, default=str) + "\n").encode()
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | (os.O_CREAT if uid == 0 else 0)
    try:
        fd = os.open(host_path(root, commands_log(uid)), flags, 0o600)
    except OSError:
        return False
    try:
        os.write(fd, data)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
