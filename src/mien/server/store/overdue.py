"""Expiring work another party never picked up or never answered: a remote command an agent
did not fetch or report on, a command in a lease its sandbox host did not run. Used by
:mod:`mien.server.store.commands` and :mod:`mien.server.store.lease_runs`, whose tables
share the ``status`` / ``expires_at`` / ``error`` / ``finished_at`` columns."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.rows import load_all

T = TypeVar("T")


async def expire_overdue(
    s: AsyncSession, table: Table, cls: type[T], now: datetime, party: str
) -> list[T]:
    """Mark ``pending``/``sent`` rows past ``expires_at`` expired, saying why in terms of
    ``party`` (who should have acted); the rows this call expired (a row another replica
    moved on in the meantime is left alone)."""
    rows: list[Any] = load_all(
        cls,
        await s.execute(
            select(table).where(table.c.status.in_(("pending", "sent")), table.c.expires_at <= now)
        ),
    )
    expired = []
    for row in rows:
        why = (
            f"{party} did not pick the command up in time"
            if row.status == "pending"
            else f"{party} did not report a result in time"
        )
        result = await s.execute(
            update(table)
            .where(table.c.id == row.id, table.c.status == row.status)
            .values(status="expired", error=why, finished_at=now)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            expired.append(row)
    return expired
