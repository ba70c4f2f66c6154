"""The schema of the agent's state database, one entry per version.

``State`` applies the entries past the database's ``PRAGMA user_version`` in order when it
opens a database, so a newer mien upgrades an older state in place. Add a version by
appending an entry; never edit a released one.
"""

from __future__ import annotations

SCHEMA: list[str] = [
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
]
