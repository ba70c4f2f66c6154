"""Keeping the state database trustworthy: checked at open, backed up, recoverable.

``state.db`` is the machine's memory (its history and the way back to before mien); a
damaged or lost one must stop mien with a clear message instead of a traceback, or worse, a
silent fresh start that forgets the machine as it was. So:

* at open, the file must look like SQLite (a 16-byte header read); an empty or missing
  database while a backup exists means it was lost, not that mien never ran here;
* ``PRAGMA quick_check`` runs when the database may have changed behind mien's back: the
  size and modification time of ``state.db`` and its WAL at the last clean close are kept in
  ``state.db.clean``; when they still match, the check is skipped (a no-op apply stays fast);
* after every applied state, :func:`backup` copies the database with SQLite's backup API to
  ``state.db.backup`` (the last good state);
* :func:`restore_backup` and :func:`start_over` are what ``mien recover`` does with a
  damaged database.

Used by :class:`mien.agent.state.State` and :meth:`mien.agent.engine.Engine.recover`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

# SQLITE_CORRUPT, SQLITE_NOTADB: the database is damaged (a full disk or a lock is not).
DAMAGE_CODES = (11, 26)
RECOVER_HINT = "run `mien recover` (see docs/operations.md, 'When mien needs attention')"


class NeedsAttention(RuntimeError):
    """The machine or mien's state needs a person: every changing command stops (exit 3)."""


class StateDamaged(NeedsAttention):
    """The state database is missing, not a database, or fails its integrity check."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(
            f"the state database {path} {problem}; mien will not act on it: {RECOVER_HINT}"
        )


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in DAMAGE_CODES


def _companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".backup")


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".clean")


def _fingerprint(path: Path) -> list[list[int]]:
    out: list[list[int]] = []
    for p in (path, _companions(path)[0]):
        try:
            st = p.stat()
        except FileNotFoundError:
            out.append([])
            continue
        out.append([st.st_ino, st.st_size, st.st_mtime_ns])
    return out


def before_open(path: Path) -> None:
    """Refuse a database that is lost: missing or empty while a backup exists.

    Only ``stat`` is used: opening and closing another descriptor of the database file would
    drop every SQLite lock this process holds on it (POSIX advisory locks belong to the
    process), and another process could then checkpoint the WAL from under a connection
    that is still open (the agent's loop keeps one). A file that is not SQLite is reported
    by SQLite itself (``SQLITE_NOTADB``) when the connection first reads it.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if backup_path(path).exists():
            raise StateDamaged(
                path, "is missing (a backup of the last good state exists)"
            ) from None
        return
    # Only a lost database asks about the backup: every open pays for the first stat alone.
    if size == 0 and backup_path(path).exists():
        raise StateDamaged(path, "is empty (a backup of the last good state exists)")


def verify_if_changed(db: sqlite3.Connection, path: Path) -> None:
    """Run ``PRAGMA quick_check`` unless the files are as mien left them at a clean close."""
    try:
        known = json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        known = None
    if known == _fingerprint(path):
        return
    verify(db, path)


def verify(db: sqlite3.Connection, path: Path, *, full: bool = False) -> None:
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = [str(r[0]) for r in db.execute(f"PRAGMA {pragma}(5)")]
    except sqlite3.DatabaseError as exc:
        raise StateDamaged(path, f"is damaged ({exc})") from None
    if rows != ["ok"]:
        raise StateDamaged(path, f"is damaged ({'; '.join(rows)})")


def mark_clean(path: Path) -> None:
    """Remember how the files look now (after a clean close), so the next open skips the check."""
    marker = _marker(path)
    text = json.dumps(_fingerprint(path))
    with contextlib.suppress(OSError):
        if marker.exists() and marker.read_text() == text:
            return
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, marker)


def forget_clean(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        _marker(path).unlink()


def backup(db: sqlite3.Connection, path: Path) -> None:
    """Copy the (checked) database to ``state.db.backup``, atomically and durably."""
    target = backup_path(path)
    tmp = target.with_name(target.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        copy = sqlite3.connect(tmp)
        try:
            db.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _set_aside(path: Path, label: str) -> Path:
    """Move the database (and its WAL) out of the way, kept for forensics; return where."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.{label}-{stamp}")
    for source, suffix in ((path, ""), *((c, c.name[len(path.name) :]) for c in _companions(path))):
        if source.exists():
            os.replace(source, aside.with_name(aside.name + suffix))
    forget_clean(path)
    return aside


def restore_backup(path: Path) -> str:
    """Put the backup in place of a damaged database; return what was done (for the user)."""
    source = backup_path(path)
    if not source.exists():
        raise NeedsAttention(
            f"no backup of {path} to restore: `mien recover --start-over` forgets mien's state "
            "of this machine and starts afresh (history and the way back to before mien are lost)"
        )
    check = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        verify(check, source, full=True)
    except StateDamaged:
        raise NeedsAttention(
            f"the backup {source} is damaged too: `mien recover --start-over` forgets mien's "
            "state of this machine and starts afresh"
        ) from None
    finally:
        check.close()
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(source.stat().st_mtime))
    present = any(p.exists() for p in (path, *_companions(path)))
    aside = _set_aside(path, "damaged") if present else None
    tmp = path.with_name(path.name + ".restoring")
    tmp.write_bytes(source.read_bytes())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    kept = f"; the damaged one is kept as {aside}" if aside else ""
    return f"restored the state database from its backup of {when}{kept}"


def start_over(path: Path) -> str:
    """Set the database and its backup aside: mien starts afresh on this machine."""
    present = any(p.exists() for p in (path, *_companions(path)))
    aside = _set_aside(path, "abandoned") if present else None
    old_backup = backup_path(path)
    if old_backup.exists():
        os.replace(old_backup, old_backup.with_name(old_backup.name + ".abandoned"))
    kept = f" (the old one is kept as {aside})" if aside else ""
    return f"mien starts afresh on this machine: its state database was set aside{kept}"
