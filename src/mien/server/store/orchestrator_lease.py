"""Queries on the orchestrator's lease: one row naming the replica that evaluates fleet
rules and until when. Used by :mod:`mien.server.orchestrator.leader`.

Works the same on SQLite and PostgreSQL: a claim is one conditional UPDATE (taken when the
row is ours or has expired), or the INSERT of a missing row, so two replicas claiming at
once cannot both win; on PostgreSQL the row lock also orders a claim after a renewal in
flight.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store import upsert
from mien.server.store.tables_orchestrator import orchestrator_lease as t


async def claim(s: AsyncSession, name: str, holder: str, now: float, ttl: float) -> bool:
    """Take or renew the lease; True when ``holder`` holds it until ``now + ttl``."""
    result: Any = await s.execute(
        update(t)
        .where(t.c.name == name, (t.c.holder == holder) | (t.c.expires_at < now))
        .values(
            holder=holder,
            expires_at=now + ttl,
            acquired_at=case((t.c.holder == holder, t.c.acquired_at), else_=now),
        )
    )
    if result.rowcount == 1:
        return True
    result = await s.execute(
        upsert.insert(s, t)
        .values(name=name, holder=holder, expires_at=now + ttl, acquired_at=now)
        .on_conflict_do_nothing(index_elements=[t.c.name])
    )
    return bool(result.rowcount == 1)


async def renew(s: AsyncSession, name: str, holder: str, now: float, ttl: float) -> bool:
    """Extend a lease ``holder`` still holds (not expired); False when it lost it."""
    result: Any = await s.execute(
        update(t)
        .where(t.c.name == name, t.c.holder == holder, t.c.expires_at >= now)
        .values(expires_at=now + ttl)
    )
    return bool(result.rowcount == 1)


async def release(s: AsyncSession, name: str, holder: str) -> None:
    await s.execute(update(t).where(t.c.name == name, t.c.holder == holder).values(expires_at=0.0))


async def holder(s: AsyncSession, name: str) -> tuple[str, float, float] | None:
    """(holder, expires_at, acquired_at) of the lease, or None."""
    row = (
        await s.execute(select(t.c.holder, t.c.expires_at, t.c.acquired_at).where(t.c.name == name))
    ).first()
    return (str(row[0]), float(row[1]), float(row[2])) if row else None
