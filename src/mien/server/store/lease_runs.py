"""Queries on commands run inside leases: pending → sent (handed to the host) → done, or
expired when the host did not pick it up or answer in time. Handed out at most once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.overdue import expire_overdue
from mien.server.store.rows import load, load_all
from mien.server.store.tables_broker import lease_runs as t


@dataclass(frozen=True)
class RunRow:
    id: str
    lease_id: str
    host: str
    argv: list[str]
    timeout: float
    status: str
    exit_status: int | None
    stdout: str
    stderr: str
    error: str | None
    created_at: datetime
    created_by: str
    finished_at: datetime | None
    expires_at: datetime


async def create(
    s: AsyncSession,
    *,
    run_id: str,
    lease_id: str,
    host: str,
    argv: list[str],
    timeout: float,
    actor: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await s.execute(
        t.insert().values(
            id=run_id,
            lease_id=lease_id,
            host=host,
            argv=argv,
            timeout=timeout,
            status="pending",
            stdout="",
            stderr="",
            created_at=now,
            created_by=actor,
            expires_at=expires_at,
        )
    )


async def get(s: AsyncSession, run_id: str) -> RunRow | None:
    row = (await s.execute(select(t).where(t.c.id == run_id))).first()
    return load(RunRow, row) if row else None


async def claim(s: AsyncSession, host: str, *, now: datetime, grace: float) -> list[RunRow]:
    rows = load_all(
        RunRow,
        await s.execute(
            select(t)
            .where(t.c.host == host, t.c.status == "pending", t.c.expires_at > now)
            .order_by(t.c.created_at)
        ),
    )
    claimed = []
    for row in rows:
        deadline = now + timedelta(seconds=row.timeout + grace)
        result = await s.execute(
            update(t)
            .where(t.c.id == row.id, t.c.status == "pending")
            .values(status="sent", expires_at=deadline)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(row)
    return claimed


async def finish(
    s: AsyncSession,
    run_id: str,
    *,
    exit_status: int | None,
    stdout: str,
    stderr: str,
    error: str | None,
    now: datetime,
) -> bool:
    result = await s.execute(
        update(t)
        .where(t.c.id == run_id, t.c.status == "sent")
        .values(
            status="done",
            exit_status=exit_status,
            stdout=stdout,
            stderr=stderr,
            error=error,
            finished_at=now,
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def expire(s: AsyncSession, now: datetime) -> list[RunRow]:
    return await expire_overdue(s, t, RunRow, now, "the sandbox host")


async def end_for_lease(s: AsyncSession, lease_id: str, why: str, now: datetime) -> list[str]:
    """Fail the unfinished runs of a lease that ended; their ids."""
    ids = [
        r[0]
        for r in await s.execute(
            select(t.c.id).where(t.c.lease_id == lease_id, t.c.status.in_(("pending", "sent")))
        )
    ]
    if ids:
        await s.execute(
            update(t)
            .where(t.c.id.in_(ids), t.c.status.in_(("pending", "sent")))
            .values(status="expired", error=why, finished_at=now)
        )
    return ids
