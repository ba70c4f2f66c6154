"""The schema of the agent's state database, one entry per version.

``State`` applies the entries past the database's ``PRAGMA user_version`` in order when it
opens a database, so a newer mien upgrades an older state in place. An entry is SQL, or a
function of the connection when a version must move data (it runs inside the version's
transaction). Add a version by appending an entry; never edit a released one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable

Step = str | Callable[[sqlite3.Connection], None]


def _v2_scope_captures(db: sqlite3.Connection) -> None:
    """Version 2: what a user's edit left is scoped to the file and owner it came from.

    Version 1 kept the edited text of a whole file as the customization
    ``application_configuration.APP.content``, keyed by the application's *name*: another
    persona using that name for a system file received the user's bytes, written as root.
    From version 2 such an edit is a saved file kept for its path and the uid that owned it
    (``saved_files.kept``, ``saved_files.uid``), and a captured key remembers the owner of
    the file it came from (``customizations.origin_uid``). The owner of an old capture is
    the owner mien last gave that path (``history_files``); where none is known, the bytes
    are kept as a saved copy that is never restored on its own.
    """
    db.execute("ALTER TABLE customizations ADD COLUMN origin_uid INTEGER")
    db.execute("ALTER TABLE saved_files ADD COLUMN uid INTEGER")
    db.execute("ALTER TABLE saved_files ADD COLUMN kept INTEGER NOT NULL DEFAULT 0")

    def owner(path: str) -> int | None:
        row = db.execute(
            "SELECT uid FROM history_files WHERE path = ? ORDER BY history_id DESC LIMIT 1",
            (path,),
        ).fetchone()
        return None if row is None else int(row[0])

    rows = db.execute(
        "SELECT key, value, origin, created_at FROM customizations WHERE source = 'captured'"
    ).fetchall()
    for key, value, origin, created_at in rows:
        uid = owner(origin) if origin else None
        if not (key.startswith("application_configuration.") and key.endswith(".content")):
            db.execute("UPDATE customizations SET origin_uid = ? WHERE key = ?", (uid, key))
            continue
        text = json.loads(value)
        data = text.encode() if isinstance(text, str) else b""
        digest = hashlib.sha256(data).hexdigest()
        db.execute("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", (digest, data))
        if origin:
            db.execute("UPDATE saved_files SET kept = 0 WHERE path = ?", (origin,))
        db.execute(
            "INSERT INTO saved_files (path, hash, persona, saved_at, uid, kept) "
            "VALUES (?, ?, '', ?, ?, ?)",
            (origin or key, digest, created_at, uid, int(uid is not None and bool(origin))),
        )
        db.execute("DELETE FROM customizations WHERE key = ?", (key,))
        db.execute(
            "DELETE FROM customizations WHERE key = ? AND source = 'captured'",
            (key[: -len(".content")] + ".format",),
        )


SCHEMA: list[Step] = [
    # version 1
    """
    CREATE TABLE blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        persona TEXT NOT NULL,
        hash TEXT NOT NULL,
        document TEXT NOT NULL,
        customizations TEXT NOT NULL,
        extra TEXT NOT NULL,
        kind TEXT NOT NULL,
        applied_at REAL NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE history_files (
        history_id INTEGER NOT NULL REFERENCES history(id),
        path TEXT NOT NULL,
        hash TEXT,
        mode INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        gid INTEGER NOT NULL,
        handler TEXT NOT NULL,
        meta TEXT NOT NULL,
        setting TEXT NOT NULL DEFAULT '',
        capture_as TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (history_id, path)
    );
    CREATE TABLE managed (
        path TEXT PRIMARY KEY,
        handler TEXT NOT NULL,
        hash TEXT,
        meta TEXT NOT NULL,
        setting TEXT NOT NULL DEFAULT '',
        capture_as TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE pristine (
        path TEXT PRIMARY KEY,
        hash TEXT,
        mode INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        gid INTEGER NOT NULL
    );
    CREATE TABLE created_dirs (path TEXT PRIMARY KEY);
    CREATE TABLE txn (
        id INTEGER PRIMARY KEY,
        state TEXT NOT NULL,
        persona TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_at REAL NOT NULL,
        pid INTEGER NOT NULL,
        finished_at REAL
    );
    CREATE TABLE journal (
        txn_id INTEGER NOT NULL REFERENCES txn(id),
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        before_hash TEXT,
        before_mode INTEGER,
        before_uid INTEGER,
        before_gid INTEGER,
        data TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (txn_id, seq)
    );
    CREATE TABLE customizations (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        source TEXT NOT NULL,
        origin TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE TABLE saved_files (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        hash TEXT NOT NULL,
        persona TEXT NOT NULL,
        saved_at REAL NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        event TEXT NOT NULL,
        actor TEXT NOT NULL,
        persona TEXT,
        detail TEXT NOT NULL
    );
    """,
    # version 2
    _v2_scope_captures,
    # version 3: the adaptation loop's memory (mien.agent.adapt.ledger)
    """
    CREATE TABLE adapt_rules (
        persona TEXT NOT NULL,
        rule TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (persona, rule)
    );
    CREATE TABLE adapt_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE adapt_changes (
        id INTEGER PRIMARY KEY,
        persona TEXT NOT NULL,
        rule TEXT NOT NULL,
        action TEXT NOT NULL,
        params TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        applied_at REAL,
        until REAL,
        undo TEXT NOT NULL DEFAULT '{}',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL,
        error TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE adapt_outbox (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        event TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    """,
    # Telemetry for the server: adaptation events and metric samples wait here until the
    # server acknowledged them. Their ids are the sequence numbers the server deduplicates
    # by, so they must never be reused once the queue empties: AUTOINCREMENT.
    """
    CREATE TABLE adapt_outbox_seq (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        event TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    INSERT INTO adapt_outbox_seq (id, ts, event, detail) SELECT id, ts, event, detail
        FROM adapt_outbox;
    DROP TABLE adapt_outbox;
    ALTER TABLE adapt_outbox_seq RENAME TO adapt_outbox;
    CREATE TABLE metric_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL
    );
    """,
]
