"""Answer "is this persona still applied, with nothing to change?" without the engine.

A whole ``mien apply`` of an unchanged persona spends most of its time importing the
engine, pydantic and Typer. When an apply finds nothing to change, the CLI records here
what that answer depended on: the exact invocation, and a stamp (``lstat``: inode, type,
mode, owner, size, mtime and ctime) of every path the plan looked at — persona files and
directories, the state database, ``etc/passwd`` and ``etc/group``, each file a handler read
or probed (present or missing) and the identity of every directory on the way to them — plus
whether a cron daemon runs. The next ``mien apply`` with the same invocation compares those
stamps before importing anything heavy, and answers at once only if every one still
matches; any difference, however small, falls through to the full plan.

ctime is set by the kernel on every change of content, mode or owner and cannot be set back
by a user, so a matching stamp means the file was not touched. A plan that ran a program
(a package manager, an editor's extension list) depended on more than files and is never
recorded. The record lives in ``ROOT/var/lib/mien/fastpath/`` (root's, mode 0600) and only
ever short-cuts to "nothing to change": a forged or stale record can make mien skip work,
never make it do any.

Used by :mod:`mien.cli.entry` (check, standard library only) and
:mod:`mien.cli.machine.commands` (record).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the check runs before anything heavy is imported: keep it to the basics
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    PathLike = str | os.PathLike[str]

RECORD_DIR = "var/lib/mien/fastpath"
RECORD_NAME = "noop.json"
VERSION = 1
MAX_RECORD = 4 * 1024 * 1024
STATE_FILES = ("var/lib/mien/state.db", "var/lib/mien/state.db-wal", "etc/passwd", "etc/group")
# Kept equal to mien.agent.handlers.schedules.CRON_DAEMONS (a test checks), so the check
# does not import the handler stack.
CRON_DAEMONS = frozenset({"cron", "crond", "cronie", "fcron", "dcron", "anacron", "busybox"})


def invocation_key(
    *,
    persona: str | None,
    root: PathLike,
    user: str | None,
    personas: Sequence[PathLike],
    overlays: Sequence[PathLike],
) -> str:
    """A digest of everything on the command line (and the directory) the plan depends on."""
    data = {
        "version": VERSION,
        "persona": persona,
        "root": os.path.abspath(root),
        "user": user,
        "personas": [os.path.abspath(p) for p in personas],
        "overlays": [os.path.abspath(p) for p in overlays],
        "cwd": os.getcwd(),
        "euid": os.geteuid(),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _stamp(path: str, *, identity_only: bool = False) -> list[int] | None:
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    fields = [st.st_mode, st.st_ino, st.st_dev, st.st_uid, st.st_gid]
    if not identity_only:
        fields += [st.st_nlink, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    return fields


def cron_running() -> bool:
    """Whether a cron daemon runs (the same answer the schedules handler gets)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", "rb") as f:
                name = f.read(64).decode(errors="replace").strip()
        except OSError:
            continue
        if name in CRON_DAEMONS:
            return True
    return False


def stamps(root: PathLike, observed: Iterable[str], files: Iterable[str]) -> dict[str, Any]:
    """Stamp ``observed`` host paths fully and the directories leading to them by identity.

    ``files`` (persona files and directories outside the root) are stamped fully too.
    """
    top = os.path.abspath(root)
    full: set[str] = {os.path.abspath(p) for p in observed}
    full.update(os.path.abspath(p) for p in files)
    full.update(os.path.join(top, name) for name in STATE_FILES)
    ancestors: set[str] = {top}
    for path in full:
        parent = os.path.dirname(path)
        while parent.startswith(top + "/") and parent not in ancestors:
            ancestors.add(parent)
            parent = os.path.dirname(parent)
    ancestors -= full
    result: dict[str, Any] = {p: _stamp(p) for p in sorted(full)}
    result.update({p: ["dir", *(_stamp(p, identity_only=True) or [])] for p in ancestors})
    return result


def _matches(recorded: Mapping[str, Any]) -> bool:
    for path, expected in recorded.items():
        if isinstance(expected, list) and expected[:1] == ["dir"]:
            now = _stamp(path, identity_only=True)
            if ["dir", *(now or [])] != expected:
                return False
        elif _stamp(path) != expected:
            return False
    return True


def _record_path(root: PathLike) -> str:
    return os.path.join(os.path.abspath(root), RECORD_DIR, RECORD_NAME)


def record(
    root: PathLike,
    key: str,
    persona: str,
    observed: Iterable[str],
    files: Iterable[str],
) -> None:
    """Remember that applying with ``key`` found nothing to change, and what that rested on."""
    directory = os.path.join(os.path.abspath(root), RECORD_DIR)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    data: dict[str, Any] = {
        "version": VERSION,
        "key": key,
        "persona": persona,
        "cron": cron_running() if os.path.abspath(root) == "/" else None,
        "paths": stamps(root, observed, files),
    }
    tmp = os.path.join(directory, f".{RECORD_NAME}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, json.dumps(data, separators=(",", ":")).encode())
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(directory, RECORD_NAME))


def check(root: PathLike, key: str) -> str | None:
    """The persona's name if the recorded no-op still holds for ``key``; else ``None``."""
    try:
        fd = os.open(_record_path(root), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > MAX_RECORD:
            return None
        raw = os.read(fd, MAX_RECORD + 1)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION or data.get("key") != key:
        return None
    paths, persona = data.get("paths"), data.get("persona")
    if not isinstance(paths, dict) or not isinstance(persona, str) or not _matches(paths):
        return None
    if data.get("cron") is not None and data["cron"] != cron_running():
        return None
    return persona


class Memo:
    """The same short cut for a long-running process (the agent, the adaptation loop).

    After an apply found nothing to change, the engine remembers — in memory, under a key
    naming what was applied — the result and the stamps of everything the plan looked at.
    The next identical apply compares the stamps and, only if every one still matches,
    answers with the remembered result without opening the state or planning. A few keys
    are kept (the agent alternates between its persona and the adaptation loop's overlays);
    the oldest goes first.
    """

    LIMIT = 8

    def __init__(self) -> None:
        self._entries: dict[str, tuple[dict[str, Any], bool | None, Any]] = {}

    def remember(
        self,
        key: str,
        value: Any,
        root: PathLike,
        observed: Iterable[str],
        files: Iterable[str] = (),
    ) -> None:
        cron = cron_running() if os.path.abspath(root) == "/" else None
        self._entries.pop(key, None)
        self._entries[key] = (stamps(root, observed, files), cron, value)
        while len(self._entries) > self.LIMIT:
            del self._entries[next(iter(self._entries))]

    def recall(self, key: str) -> Any | None:
        """The remembered value if nothing it rested on changed; else ``None`` (and the
        entry is dropped)."""
        found = self._entries.get(key)
        if found is None:
            return None
        paths, cron, value = found
        if _matches(paths) and (cron is None or cron == cron_running()):
            return value
        del self._entries[key]
        return None

    def forget(self) -> None:
        self._entries.clear()
