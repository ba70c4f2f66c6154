"""Helpers the built-in handlers share: the "managed by mien" header, who owns a file, user
edits since the last apply, keeping a released shared file as it is, and running a program
inside the machine root (``chroot`` when the root is not ``/``) as the persona user.

Used by the modules of :mod:`mien.agent.handlers`; third-party handlers may use it too.
Nothing here decides anything: it reads, formats or runs what a handler asked for.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mien.agent.handlers.base import Context, FileSpec, FileState, HandlerError, ManagedRecord

MARK = "Managed by mien"
SHIMS_DIR = "/usr/local/lib/mien/shims"  # the command router's shims (first on PATH)
VENVS_DIR = "/opt/mien/venvs"  # one virtualenv per persona for its pip packages
RECORDS_DIR = "/var/lib/mien/records"  # what mien installed, for removal on a switch
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# Variables a child process may need from the agent's environment (proxies, locale).
class Launches:
    """Programs run so far in this process. A plan that ran one depended on more than
    files, so its answer cannot be stamped for the no-op fast path (mien.agent.noop)."""

    count = 0


_PASSED_THROUGH = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def header(persona: str, detail: str = "", comment: str = "#") -> str:
    """The first line(s) of a generated file: who manages it, for which persona."""
    first = f"{comment} {MARK} (persona {persona})."
    if detail:
        first += f" {detail}"
    return first + "\n"


def strip_header(text: str, comment: str = "#") -> str:
    """``text`` without the leading mien header lines (a file mien merged into)."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith(f"{comment} {MARK}"):
        lines.pop(0)
    return "".join(lines)


def under_home(ctx: Context, path: str) -> bool:
    home = ctx.user.home.rstrip("/")
    return bool(home) and home != "" and (path == home or path.startswith(home + "/"))


def owner_of(ctx: Context, path: str) -> tuple[int, int]:
    """Files under the persona user's home belong to the user; everything else to root."""
    return ctx.user_ids() if under_home(ctx, path) else (0, 0)


def edited(ctx: Context, path: str) -> tuple[ManagedRecord, FileState] | None:
    """The record and current state of ``path`` if the user changed it since mien wrote it
    (None when unchanged, not managed, or deleted: a deleted file holds nothing to keep)."""
    record = ctx.managed.get(path)
    if record is None or record.written_hash is None:
        return None
    try:
        current = ctx.read(path)
    except HandlerError:
        return None
    if current.content is None or sha256_hex(current.content) == record.written_hash:
        return None
    return record, current


def hold(ctx: Context, path: str, meta: Mapping[str, Any], summary: str) -> FileSpec:
    """Keep a shared file exactly as it is now, with nothing of it managed any more.

    A handler that merged keys into a file that was there before mien (the user's
    ``settings.ini``, ``/etc/passwd``) takes its keys out and must not let the engine
    restore the whole file as it was before mien: that would undo the user's later edits.
    The contract has no "write this, then forget the file", so the file stays recorded,
    unchanged, with ``released`` meta.
    """
    return FileSpec(path, ctx.read(path), {**meta, "released": True}, summary)


def is_released(record: ManagedRecord | None) -> bool:
    return record is not None and bool(record.meta.get("released"))


def text_of(state: FileState, path: str) -> str | None:
    """A file's content as text (None when absent); undecodable bytes are an error."""
    if state.content is None:
        return None
    try:
        return state.content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HandlerError(
            f"{path} is not UTF-8 text (byte {exc.start}): mien leaves it alone"
        ) from None


# --- running programs inside the root ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunAs:
    """Who a program runs as (JSON-friendly, so operations can keep it in their data)."""

    name: str
    uid: int
    gid: int
    home: str

    def as_data(self) -> dict[str, Any]:
        return {"name": self.name, "uid": self.uid, "gid": self.gid, "home": self.home}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RunAs:
        return cls(str(data["name"]), int(data["uid"]), int(data["gid"]), str(data["home"]))

    @classmethod
    def of(cls, ctx: Context) -> RunAs:
        return cls(ctx.user.name, ctx.user.uid, ctx.user.gid, ctx.user.home)


def child_env(
    ctx_env: Mapping[str, str], user: RunAs | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A small, predictable environment: standard PATH, the user's HOME, proxies, extras."""
    env = {"PATH": STANDARD_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    for name in _PASSED_THROUGH:
        if name in ctx_env:
            env[name] = ctx_env[name]
    if user is not None:
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
    else:
        env["HOME"] = "/root"
    env.update(extra or {})
    return env


def run_in_root(
    root: Path,
    argv: Sequence[str],
    *,
    user: RunAs | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    what: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (paths as seen inside the root) and return it if it succeeded.

    On ``/`` the program runs directly (as ``user`` when given); under another root it runs
    through ``chroot --userspec``, so it sees the root's files, users and configuration.
    Failure raises :class:`HandlerError` naming the command and the end of its output.
    """
    Launches.count += 1
    label = what or " ".join(argv)
    run_as_other = user is not None and user.uid != os.geteuid()
    kwargs: dict[str, Any] = {}
    if root == Path("/"):
        command = list(argv)
        if run_as_other:
            assert user is not None
            if os.geteuid() != 0:
                raise HandlerError(f"{label}: running as {user.name} needs root privileges")
            kwargs = {"user": user.uid, "group": user.gid, "extra_groups": []}
    else:
        if os.geteuid() != 0:
            raise HandlerError(f"{label}: running a program inside {root} needs root (chroot)")
        spec = [f"--userspec={user.uid}:{user.gid}"] if user is not None else []
        command = ["chroot", *spec, str(root), *argv]
    cwd = None
    if user is not None:
        home = Path(user.home) if root == Path("/") else root / user.home.lstrip("/")
        cwd = str(home) if home.is_dir() else None
    try:
        proc = subprocess.run(
            command,
            env=dict(env) if env is not None else child_env({}, user),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd if root == Path("/") else None,
            **kwargs,
        )
    except subprocess.TimeoutExpired:
        raise HandlerError(f"{label}: still running after {timeout:.0f}s, stopped") from None
    except OSError as exc:
        raise HandlerError(f"{label}: cannot run: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:]
        detail = "; ".join(tail) if tail else "no output"
        raise HandlerError(f"{label}: exited with status {proc.returncode}: {detail}")
    return proc
