"""The JSON-lines audit log, ``ROOT/var/log/mien/audit.jsonl``, beside the state database.

Every audit record of the agent is written twice: in the state database (queried by the
CLI) and, once the database has committed it, as one line here, for log shippers and for
people with ``tail -f``. :class:`AuditBuffer` holds the lines of the open transaction until
it commits, for :meth:`mien.agent.state.State.audit` (the agent's one audit path);
:func:`local_actor` is the one way the agent (engine and command router alike) names the
local person acting.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUDIT_LOG = "var/log/mien/audit.jsonl"

# The person the agent acts for while it serves a request on its local socket (whose name
# came from the kernel's peer credentials, see mien.agent.local_api).
_acting_for: ContextVar[str | None] = ContextVar("mien_acting_for", default=None)


@contextmanager
def acting_for(user: str) -> Iterator[None]:
    """Name ``user`` as the actor of every audit record written in this block (this thread
    or task only)."""
    token = _acting_for.set(user)
    try:
        yield
    finally:
        _acting_for.reset(token)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    ts: float
    event: str
    actor: str
    persona: str | None
    detail: dict[str, Any]


class AuditBuffer:
    """Audit lines of the open transaction, written to the log once it commits."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lines: list[tuple[float, str, str, str | None, dict[str, Any]]] = []

    def record(
        self,
        db: sqlite3.Connection,
        event: str,
        persona: str | None,
        actor: str,
        detail: dict[str, Any],
    ) -> None:
        """Insert the record in ``db``'s open transaction; its line waits for the commit."""
        ts = time.time()
        db.execute(
            "INSERT INTO audit (ts, event, actor, persona, detail) VALUES (?, ?, ?, ?, ?)",
            (ts, event, actor, persona, json.dumps(detail, default=str)),
        )
        self._lines.append((ts, event, actor, persona, detail))
        if not db.in_transaction:  # autocommit: the row is already durable
            self.flush()

    def discard(self) -> None:
        """The transaction rolled back: its records never happened."""
        self._lines.clear()

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        for ts, event, who, persona, detail in lines:
            # The database holds the record now; a log line that cannot be written (a full
            # disk) must not turn a committed change into a reported failure.
            with contextlib.suppress(OSError):
                append_audit_line(self.root, ts, event, who, persona, detail)


def audit_records(db: sqlite3.Connection, limit: int = 100) -> list[AuditRecord]:
    """The newest ``limit`` records, newest first."""
    rows = db.execute(
        "SELECT id, ts, event, actor, persona, detail FROM audit ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [AuditRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


def local_actor() -> str:
    """Who runs this, from the real uid: ``$USER`` is the caller's to set, so only root's
    ``sudo`` (which sets ``SUDO_USER`` itself) may name someone else. The agent serving its
    socket names the person it acts for (:func:`acting_for`)."""
    acting = _acting_for.get()
    if acting is not None:
        return f"local:{acting}"
    uid = os.getuid()
    if uid == 0:
        return f"local:{os.environ.get('SUDO_USER') or 'root'}"
    import pwd

    try:
        return f"local:{pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"local:{uid}"


def append_audit_line(
    root: Path, ts: float, event: str, actor: str, persona: str | None, detail: Mapping[str, Any]
) -> None:
    """Append one JSON line to the audit log (created 0640 on first use)."""
    path = root / AUDIT_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {"ts": round(ts, 6), "event": event, "actor": actor, "persona": persona, **detail},
        default=str,
        sort_keys=False,
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
