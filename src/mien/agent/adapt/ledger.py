"""What the adaptation loop must not forget, in the machine's ``state.db``.

Rule states (with the times they entered their phase, and their cooldowns) per persona, so
an agent restarted in the middle of a rule's ``for`` keeps its pending time and a rollback
to an earlier persona finds that persona's rules as they were; the baselines and the last
good copies of data sources; the automated changes the loop made (what, by which rule,
until when, how to undo it, how often it was tried); and every adaptation event, written to
the one audit path (the ``audit`` table and ``audit.jsonl``) and to a bounded queue for the
server (oldest dropped and counted).

Used by :mod:`mien.agent.adapt.loop`, and read by ``mien events`` and ``mien top``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mien.agent.audit_log import AuditRecord
from mien.agent.state import State

EVENT_PREFIX = "adapt."
OUTBOX_LIMIT = 1000
DROPPED_KEY = "adapt_outbox_dropped"

# Status of an automated change: waiting to be (re)tried, in effect (to be reverted), asked
# of someone else (a scale request), done for good (nothing to revert), undone, given up on.
RETRY, APPLIED, REQUESTED, DONE = "retry", "applied", "requested", "done"
REVERTED, FAILED = "reverted", "failed"
LIVE = (RETRY, APPLIED)


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    persona: str
    rule: str
    action: str
    params: dict[str, Any]
    status: str
    created_at: float
    applied_at: float | None
    until: float | None
    undo: dict[str, Any]
    attempts: int
    next_try: float | None
    error: str


_CHANGE_COLUMNS = (
    "id, persona, rule, action, params, status, created_at, applied_at, until, undo, "
    "attempts, next_try, error"
)


def _change(row: tuple[Any, ...]) -> Change:
    values = list(row)
    values[4] = json.loads(values[4])
    values[9] = json.loads(values[9])
    return Change(*values)


class Ledger:
    """The adaptation tables of one open :class:`~mien.agent.state.State`."""

    def __init__(self, state: State, *, actor: str = "agent:adapt") -> None:
        self.state = state
        self.db = state.db
        self.actor = actor

    # --- rule states -------------------------------------------------------------------

    def rule_states(self, persona: str) -> dict[str, str]:
        """Each rule's stored state (its JSON text)."""
        rows = self.db.execute(
            "SELECT rule, state FROM adapt_rules WHERE persona = ?", (persona,)
        ).fetchall()
        return {str(rule): str(raw) for rule, raw in rows}

    def save_rule_states(self, persona: str, states: dict[str, str]) -> None:
        with self.state.transaction():
            self.db.execute("DELETE FROM adapt_rules WHERE persona = ?", (persona,))
            self.db.executemany(
                "INSERT INTO adapt_rules (persona, rule, state) VALUES (?, ?, ?)",
                [(persona, rule, text) for rule, text in states.items()],
            )

    # --- baselines, data copies, bookkeeping --------------------------------------------

    def get(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM adapt_kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, **values: Any) -> None:
        with self.state.transaction():
            for key, value in values.items():
                if value is None:
                    self.db.execute("DELETE FROM adapt_kv WHERE key = ?", (key,))
                else:
                    self.db.execute(
                        "INSERT INTO adapt_kv (key, value) VALUES (?, ?) ON CONFLICT(key) "
                        "DO UPDATE SET value = excluded.value",
                        (key, json.dumps(value, default=str)),
                    )

    # --- automated changes --------------------------------------------------------------

    def add_change(
        self, persona: str, rule: str, action: str, params: dict[str, Any], now: float
    ) -> int:
        with self.state.transaction():
            cur = self.db.execute(
                "INSERT INTO adapt_changes (persona, rule, action, params, status, created_at, "
                "next_try) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (persona, rule, action, json.dumps(params, default=str), RETRY, now, now),
            )
        return int(cur.lastrowid or 0)

    def update_change(self, change_id: int, **fields: Any) -> None:
        if not fields:
            return
        sets, values = [], []
        for key, value in fields.items():
            sets.append(f"{key} = ?")
            values.append(json.dumps(value) if key in ("params", "undo") else value)
        with self.state.transaction():
            self.db.execute(
                f"UPDATE adapt_changes SET {', '.join(sets)} WHERE id = ?", (*values, change_id)
            )

    def change(self, change_id: int) -> Change:
        row = self.db.execute(
            f"SELECT {_CHANGE_COLUMNS} FROM adapt_changes WHERE id = ?", (change_id,)
        ).fetchone()
        if row is None:
            raise KeyError(change_id)
        return _change(row)

    def changes(self, statuses: Iterable[str] = LIVE, limit: int = 1000) -> list[Change]:
        wanted = tuple(statuses)
        marks = ", ".join("?" for _ in wanted)
        rows = self.db.execute(
            f"SELECT {_CHANGE_COLUMNS} FROM adapt_changes WHERE status IN ({marks}) "
            "ORDER BY id LIMIT ?",
            (*wanted, limit),
        ).fetchall()
        return [_change(r) for r in rows]

    def recent_changes(self, limit: int = 10) -> list[Change]:
        rows = self.db.execute(
            f"SELECT {_CHANGE_COLUMNS} FROM adapt_changes ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_change(r) for r in rows]

    # --- events ---------------------------------------------------------------------------

    def event(
        self, name: str, *, persona: str | None, actor: str | None = None, **detail: Any
    ) -> None:
        """One adaptation event: audited (database and ``audit.jsonl``) and queued for the
        server in the same transaction. The queued copy names the server's version of
        ``persona`` (``persona_version``, see :meth:`persona_version`), so the server can
        tell how well each version's rules work."""
        event = EVENT_PREFIX + name
        with self.state.transaction():
            self.state.audit(event, persona=persona, actor=actor or self.actor, **detail)
            sent = {"persona": persona, "persona_version": self.persona_version(persona)}
            self.db.execute(
                "INSERT INTO adapt_outbox (ts, event, detail) VALUES (?, ?, ?)",
                (time.time(), event, json.dumps({**sent, **detail}, default=str)),
            )
            _bound_outbox(self.state)

    def persona_version(self, persona: str | None) -> int | None:
        """The server's version number of ``persona`` when the server applied it (the
        agent's sync keeps ``server_persona`` and ``server_version``); ``None`` for a
        persona that came from anywhere else (a local file, an in-VM switch)."""
        if not persona or self.state.get_meta("server_persona") != persona:
            return None
        raw = self.state.get_meta("server_version")
        return int(raw) if raw and raw.isdigit() else None

    def outbox(self, limit: int = 100) -> list[tuple[int, float, str, dict[str, Any]]]:
        rows = self.db.execute(
            "SELECT id, ts, event, detail FROM adapt_outbox ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [(int(i), float(t), str(e), json.loads(d)) for i, t, e, d in rows]

    def acknowledge(self, up_to: int) -> None:
        """Drop what the server has taken (ids up to ``up_to``)."""
        with self.state.transaction():
            self.db.execute("DELETE FROM adapt_outbox WHERE id <= ?", (up_to,))

    def dropped(self) -> int:
        return int(self.state.get_meta(DROPPED_KEY) or 0)


def _bound_outbox(state: State) -> None:
    count = state.db.execute("SELECT COUNT(*) FROM adapt_outbox").fetchone()[0]
    extra = int(count) - OUTBOX_LIMIT
    if extra <= 0:
        return
    state.db.execute(
        "DELETE FROM adapt_outbox WHERE id IN (SELECT id FROM adapt_outbox ORDER BY id LIMIT ?)",
        (extra,),
    )
    state.set_meta(DROPPED_KEY, str(int(state.get_meta(DROPPED_KEY) or 0) + extra))


def events(
    state: State, *, since: float | None = None, after_id: int = 0, limit: int = 1000
) -> list[AuditRecord]:
    """Adaptation events, oldest first: after audit id ``after_id``, at or after ``since``."""
    rows = state.db.execute(
        "SELECT id, ts, event, actor, persona, detail FROM audit "
        "WHERE event LIKE ? AND id > ? AND ts >= ? ORDER BY id LIMIT ?",
        (EVENT_PREFIX + "%", after_id, since or 0.0, limit),
    ).fetchall()
    return [AuditRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


def recent_events(state: State, prefix: str, limit: int = 10) -> list[AuditRecord]:
    """The newest adaptation events whose name starts with ``prefix``, newest first."""
    rows = state.db.execute(
        "SELECT id, ts, event, actor, persona, detail FROM audit WHERE event LIKE ? "
        "ORDER BY id DESC LIMIT ?",
        (EVENT_PREFIX + prefix + "%", limit),
    ).fetchall()
    return [AuditRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]
