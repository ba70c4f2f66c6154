"""The command log of shims and unprivileged ``mien exec``: one file per uid, so nobody
can write a line in another user's name.

A shim runs as whoever typed the command, so it can only write what that user can write.
A single log every user may append to (as mien once had) lets any user forge lines in
anybody's name and erase everyone's. Instead the apply creates, as root,
``/var/log/mien/commands/<uid>.jsonl`` for every account in ``/etc/passwd``: owned by that
uid, mode 0200 (append by the owner; root reads), in a directory only root may change
(0711: a user cannot list, create or replace files there). A shim appends to the file of
its real uid (from ``id``, never ``$USER``); root's shims create ``0.jsonl`` if missing.

What this guarantees, and what it does not:

* the **file** a line is in names the uid that wrote it: a line in ``1000.jsonl`` was
  written by uid 1000 (or root). Read the actor from the file name, not from the line;
* a user can still write anything into *their own* file, bypass the shim (it is a
  guardrail, see docs/command-router.md), erase or rewrite their own lines (they own the
  file) and fill the disk through it; no user can touch another user's file;
* an account added after the last apply has no file until the next apply: its shims log
  nothing meanwhile (a shim never fails because of the log).

The old shared ``/var/log/mien/commands.jsonl`` is kept for its history but made
root-only (0600) by the same operation. Used by :mod:`.commands` (plan, perform, revert)
and :func:`mien.agent.router_exec.audit`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from typing import Any

from mien.agent.handlers.base import Context, HandlerError, Operation
from mien.agent.router import COMMANDS_LOG_DIR, LEGACY_COMMANDS_LOG, commands_log

DIR_MODE = 0o711
FILE_MODE = 0o200
KEY = COMMANDS_LOG_DIR


def accounts(ctx: Context) -> list[int]:
    """Every uid in the root's ``/etc/passwd`` (root first), each once."""
    uids = {0}
    try:
        text = ctx.read("/etc/passwd").content or b""
    except HandlerError:
        text = b""
    for line in text.decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            uids.add(int(fields[2]))
    return sorted(uids)


def plan(ctx: Context, handler: str) -> Operation | None:
    """The operation creating what is missing (None when every file is in place)."""
    missing = [uid for uid in accounts(ctx) if not _exists(ctx, commands_log(uid))]
    legacy = _legacy_mode(ctx)
    if not missing and legacy is None:
        return None
    what = f"command logs for uid {', '.join(map(str, missing))}" if missing else ""
    if legacy is not None:
        what += ("; " if what else "") + f"{LEGACY_COMMANDS_LOG} made root-only"
    data = {"path": KEY, "uids": missing, "legacy_mode": legacy}
    return Operation(handler, KEY, f"create {what} in {COMMANDS_LOG_DIR}", data)


def _exists(ctx: Context, path: str) -> bool:
    return os.path.lexists(ctx.host_path(path))


def _legacy_mode(ctx: Context) -> int | None:
    """The mode of the shared log of older mien when users may still write it."""
    try:
        st = os.lstat(ctx.host_path(LEGACY_COMMANDS_LOG))
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o022:
        return None
    return stat.S_IMODE(st.st_mode)


def _checked(data: Mapping[str, Any]) -> tuple[list[int], int | None]:
    uids, legacy = data.get("uids"), data.get("legacy_mode")
    if (
        data.get("path") != KEY
        or not isinstance(uids, list)
        or not all(isinstance(u, int) and u >= 0 for u in uids)
        or not (legacy is None or isinstance(legacy, int))
    ):
        raise HandlerError(f"commands: unexpected operation data {dict(data)!r}")
    return uids, legacy


def perform(ctx: Context, data: Mapping[str, Any]) -> None:
    """Create the directory and each missing per-uid file (``O_EXCL``: never truncate)."""
    uids, legacy = _checked(data)
    directory = ctx.host_path(COMMANDS_LOG_DIR)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=DIR_MODE)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise HandlerError(f"{COMMANDS_LOG_DIR} is not a directory owned by mien's user")
    os.chmod(directory, DIR_MODE)
    for uid in uids:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            fd = os.open(ctx.host_path(commands_log(uid)), flags, FILE_MODE)
        except FileExistsError:
            continue
        try:
            os.fchmod(fd, FILE_MODE)  # the umask must not change who may append
            if os.geteuid() == 0:
                os.fchown(fd, uid, -1)
        finally:
            os.close(fd)
    if legacy is not None:
        _chmod_nofollow(ctx.host_path(LEGACY_COMMANDS_LOG), legacy & 0o700)


def revert(ctx: Context, data: Mapping[str, Any]) -> None:
    """Undo of a failed apply: remove only files nothing was written to."""
    uids, legacy = _checked(data)
    for uid in uids:
        path = ctx.host_path(commands_log(uid))
        try:
            if os.lstat(path).st_size == 0:
                path.unlink()
        except FileNotFoundError:
            continue
    if legacy is not None:
        _chmod_nofollow(ctx.host_path(LEGACY_COMMANDS_LOG), legacy)


def _chmod_nofollow(path: os.PathLike[str], mode: int) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, OSError):
        return
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
