"""The persistent persona layer: one SQLite database per machine root.

``ROOT/var/lib/mien/state.db`` holds everything the agent must not forget: the active
persona, every applied state (history, with each managed file's bytes, so any of them can be
restored exactly), the journal of the transaction in progress (before-images are committed
here *before* a file is touched, which is what makes ``kill -9`` recoverable), the user's
customizations and files saved from drift (:mod:`mien.agent.state_user`), and the audit
trail (:mod:`mien.agent.audit_log`).

File contents are stored once, by SHA-256, in ``blobs``. The database runs in WAL mode with
``synchronous=FULL`` so a committed journal entry survives a crash. The schema is versioned
with ``PRAGMA user_version`` and migrated forward on open.

Used by the engine (:mod:`mien.agent.engine_base`, :mod:`mien.agent.recovery`,
:mod:`mien.agent.transaction`), the CLI (status, history, customize) and the
router (audit of overrides and refusals).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mien.agent import state_check
from mien.agent.audit_log import AUDIT_LOG, AuditBuffer, AuditRecord, audit_records, local_actor
from mien.agent.handlers.base import FileState, ManagedRecord
from mien.agent.locking import STATE_DIR, Busy, exclusive
from mien.agent.state_schema import SCHEMA
from mien.agent.state_user import UserRows

__all__ = ["AUDIT_LOG", "STATE_DIR", "Busy", "State", "exclusive", "sha256"]

DB_NAME = "state.db"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    persona: str
    hash: str
    kind: str
    applied_at: float
    note: str


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    kind: str  # "file" | "mkdir" | "op"
    target: str
    before: FileState | None  # for files
    data: dict[str, Any]


class State(UserRows):
    """Open state database of one root. Use as a context manager or call :meth:`close`."""

    def __init__(self, root: Path, *, create: bool = True, memory: bool = False) -> None:
        self.root = root
        self.dir = root / STATE_DIR
        path = self.dir / DB_NAME
        self.path = path
        state_check.before_open(path)
        if not create and not path.exists():
            raise FileNotFoundError(path)
        self._audit = AuditBuffer(root)
        self.damaged = False  # set when damage shows after open: the next open checks again
        self.memory = memory
        if memory:
            # An empty state that lives only in this process: what a read-only command
            # (``mien plan`` on a root mien never touched) sees, without creating anything.
            self.db = sqlite3.connect(":memory:", isolation_level=None)
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            return
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a journal entry is
        # durable exactly when we say so.
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            os.chmod(path, 0o600)
            state_check.verify_if_changed(self.db, path)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            if not state_check.is_damage(exc):
                raise state_check.NeedsAttention(
                    f"cannot open the state database {path}: {exc} (is the disk full?); "
                    f"{state_check.RECOVER_HINT}"
                ) from None
            raise state_check.StateDamaged(path, f"is damaged ({exc})") from None
        except BaseException:
            self.db.close()
            raise

    @staticmethod
    def exists(root: Path) -> bool:
        """Whether mien has ever opened a state database on ``root``."""
        return (root / STATE_DIR / DB_NAME).exists()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()
        if not self.damaged and not self.memory:
            state_check.mark_clean(self.path)

    def backup(self) -> None:
        """Keep a copy of this (checked) database as the last good state."""
        state_check.backup(self.db, self.path)

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(SCHEMA):
            raise RuntimeError(
                f"{self.path} was written by a newer mien (schema {version}); upgrade mien"
            )
        for number in range(version, len(SCHEMA)):
            step = SCHEMA[number]
            with self.transaction():
                if callable(step):
                    step(self.db)
                else:
                    for statement in step.split(";"):
                        if statement.strip():
                            self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={number + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction; committed (durably) when the block ends without error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            self._audit.discard()
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self._audit.flush()

    # --- blobs -------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        digest = sha256(data)
        self.db.execute("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", (digest, data))
        return digest

    def blob(self, digest: str) -> bytes:
        row = self.db.execute("SELECT data FROM blobs WHERE hash = ?", (digest,)).fetchone()
        data = None if row is None else bytes(row[0])
        if data is None or sha256(data) != digest:  # garbage SQLite's own check cannot see
            self.damaged = True
            raise state_check.StateDamaged(self.path, f"has lost or damaged content {digest}")
        return data

    def _file_state(self, digest: str | None, mode: int, uid: int, gid: int) -> FileState:
        return FileState(None if digest is None else self.blob(digest), mode, uid, gid)

    # --- meta --------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- managed files and pristine images ---------------------------------------------

    def managed(self) -> dict[str, ManagedRecord]:
        rows = self.db.execute(
            "SELECT path, handler, hash, meta, setting, capture_as FROM managed ORDER BY path"
        )
        return {r[0]: ManagedRecord(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows}

    def replace_managed(self, records: Mapping[str, ManagedRecord]) -> None:
        self.db.execute("DELETE FROM managed")
        self.db.executemany(
            "INSERT INTO managed (path, handler, hash, meta, setting, capture_as) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    r.path,
                    r.handler,
                    r.written_hash,
                    json.dumps(dict(r.meta)),
                    r.setting,
                    r.capture_as,
                )
                for r in records.values()
            ],
        )

    def pristine(self, path: str) -> FileState | None:
        """The file as it was before mien first managed it (None: never recorded)."""
        row = self.db.execute(
            "SELECT hash, mode, uid, gid FROM pristine WHERE path = ?", (path,)
        ).fetchone()
        return None if row is None else self._file_state(*row)

    def remember_pristine(self, path: str, state: FileState) -> None:
        digest = None if state.content is None else self.put_blob(state.content)
        self.db.execute(
            "INSERT OR IGNORE INTO pristine (path, hash, mode, uid, gid) VALUES (?, ?, ?, ?, ?)",
            (path, digest, state.mode, state.uid, state.gid),
        )

    def forget_pristine(self, path: str) -> None:
        self.db.execute("DELETE FROM pristine WHERE path = ?", (path,))

    def add_created_dir(self, path: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO created_dirs (path) VALUES (?)", (path,))

    def created_dirs(self) -> list[str]:
        """Directories mien created (paths on the machine), deepest first."""
        rows = [str(r[0]) for r in self.db.execute("SELECT path FROM created_dirs")]
        return sorted(rows, key=lambda p: (-p.count("/"), p))

    def forget_created_dir(self, path: str) -> None:
        self.db.execute("DELETE FROM created_dirs WHERE path = ?", (path,))

    # --- history -----------------------------------------------------------------------

    def add_history(
        self,
        persona: str,
        digest: str,
        document: Mapping[str, Any],
        customizations: Mapping[str, Any],
        extra: Mapping[str, Any],
        files: Mapping[str, tuple[ManagedRecord, FileState]],
        kind: str,
        note: str = "",
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO history (persona, hash, document, customizations, extra, kind, "
            "applied_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                persona,
                digest,
                json.dumps(document),
                json.dumps(customizations),
                json.dumps(extra),
                kind,
                time.time(),
                note,
            ),
        )
        history_id = int(cur.lastrowid or 0)
        rows = []
        for path, (record, state) in files.items():
            blob = None if state.content is None else self.put_blob(state.content)
            rows.append(
                (
                    history_id,
                    path,
                    blob,
                    state.mode,
                    state.uid,
                    state.gid,
                    record.handler,
                    json.dumps(dict(record.meta)),
                    record.setting,
                    record.capture_as,
                )
            )
        self.db.executemany(
            "INSERT INTO history_files (history_id, path, hash, mode, uid, gid, handler, meta, "
            "setting, capture_as) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return history_id

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        sql = "SELECT id, persona, hash, kind, applied_at, note FROM history ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [HistoryEntry(*row) for row in self.db.execute(sql)]

    def history_entry(
        self, history_id: int
    ) -> tuple[HistoryEntry, dict[str, Any], dict[str, Any], dict[str, Any]]:
        row = self.db.execute(
            "SELECT id, persona, hash, kind, applied_at, note, document, customizations, "
            "extra FROM history WHERE id = ?",
            (history_id,),
        ).fetchone()
        if row is None:
            raise KeyError(history_id)
        return (
            HistoryEntry(*row[:6]),
            json.loads(row[6]),
            json.loads(row[7]),
            json.loads(row[8]),
        )

    def written_ownership(self) -> dict[str, tuple[int, int, int]]:
        """The (mode, uid, gid) the active history entry gave each file it wrote."""
        rows = self.db.execute(
            "SELECT path, mode, uid, gid FROM history_files WHERE history_id = "
            "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'active_history') "
            "AND hash IS NOT NULL",
        )
        return {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}

    def history_files(self, history_id: int) -> dict[str, tuple[ManagedRecord, FileState]]:
        rows = self.db.execute(
            "SELECT path, hash, mode, uid, gid, handler, meta, setting, capture_as "
            "FROM history_files WHERE history_id = ? ORDER BY path",
            (history_id,),
        )
        out = {}
        for path, digest, mode, uid, gid, handler, meta, setting, capture_as in rows:
            state = self._file_state(digest, mode, uid, gid)
            out[path] = (
                ManagedRecord(path, handler, digest, json.loads(meta), setting, capture_as),
                state,
            )
        return out

    # --- transactions and the journal --------------------------------------------------

    def begin_txn(self, persona: str, kind: str) -> int:
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO txn (state, persona, kind, started_at, pid) VALUES ('open', ?, ?, ?, ?)",
                (persona, kind, time.time(), os.getpid()),
            )
        return int(cur.lastrowid or 0)

    def open_txns(self) -> list[tuple[int, str, str]]:
        return [
            (int(r[0]), str(r[1]), str(r[2]))
            for r in self.db.execute("SELECT id, persona, kind FROM txn WHERE state = 'open'")
        ]

    def journal_file(self, txn: int, seq: int, path: str, before: FileState) -> None:
        """Commit the before-image of ``path``; the caller may touch the file afterwards."""
        with self.transaction():
            digest = None if before.content is None else self.put_blob(before.content)
            self.db.execute(
                "INSERT INTO journal (txn_id, seq, kind, target, before_hash, before_mode, "
                "before_uid, before_gid) VALUES (?, ?, 'file', ?, ?, ?, ?, ?)",
                (txn, seq, path, digest, before.mode, before.uid, before.gid),
            )

    def journal_other(
        self, txn: int, seq: int, kind: str, target: str, data: Mapping[str, Any]
    ) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO journal (txn_id, seq, kind, target, data) VALUES (?, ?, ?, ?, ?)",
                (txn, seq, kind, target, json.dumps(dict(data))),
            )

    def journal(self, txn: int) -> list[JournalEntry]:
        rows = self.db.execute(
            "SELECT seq, kind, target, before_hash, before_mode, before_uid, before_gid, data "
            "FROM journal WHERE txn_id = ? ORDER BY seq",
            (txn,),
        )
        out = []
        for seq, kind, target, digest, mode, uid, gid, data in rows:
            before = self._file_state(digest, mode, uid, gid) if kind == "file" else None
            out.append(JournalEntry(seq, kind, target, before, json.loads(data)))
        return out

    def end_txn(self, txn: int, state: str) -> None:
        """Mark a transaction finished (committed / rolled_back) and drop its journal."""
        self.db.execute(
            "UPDATE txn SET state = ?, finished_at = ? WHERE id = ?", (state, time.time(), txn)
        )
        self.db.execute("DELETE FROM journal WHERE txn_id = ?", (txn,))

    # --- audit -------------------------------------------------------------------------

    def audit(
        self,
        event: str,
        *,
        persona: str | None = None,
        actor: str | None = None,
        **detail: Any,
    ) -> None:
        """Record an audit event in the database and, once that commits,
        ``ROOT/var/log/mien/audit.jsonl`` (a rolled-back event never reaches the log)."""
        self._audit.record(self.db, event, persona, actor or local_actor(), detail)

    def audit_records(self, limit: int = 100) -> list[AuditRecord]:
        return audit_records(self.db, limit)
