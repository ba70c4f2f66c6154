"""Helpers the built-in handlers share: the "managed by mien" header, who owns a file, user
edits since the last apply, keeping a released shared file as it is. Running a program inside
the machine root is :mod:`mien.agent.handlers.programs`.

Used by the modules of :mod:`mien.agent.handlers`; third-party handlers may use it too.
Nothing here decides anything: it reads or formats what a handler asked for.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mien.agent.handlers.base import Context, FileSpec, FileState, HandlerError, ManagedRecord

MARK = "Managed by mien"
SHIMS_DIR = "/usr/local/lib/mien/shims"  # the command router's shims (first on PATH)
VENVS_DIR = "/opt/mien/venvs"  # one virtualenv per persona for its pip packages
NPM_DIR = "/opt/mien/npm"  # one global npm prefix per persona for its npm packages
RECORDS_DIR = "/var/lib/mien/records"  # what mien installed, for removal on a switch


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


def remove_tree(path: Path) -> None:
    """Remove ``path`` whatever it is (a link is removed, never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def stale_persona_dirs(ctx: Context, base: str, marker: str, keep: str | None) -> list[str]:
    """The per-persona directories mien made under ``base`` (each holding ``marker``) other
    than ``keep``: what a switch removes (the pip venvs, the npm prefixes)."""
    root_dir = ctx.host_path(base)
    if not root_dir.is_dir():
        return []
    return [
        entry.name
        for entry in sorted(root_dir.iterdir())
        if not entry.name.startswith(".") and (entry / marker).is_file() and entry.name != keep
    ]
