"""Queries of the fleet-wide data sources: which are wanted, claiming one to poll, its copy.

A replica polls a source only after claiming it: one conditional UPDATE moving the row's
``next_at`` past the poll (``WHERE next_at <= now``). Of several replicas that find the
same source due, exactly one sees its UPDATE change the row; the others see nothing to do.
A replica that dies holding a claim loses it when that ``next_at`` passes.

Used by :mod:`mien.server.sources` (the polling task and the agent endpoint).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mien.protocol.sources import FleetSource
from mien.server.store.rows import load
from mien.server.store.tables import fleet_sources as t


@dataclass(frozen=True)
class SourceRow:
    key: str
    url: str
    parse: str
    every: float
    timeout: float
    next_at: float
    value: Any
    digest: str | None
    fetched_at: float | None
    changed_at: float | None
    checked_at: float | None
    etag: str | None
    last_modified: str | None
    failures: int
    last_error: str | None


async def want(session: AsyncSession, sources: Iterable[FleetSource], now: float) -> None:
    """Record that personas still name ``sources`` (a new one is due at once)."""
    rows = [
        {
            "key": s.key,
            "url": s.url,
            "parse": s.parse,
            "every": s.every,
            "timeout": s.timeout,
            "wanted_at": now,
            "next_at": 0.0,
            "failures": 0,
        }
        for s in sources
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.key],
        set_={
            "every": stmt.excluded.every,
            "timeout": stmt.excluded.timeout,
            "wanted_at": stmt.excluded.wanted_at,
        },
    )
    await session.execute(stmt, rows)


async def forget(session: AsyncSession, before: float) -> int:
    """Delete the sources no replica has wanted since ``before``."""
    result: Any = await session.execute(delete(t).where(t.c.wanted_at < before))
    return int(result.rowcount or 0)


async def due(session: AsyncSession, now: float) -> list[str]:
    rows = await session.execute(select(t.c.key).where(t.c.next_at <= now))
    return [str(key) for (key,) in rows]


async def claim(session: AsyncSession, key: str, now: float, until: float, by: str) -> bool:
    """Take the poll of ``key`` due at ``now`` (until ``until``); False: someone else has."""
    result: Any = await session.execute(
        update(t).where(t.c.key == key, t.c.next_at <= now).values(next_at=until, claimed_by=by)
    )
    return int(result.rowcount or 0) == 1


async def get(session: AsyncSession, key: str) -> SourceRow | None:
    row = (await session.execute(select(t).where(t.c.key == key))).first()
    return None if row is None else load(SourceRow, row)


async def save(session: AsyncSession, key: str, by: str, **fields: Any) -> bool:
    """Write the outcome of a poll of ``key`` by the claimant ``by``."""
    result: Any = await session.execute(
        update(t).where(t.c.key == key, t.c.claimed_by == by).values(claimed_by=None, **fields)
    )
    return int(result.rowcount or 0) == 1
