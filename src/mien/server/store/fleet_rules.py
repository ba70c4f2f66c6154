"""Queries on fleet rules: their versioned documents, their persisted states, and the
journal of the actions they took (keyed once per rule, firing and action).

Used by the fleet-rule routes and the orchestrator (:mod:`mien.server.orchestrator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.tables_orchestrator import fleet_rule_actions as a
from mien.server.store.tables_orchestrator import fleet_rule_states as st
from mien.server.store.tables_orchestrator import fleet_rules as t


@dataclass(frozen=True)
class FleetRuleRow:
    name: str
    version: int
    document: dict[str, Any]
    source: str
    created_at: datetime
    created_by: str
    deleted_at: datetime | None


@dataclass(frozen=True)
class StateRow:
    name: str
    state: str
    note: str
    seen: dict[str, Any]
    updated_at: float


@dataclass(frozen=True)
class ActionRow:
    key: str
    rule: str
    kind: str
    at: float
    status: str
    detail: dict[str, Any]
    undo: dict[str, Any] | None


def _row(r: Any) -> FleetRuleRow:
    return FleetRuleRow(*r)


_COLUMNS = (
    t.c.name,
    t.c.version,
    t.c.document,
    t.c.source,
    t.c.created_at,
    t.c.created_by,
    t.c.deleted_at,
)


async def newest(s: AsyncSession, name: str) -> FleetRuleRow | None:
    """The newest version (deleted or not)."""
    row = (
        await s.execute(
            select(*_COLUMNS).where(t.c.name == name).order_by(t.c.version.desc()).limit(1)
        )
    ).first()
    return _row(row) if row else None


async def current(s: AsyncSession) -> list[FleetRuleRow]:
    """Every rule in force (its newest version, not deleted), by name."""
    latest = select(t.c.name, func.max(t.c.version).label("v")).group_by(t.c.name).subquery()
    q = (
        select(*_COLUMNS)
        .join(latest, (latest.c.name == t.c.name) & (latest.c.v == t.c.version))
        .where(t.c.deleted_at.is_(None))
        .order_by(t.c.name)
    )
    return [_row(r) for r in await s.execute(q)]


async def versions(s: AsyncSession, name: str) -> list[FleetRuleRow]:
    q = select(*_COLUMNS).where(t.c.name == name).order_by(t.c.version)
    return [_row(r) for r in await s.execute(q)]


async def add_version(
    s: AsyncSession, name: str, document: dict[str, Any], source: str, actor: str, now: datetime
) -> FleetRuleRow:
    before = await newest(s, name)
    version = before.version + 1 if before else 1
    await s.execute(
        t.insert().values(
            name=name,
            version=version,
            document=document,
            source=source,
            created_at=now,
            created_by=actor,
            deleted_at=None,
        )
    )
    return FleetRuleRow(name, version, document, source, now, actor, None)


async def mark_deleted(s: AsyncSession, name: str, now: datetime) -> FleetRuleRow | None:
    row = await newest(s, name)
    if row is None or row.deleted_at is not None:
        return None
    await s.execute(
        update(t).where(t.c.name == name, t.c.version == row.version).values(deleted_at=now)
    )
    return row


# --- states ----------------------------------------------------------------------------


async def states(s: AsyncSession) -> dict[str, StateRow]:
    q = select(st.c.name, st.c.state, st.c.note, st.c.seen, st.c.updated_at)
    return {r[0]: StateRow(*r) for r in await s.execute(q)}


async def put_state(
    s: AsyncSession, name: str, state: str, note: str, seen: dict[str, Any], now: float
) -> None:
    """Store a rule's state, its note and the values it saw (what ``show`` prints)."""
    done = await s.execute(
        update(st)
        .where(st.c.name == name)
        .values(state=state, note=note, seen=seen, updated_at=now)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        await s.execute(
            st.insert().values(name=name, state=state, note=note, seen=seen, updated_at=now)
        )


async def drop_state(s: AsyncSession, name: str) -> None:
    await s.execute(st.delete().where(st.c.name == name))


# --- the action journal ----------------------------------------------------------------

_ACTION_COLUMNS = (a.c.key, a.c.rule, a.c.kind, a.c.at, a.c.status, a.c.detail, a.c.undo)


async def action(s: AsyncSession, key: str) -> ActionRow | None:
    row = (await s.execute(select(*_ACTION_COLUMNS).where(a.c.key == key))).first()
    return ActionRow(*row) if row else None


async def record_action(
    s: AsyncSession,
    key: str,
    rule: str,
    kind: str,
    at: float,
    status: str,
    detail: dict[str, Any],
    undo: dict[str, Any] | None,
) -> None:
    await s.execute(
        a.insert().values(
            key=key, rule=rule, kind=kind, at=at, status=status, detail=detail, undo=undo
        )
    )


async def set_status(s: AsyncSession, key: str, status: str) -> None:
    await s.execute(update(a).where(a.c.key == key).values(status=status))


async def actions_of(s: AsyncSession, rule: str, prefix: str) -> list[ActionRow]:
    """The rule's actions whose key starts with ``prefix`` (one firing's), in order."""
    q = (
        select(*_ACTION_COLUMNS)
        .where(a.c.rule == rule, a.c.key.startswith(prefix, autoescape=True))
        .order_by(a.c.key)
    )
    return [ActionRow(*r) for r in await s.execute(q)]


async def pending(s: AsyncSession) -> list[ActionRow]:
    """Provider requests recorded but not yet handed to the queue."""
    q = select(*_ACTION_COLUMNS).where(a.c.status == "pending").order_by(a.c.at, a.c.key)
    return [ActionRow(*r) for r in await s.execute(q)]


async def recent(s: AsyncSession, rule: str, limit: int = 50) -> list[ActionRow]:
    q = (
        select(*_ACTION_COLUMNS)
        .where(a.c.rule == rule)
        .order_by(a.c.at.desc(), a.c.key.desc())
        .limit(limit)
    )
    return [ActionRow(*r) for r in await s.execute(q)]
