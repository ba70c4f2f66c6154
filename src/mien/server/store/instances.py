"""Queries on instances: enrollment, tags, the current explicit activation, and what the
agent last reported. Deleting is soft (the row stays for audit; its tokens are revoked)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.rows import load, load_all
from mien.server.store.tables import instances as t


@dataclass(frozen=True)
class InstanceRow:
    id: str
    hostname: str | None
    tags: dict[str, str]
    activation_id: str | None
    enrolled_at: datetime
    enrolled_by: str
    last_seen: datetime | None
    agent_version: str | None
    applied_state: str | None
    applied_hash: str | None
    applied_persona: str | None
    applied_version: int | None
    applied_activation_id: str | None
    applied_error: str | None
    applied_at: datetime | None
    history: list[dict[str, Any]] | None
    deleted_at: datetime | None
    applied_settings: list[dict[str, Any]] | None = None
    machine_status: dict[str, Any] | None = None


@dataclass(frozen=True)
class InstanceKey:
    """What the resolver needs of an instance (loaded for the whole fleet at start)."""

    id: str
    tags: dict[str, str]
    activation_id: str | None


async def get(
    s: AsyncSession, instance_id: str, *, include_deleted: bool = False, lock: bool = False
) -> InstanceRow | None:
    """One instance. ``lock``: hold its row until the transaction ends (PostgreSQL), taken
    first so that every transaction locks instances before their activations."""
    q = select(t).where(t.c.id == instance_id)
    if lock:
        q = q.with_for_update()
    if not include_deleted:
        q = q.where(t.c.deleted_at.is_(None))
    row = (await s.execute(q)).first()
    return load(InstanceRow, row) if row else None


async def get_many(s: AsyncSession, ids: Iterable[str]) -> dict[str, InstanceRow]:
    """Live instances by id (one query, for batches)."""
    wanted = list(ids)
    if not wanted:
        return {}
    q = select(t).where(t.c.id.in_(wanted), t.c.deleted_at.is_(None))
    return {r.id: r for r in load_all(InstanceRow, await s.execute(q))}


async def exists(s: AsyncSession, instance_id: str) -> bool:
    """Whether the id is taken, deleted instances included (ids are never reused)."""
    row = (await s.execute(select(t.c.id).where(t.c.id == instance_id))).first()
    return row is not None


async def taken(s: AsyncSession, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are taken, deleted instances included (one query, for batches)."""
    wanted = list(ids)
    if not wanted:
        return set()
    return {r[0] for r in await s.execute(select(t.c.id).where(t.c.id.in_(wanted)))}


