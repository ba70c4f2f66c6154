"""Queries on remote commands: queued (pending) → delivered to the agent (sent) → done,
or expired when the agent did not pick it up or answer in time. Delivery is at most once:
a command handed to an agent is never handed out again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.overdue import expire_overdue
from mien.server.store.rows import load, load_all
from mien.server.store.tables import commands as t


@dataclass(frozen=True)
class CommandRow:
    id: str
    instance_id: str
    command: str
    args: list[str]
    timeout: float
    status: str
    exit_status: int | None
    refused: bool
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    error: str | None
    created_at: datetime
    created_by: str
    sent_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime


async def create(
    s: AsyncSession,
    *,
    command_id: str,
    instance_id: str,
    command: str,
    args: list[str],
    timeout: float,
    actor: str,
    now: datetime,
    expires_at: datetime,
) -> CommandRow:
    await s.execute(
        t.insert().values(
            id=command_id,
            instance_id=instance_id,
            command=command,
            args=args,
            timeout=timeout,
            status="pending",
            refused=False,
            stdout="",
            stderr="",
            stdout_truncated=False,
            stderr_truncated=False,
            created_at=now,
            created_by=actor,
            expires_at=expires_at,
        )
    )
    row = await get(s, command_id)
    assert row is not None
    return row


async def get(s: AsyncSession, command_id: str) -> CommandRow | None:
    row = (await s.execute(select(t).where(t.c.id == command_id))).first()
    return load(CommandRow, row) if row else None


async def for_instance(s: AsyncSession, instance_id: str, limit: int = 100) -> list[CommandRow]:
    q = (
        select(t)
        .where(t.c.instance_id == instance_id)
        .order_by(t.c.created_at.desc(), t.c.id.desc())
        .limit(limit)
    )
    return load_all(CommandRow, await s.execute(q))


async def claim(
    s: AsyncSession, instance_id: str, *, now: datetime, grace: float
) -> list[CommandRow]:
    """Hand the instance's pending commands to its agent (marks them sent)."""
    from datetime import timedelta

    rows = load_all(
        CommandRow,
        await s.execute(
            select(t)
            .where(t.c.instance_id == instance_id, t.c.status == "pending", t.c.expires_at > now)
            .order_by(t.c.created_at)
        ),
    )
    claimed = []
    for row in rows:
        # The result is awaited until the command's own timeout plus a grace period.
        deadline = now + timedelta(seconds=row.timeout + grace)
        result = await s.execute(
            update(t)
            .where(t.c.id == row.id, t.c.status == "pending")
            .values(status="sent", sent_at=now, expires_at=deadline)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(row)
    return claimed


async def instances_with_pending(s: AsyncSession, now: datetime) -> set[str]:
    q = select(t.c.instance_id).where(t.c.status == "pending", t.c.expires_at > now).distinct()
    return {r[0] for r in await s.execute(q)}


async def record_result(
    s: AsyncSession,
    command_id: str,
    *,
    exit_status: int,
    refused: bool,
    stdout: str,
    stderr: str,
    stdout_truncated: bool,
    stderr_truncated: bool,
    error: str | None,
    now: datetime,
) -> bool:
    """Store the agent's result; ``False`` if the command was not awaiting one."""
    result = await s.execute(
        update(t)
        .where(t.c.id == command_id, t.c.status == "sent")
        .values(
            status="done",
            exit_status=exit_status,
            refused=refused,
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=stdout_truncated,
            stderr_truncated=stderr_truncated,
            error=error,
            finished_at=now,
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def expire(s: AsyncSession, now: datetime) -> list[CommandRow]:
    """Expire commands nobody picked up, or whose result never came."""
    return await expire_overdue(s, t, CommandRow, now, "the agent")
