"""What the user keeps in the state database: customizations (set with ``mien customize``
or captured from an edited file) and copies of files saved from drift.

:class:`UserRows` is a base of :class:`mien.agent.state.State` (kept apart so that each
module stays small); the engine, :mod:`mien.agent.kept_files` and the CLI reach these rows
through a ``State``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Customization:
    key: str
    value: Any
    source: str  # "user" (mien customize set) | "captured" (from an edited file)
    origin: str  # the file a captured value came from
    created_at: float
    origin_uid: int | None = None  # who owned that file: the value applies only to their files


class UserRows:
    """Customizations and saved files (see :class:`mien.agent.state.State`)."""

    db: sqlite3.Connection

    def put_blob(self, data: bytes) -> str:
        raise NotImplementedError  # provided by State

    # --- customizations ----------------------------------------------------------------

    def customizations(self) -> list[Customization]:
        rows = self.db.execute(
            "SELECT key, value, source, origin, created_at, origin_uid FROM customizations "
            "ORDER BY key"
        )
        return [Customization(k, json.loads(v), s, o, t, u) for k, v, s, o, t, u in rows]

    def customization_map(self) -> dict[str, Any]:
        return {c.key: c.value for c in self.customizations()}

    def set_customization(
        self, key: str, value: Any, source: str, origin: str = "", origin_uid: int | None = None
    ) -> None:
        self.db.execute(
            "INSERT INTO customizations (key, value, source, origin, created_at, origin_uid) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
            "source = excluded.source, origin = excluded.origin, "
            "created_at = excluded.created_at, origin_uid = excluded.origin_uid",
            (key, json.dumps(value), source, origin, time.time(), origin_uid),
        )

    def unset_customization(self, key: str) -> bool:
        cur = self.db.execute("DELETE FROM customizations WHERE key = ?", (key,))
        return cur.rowcount > 0

    def replace_customizations(
        self,
        items: Mapping[str, Any],
        source: str = "restored",
        origins: Mapping[str, Any] | None = None,
    ) -> None:
        """Replace every customization; a captured one keeps the file and uid it came from
        (``origins``: key → [path, uid], as history records them), and so its scope."""
        known = {c.key: (c.origin, c.origin_uid) for c in self.customizations() if c.origin}
        known.update({k: (str(v[0]), v[1]) for k, v in (origins or {}).items()})
        self.db.execute("DELETE FROM customizations")
        for key, value in items.items():
            origin, uid = known.get(key, ("", None))
            self.set_customization(key, value, source, origin, uid)

    # --- files saved from drift --------------------------------------------------------

    def save_file(self, path: str, content: bytes, persona: str, uid: int | None = None) -> int:
        """Save a copy of a file as a user left it (``uid``: who owned it)."""
        digest = self.put_blob(content)
        cur = self.db.execute(
            "INSERT INTO saved_files (path, hash, persona, saved_at, uid) VALUES (?, ?, ?, ?, ?)",
            (path, digest, persona, time.time(), uid),
        )
        return int(cur.lastrowid or 0)

    def saved_files(self) -> list[tuple[int, str, str, str, float]]:
        return [
            (int(r[0]), str(r[1]), str(r[2]), str(r[3]), float(r[4]))
            for r in self.db.execute(
                "SELECT id, path, hash, persona, saved_at FROM saved_files ORDER BY id"
            )
        ]
