"""Queries on the audit table. Rows are only ever inserted (triggers refuse the rest);
the chaining itself is :mod:`mien.server.audit`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.rows import load_all
from mien.server.store.tables import audit as t


@dataclass(frozen=True)
class AuditRow:
    seq: int
    at: str
    actor: str
    action: str
    instance_id: str | None
    persona: str | None
    detail: str
    prev_hash: str
    hash: str


async def head(s: AsyncSession) -> tuple[int, str] | None:
    """(seq, hash) of the newest record."""
    row = (await s.execute(select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1))).first()
    return (int(row[0]), str(row[1])) if row else None


async def insert(s: AsyncSession, rows: Sequence[AuditRow]) -> None:
    if rows:
        await s.execute(t.insert(), [row.__dict__ for row in rows])


async def query(
    s: AsyncSession,
    *,
    actor: str | None = None,
    action: str | None = None,
    instance_id: str | None = None,
    persona: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[AuditRow]:
    q = select(t).order_by(t.c.seq).limit(limit)
    if actor is not None:
        q = q.where(t.c.actor == actor)
    if action is not None:
        q = q.where(t.c.action.startswith(action, autoescape=True))
    if instance_id is not None:
        q = q.where(t.c.instance_id == instance_id)
    if persona is not None:
        q = q.where(t.c.persona == persona)
    if since is not None:
        q = q.where(t.c.at >= since)
    if until is not None:
        q = q.where(t.c.at < until)
    if after is not None:
        q = q.where(t.c.seq > after)
    return load_all(AuditRow, await s.execute(q))


async def scan(s: AsyncSession, chunk: int = 5000) -> AsyncIterator[list[AuditRow]]:
    """Every record in order, a chunk at a time (for verification)."""
    after = -1
    while True:
        rows = load_all(
            AuditRow,
            await s.execute(select(t).where(t.c.seq > after).order_by(t.c.seq).limit(chunk)),
        )
        if not rows:
            return
        yield rows
        after = rows[-1].seq
