"""Upgrading a version-1 state database: captured edits become scoped to file and owner.

Version 1 kept a user's edit of a whole text file as the customization
``application_configuration.APP.content`` (keyed by the application's name, so another
persona could write it into another file). Opening such a database with this mien moves
the bytes to a kept saved file for the path and the uid that owned it, and gives captured
keys the uid of their file.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from mien.agent import kept_files
from mien.agent.state import State
from mien.agent.state_schema import SCHEMA


def _version_1(root: Path) -> Path:
    db_path = root / "var/lib/mien/state.db"
    db_path.parent.mkdir(parents=True)
    db = sqlite3.connect(db_path)
    first = SCHEMA[0]
    assert isinstance(first, str)
    db.executescript(first)
    db.execute(
        "INSERT INTO history (id, persona, hash, document, customizations, extra, kind, "
        "applied_at) VALUES (1, 'home', 'h', '{}', '{}', '{}', 'apply', 0)"
    )
    for path, uid in (("/home/alice/.bashrc", 1000), ("/home/alice/.config/app.env", 1000)):
        db.execute(
            "INSERT INTO history_files (history_id, path, hash, mode, uid, gid, handler, meta) "
            "VALUES (1, ?, NULL, 420, ?, ?, 'config_files', '{}')",
            (path, uid, uid),
        )
    rows = [
        ("application_configuration.bashrc.format", "text", "/home/alice/.bashrc"),
        (
            "application_configuration.bashrc.content",
            "alice ALL=(ALL) ALL\n",
            "/home/alice/.bashrc",
        ),
        ("application_configuration.app.values.COLOR", "green", "/home/alice/.config/app.env"),
        ("application_configuration.gone.content", "orphan\n", "/etc/gone"),
    ]
    for key, value, origin in rows:
        db.execute(
            "INSERT INTO customizations (key, value, source, origin, created_at) "
            "VALUES (?, ?, 'captured', ?, 5)",
            (key, json.dumps(value), origin),
        )
    db.execute(
        "INSERT INTO customizations (key, value, source, origin, created_at) "
        "VALUES ('os_settings.theme', '\"light\"', 'user', '', 6)"
    )
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    return db_path


def test_version_1_state_is_migrated(tmp_path: Path) -> None:
    db_path = _version_1(tmp_path)
    with State(tmp_path) as state:
        assert state.db.execute("PRAGMA user_version").fetchone()[0] == len(SCHEMA) >= 2
        customs = {c.key: c for c in state.customizations()}
        assert sorted(customs) == [
            "application_configuration.app.values.COLOR",
            "os_settings.theme",
        ]
        assert customs["application_configuration.app.values.COLOR"].origin_uid == 1000
        assert customs["os_settings.theme"].origin_uid is None
        saved = {s.path: s for s in kept_files.saved_files(state)}
        bashrc = saved["/home/alice/.bashrc"]
        assert (bashrc.kept, bashrc.uid) == (True, 1000)
        assert state.blob(bashrc.hash) == b"alice ALL=(ALL) ALL\n"
        # Nobody known owned /etc/gone: its bytes are a copy that is never written by itself.
        gone = saved["/etc/gone"]
        assert (gone.kept, gone.uid) == (False, None)
        assert kept_files.kept_by_path(state) == {
            "/home/alice/.bashrc": (bashrc.id, 1000, b"alice ALL=(ALL) ALL\n")
        }
    # Opening again migrates nothing twice (the version is recorded).
    with State(tmp_path) as state:
        assert len(kept_files.saved_files(state)) == 2
    assert sqlite3.connect(db_path).execute("PRAGMA user_version").fetchone()[0] == len(SCHEMA)
