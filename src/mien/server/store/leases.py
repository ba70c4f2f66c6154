"""Queries of the broker's ledger: sandbox hosts and the leases they hold.

Every change of what a host holds is one conditional UPDATE on its row
(``used + ask <= total`` to take, ``used - ask`` to give back): the database row lock
that UPDATE takes is what keeps concurrent admissions — in one replica or in several on
PostgreSQL — from over-committing a host. Lease state changes are conditional on the state
they leave (``WHERE state = :was``), so two replicas never both move the same lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.rows import load, load_all
from mien.server.store.tables_broker import leases as t
from mien.server.store.tables_broker import sandbox_hosts as h

LIVE = ("provisioning", "ready")
"""States in which a lease holds resources on its host."""
OPEN = ("queued", *LIVE)
FINAL = ("insufficient_resources", "failed", "released", "expired", "preempted")


@dataclass(frozen=True)
class HostRow:
    instance_id: str
    cpu: float
    memory: int
    storage: int
    used_cpu: float
    used_memory: int
    used_storage: int
    driver: str | None
    alive: bool
    last_seen: datetime
    registered_at: datetime


@dataclass(frozen=True)
class LeaseRow:
    id: str
    persona: str
    version: int
    holder: str
    state: str
    reason: str | None
    priority: int
    preemptible: bool
    cpu: float
    memory: int
    storage: int
    host: str | None
    picked_at: datetime | None
    destroyed_at: datetime | None
    ttl: float
    expires_at: datetime
    usage: dict[str, Any] | None
    document: dict[str, Any]
    created_at: datetime
    updated_at: datetime


# --- hosts -----------------------------------------------------------------------------


async def host(s: AsyncSession, instance_id: str) -> HostRow | None:
    row = (await s.execute(select(h).where(h.c.instance_id == instance_id))).first()
    return load(HostRow, row) if row else None


async def hosts(s: AsyncSession, *, alive_only: bool = False, lock: bool = False) -> list[HostRow]:
    q = select(h).order_by(h.c.instance_id)
    if alive_only:
        q = q.where(h.c.alive.is_(True))
    if lock:
        q = q.with_for_update()  # in instance order: two replicas never lock crosswise
    return load_all(HostRow, await s.execute(q))


async def offer(
    s: AsyncSession,
    instance_id: str,
    *,
    cpu: float,
    memory: int,
    storage: int,
    driver: str | None,
    now: datetime,
) -> bool:
    """Record what a host offers (and that it is alive); ``True`` if it was not alive."""
    found = await host(s, instance_id)
    values = {
        "cpu": cpu,
        "memory": memory,
        "storage": storage,
        "driver": driver,
        "alive": True,
        "last_seen": now,
    }
    if found is None:
        await s.execute(
            h.insert().values(
                instance_id=instance_id,
                used_cpu=0.0,
                used_memory=0,
                used_storage=0,
                registered_at=now,
                **values,
            )
        )
        return True
    await s.execute(update(h).where(h.c.instance_id == instance_id).values(**values))
    return not found.alive


async def take(s: AsyncSession, instance_id: str, cpu: float, memory: int, storage: int) -> bool:
    """Hold resources on a host if they fit (atomic: the row's lock decides)."""
    result = await s.execute(
        update(h)
        .where(
            h.c.instance_id == instance_id,
            h.c.alive.is_(True),
            h.c.used_cpu + cpu <= h.c.cpu + 1e-9,
            h.c.used_memory + memory <= h.c.memory,
            h.c.used_storage + storage <= h.c.storage,
        )
        .values(
            used_cpu=h.c.used_cpu + cpu,
            used_memory=h.c.used_memory + memory,
            used_storage=h.c.used_storage + storage,
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def give_back(
    s: AsyncSession, instance_id: str, cpu: float, memory: int, storage: int
) -> None:
    await s.execute(
        update(h)
        .where(h.c.instance_id == instance_id)
        .values(
            used_cpu=h.c.used_cpu - cpu,
            used_memory=h.c.used_memory - memory,
            used_storage=h.c.used_storage - storage,
        )
    )


async def recount(s: AsyncSession, instance_id: str) -> None:
    """Set a host's ``used_*`` to the sum of its live leases (the ledger's correction)."""
    sums = (
        await s.execute(
            select(
                func.coalesce(func.sum(t.c.cpu), 0.0),
                func.coalesce(func.sum(t.c.memory), 0),
                func.coalesce(func.sum(t.c.storage), 0),
            ).where(t.c.host == instance_id, t.c.state.in_(LIVE))
        )
    ).one()
    await s.execute(
        update(h)
        .where(h.c.instance_id == instance_id)
        .values(used_cpu=float(sums[0]), used_memory=int(sums[1]), used_storage=int(sums[2]))
    )


async def mark_dead(s: AsyncSession, before: datetime) -> list[str]:
    """Hosts alive but silent since ``before``: mark them dead, return their ids."""
    ids = [
        r[0]
        for r in await s.execute(
            select(h.c.instance_id).where(h.c.alive.is_(True), h.c.last_seen < before)
        )
    ]
    if ids:
        await s.execute(
            update(h).where(h.c.instance_id.in_(ids), h.c.alive.is_(True)).values(alive=False)
        )
    return ids


# --- leases ----------------------------------------------------------------------------


async def create(s: AsyncSession, **values: Any) -> None:
    await s.execute(t.insert().values(**values))


async def create_many(s: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert leases in one statement (each row names every column)."""
    if rows:
        await s.execute(t.insert(), rows)


async def get(s: AsyncSession, lease_id: str) -> LeaseRow | None:
    row = (await s.execute(select(t).where(t.c.id == lease_id))).first()
    return load(LeaseRow, row) if row else None


async def list_for(
    s: AsyncSession, holder: str | None, *, include_final: bool, limit: int = 500
) -> list[LeaseRow]:
    q = select(t).order_by(t.c.created_at.desc(), t.c.id).limit(limit)
    if holder is not None:
        q = q.where(t.c.holder == holder)
    if not include_final:
        q = q.where(t.c.state.in_(OPEN))
    return load_all(LeaseRow, await s.execute(q))


async def queued(s: AsyncSession, limit: int = 1000) -> list[LeaseRow]:
    """The queue: highest priority first, then oldest."""
    q = (
        select(t)
        .where(t.c.state == "queued")
        .order_by(t.c.priority.desc(), t.c.created_at, t.c.id)
        .limit(limit)
    )
    return load_all(LeaseRow, await s.execute(q))


async def preemptible_below(s: AsyncSession, priority: int) -> bool:
    """Whether some live lease could be preempted by a request of ``priority``."""
    q = (
        select(t.c.id)
        .where(t.c.state.in_(LIVE), t.c.preemptible.is_(True), t.c.priority < priority)
        .limit(1)
    )
    return (await s.execute(q)).first() is not None


async def lowest_preemptible(s: AsyncSession) -> int | None:
    """The lowest priority among live preemptible leases (``None``: there are none)."""
    q = select(func.min(t.c.priority)).where(t.c.state.in_(LIVE), t.c.preemptible.is_(True))
    value = (await s.execute(q)).scalar()
    return None if value is None else int(value)


async def on_host(s: AsyncSession, instance_id: str, states: tuple[str, ...]) -> list[LeaseRow]:
    q = select(t).where(t.c.host == instance_id, t.c.state.in_(states)).order_by(t.c.created_at)
    return load_all(LeaseRow, await s.execute(q))


async def move(
    s: AsyncSession, lease_id: str, was: tuple[str, ...], now: datetime, **values: Any
) -> bool:
    """Change a lease if it is still in one of the states ``was`` (atomic)."""
    result = await s.execute(
        update(t).where(t.c.id == lease_id, t.c.state.in_(was)).values(updated_at=now, **values)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def set_fields(s: AsyncSession, lease_id: str, **values: Any) -> None:
    await s.execute(update(t).where(t.c.id == lease_id).values(**values))


async def overdue(s: AsyncSession, now: datetime) -> list[LeaseRow]:
    q = select(t).where(t.c.state.in_(OPEN), t.c.expires_at <= now)
    return load_all(LeaseRow, await s.execute(q))


async def to_provision(s: AsyncSession, instance_id: str, now: datetime) -> list[LeaseRow]:
    """A host's leases to build that it was not handed yet (marks them handed)."""
    rows = load_all(
        LeaseRow,
        await s.execute(
            select(t).where(
                t.c.host == instance_id, t.c.state == "provisioning", t.c.picked_at.is_(None)
            )
        ),
    )
    picked = []
    for row in rows:
        result = await s.execute(
            update(t).where(t.c.id == row.id, t.c.picked_at.is_(None)).values(picked_at=now)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            picked.append(row)
    return picked


async def to_destroy(s: AsyncSession, instance_id: str) -> list[LeaseRow]:
    """A host's ended leases whose environment it has not reported destroyed."""
    q = select(t).where(
        t.c.host == instance_id,
        t.c.state.in_(FINAL),
        t.c.picked_at.is_not(None),
        t.c.destroyed_at.is_(None),
    )
    return load_all(LeaseRow, await s.execute(q))