async def create_many(s: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Enroll instances in one statement; each row has ``id, hostname, tags, enrolled_at,
    enrolled_by, last_seen, agent_version``."""
    if rows:
        await s.execute(t.insert(), rows)


async def page(
    s: AsyncSession, *, after: str | None, limit: int, include_deleted: bool = False
) -> list[InstanceRow]:
    q = select(t).order_by(t.c.id).limit(limit)
    if after:
        q = q.where(t.c.id > after)
    if not include_deleted:
        q = q.where(t.c.deleted_at.is_(None))
    return load_all(InstanceRow, await s.execute(q))


async def keys(s: AsyncSession, ids: Iterable[str] | None = None) -> list[InstanceKey]:
    q = select(t.c.id, t.c.tags, t.c.activation_id).where(t.c.deleted_at.is_(None))
    if ids is not None:
        q = q.where(t.c.id.in_(list(ids)))
    return load_all(InstanceKey, await s.execute(q))


async def applied(
    s: AsyncSession,
) -> list[tuple[str, str | None, str | None, datetime | None, list[dict[str, Any]] | None]]:
    """(id, applied state, applied hash, last seen, settings' outcomes) of every live
    instance."""
    q = select(
        t.c.id, t.c.applied_state, t.c.applied_hash, t.c.last_seen, t.c.applied_settings
    ).where(t.c.deleted_at.is_(None))
    return [(r[0], r[1], r[2], r[3], r[4]) for r in await s.execute(q)]


async def create(
    s: AsyncSession,
    instance_id: str,
    *,
    hostname: str | None,
    tags: Mapping[str, str],
    agent_version: str | None,
    actor: str,
    now: datetime,
) -> InstanceRow:
    await s.execute(
        t.insert().values(
            id=instance_id,
            hostname=hostname,
            tags=dict(tags),
            enrolled_at=now,
            enrolled_by=actor,
            last_seen=now,
            agent_version=agent_version,
        )
    )
    row = await get(s, instance_id)
    assert row is not None
    return row


async def set_tags(s: AsyncSession, instance_id: str, tags: Mapping[str, str]) -> None:
    await s.execute(update(t).where(t.c.id == instance_id).values(tags=dict(tags)))


async def set_activation(s: AsyncSession, instance_id: str, activation_id: str | None) -> None:
    await s.execute(update(t).where(t.c.id == instance_id).values(activation_id=activation_id))


async def soft_delete(s: AsyncSession, instance_id: str, now: datetime) -> bool:
    result = await s.execute(
        update(t).where(t.c.id == instance_id, t.c.deleted_at.is_(None)).values(deleted_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def record_report(
    s: AsyncSession,
    instance_id: str,
    *,
    state: str,
    hash: str | None,
    persona: str | None,
    version: int | None,
    activation_id: str | None,
    error: str | None,
    history: list[dict[str, Any]] | None,
    agent_version: str | None,
    now: datetime,
) -> None:
    values: dict[str, Any] = {
        "applied_state": state,
        "applied_hash": hash,
        "applied_persona": persona,
        "applied_version": version,
        "applied_activation_id": activation_id,
        "applied_error": error,
        "applied_at": now,
        "last_seen": now,
    }
    if history is not None:
        values["history"] = history
    if agent_version is not None:
        values["agent_version"] = agent_version
    await s.execute(update(t).where(t.c.id == instance_id).values(**values))


REPORT_COLUMNS = (
    "applied_state",
    "applied_hash",
    "applied_persona",
    "applied_version",
    "applied_activation_id",
    "applied_error",
    "applied_at",
    "last_seen",
    "history",
    "agent_version",
    "applied_settings",
    "machine_status",
)


async def record_reports(s: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Store many reports in one statement: each row has ``iid`` and every REPORT_COLUMN."""
    if not rows:
        return
    q = (
        update(t)
        .where(t.c.id == bindparam("iid"))
        .values({name: bindparam(f"v_{name}") for name in REPORT_COLUMNS})
        .execution_options(synchronize_session=False)
    )
    # In key order: concurrent batches (other replicas) then lock rows in the same order.
    params = [{"iid": r["iid"], **{f"v_{k}": r[k] for k in REPORT_COLUMNS}} for r in rows]
    await s.execute(q, sorted(params, key=lambda p: str(p["iid"])))


async def record_status(
    s: AsyncSession, instance_id: str, status: dict[str, Any], now: datetime
) -> bool:
    """Store what the agent reports of its machine (and that it was seen); False when the
    instance is gone."""
    result = await s.execute(
        update(t)
        .where(t.c.id == instance_id, t.c.deleted_at.is_(None))
        .values(machine_status=status, last_seen=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def touch(s: AsyncSession, seen: Mapping[str, datetime]) -> None:
    """Write a batch of last-seen times (heartbeats held in memory) in one statement."""
    if not seen:
        return
    q = (
        update(t)
        .where(t.c.id == bindparam("iid"))
        .values(last_seen=bindparam("seen"))
        .execution_options(synchronize_session=False)
    )
    await s.execute(q, [{"iid": k, "seen": v} for k, v in sorted(seen.items())])


async def set_agent_version(s: AsyncSession, instance_id: str, version: str) -> None:
    await s.execute(update(t).where(t.c.id == instance_id).values(agent_version=version))


async def count(s: AsyncSession) -> int:
    q = select(func.count()).select_from(t).where(t.c.deleted_at.is_(None))
    return int((await s.execute(q)).scalar_one())
