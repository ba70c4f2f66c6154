"""Queries on activation records: pending → applying → applied | failed, or superseded by
a newer activation, or cancelled when the explicit activation is cleared."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.rows import load, load_all
from mien.server.store.tables import activations as t

OPEN = ("pending", "applying")

# Which reported state may follow which status. A failed activation can still be applied
# (the agent retried); a superseded or cancelled one keeps its status for the record.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"applying", "applied", "failed"}),
    "applying": frozenset({"applying", "applied", "failed"}),
    "failed": frozenset({"applying", "applied", "failed"}),
    "applied": frozenset({"applied", "applying", "failed"}),
    "superseded": frozenset(),
    "cancelled": frozenset(),
}


@dataclass(frozen=True)
class ActivationRow:
    id: str
    instance_id: str
    persona: str
    version: int
    desired_hash: str | None
    status: str
    error: str | None
    applied_hash: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime


async def get(s: AsyncSession, activation_id: str) -> ActivationRow | None:
    row = (await s.execute(select(t).where(t.c.id == activation_id))).first()
    return load(ActivationRow, row) if row else None


async def get_many(s: AsyncSession, ids: list[str]) -> dict[str, ActivationRow]:
    if not ids:
        return {}
    rows = load_all(ActivationRow, await s.execute(select(t).where(t.c.id.in_(ids))))
    return {r.id: r for r in rows}


async def page(
    s: AsyncSession,
    *,
    instance_id: str | None = None,
    status: str | None = None,
    persona: str | None = None,
    before: datetime | None = None,
    limit: int = 100,
) -> list[ActivationRow]:
    """Newest first."""
    q = select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
    if instance_id is not None:
        q = q.where(t.c.instance_id == instance_id)
    if status is not None:
        q = q.where(t.c.status == status)
    if persona is not None:
        q = q.where(t.c.persona == persona)
    if before is not None:
        q = q.where(t.c.created_at < before)
    return load_all(ActivationRow, await s.execute(q))


async def create(
    s: AsyncSession,
    *,
    activation_id: str,
    instance_id: str,
    persona: str,
    version: int,
    desired_hash: str | None,
    actor: str,
    now: datetime,
) -> ActivationRow:
    await s.execute(
        t.insert().values(
            id=activation_id,
            instance_id=instance_id,
            persona=persona,
            version=version,
            desired_hash=desired_hash,
            status="pending",
            created_at=now,
            created_by=actor,
            updated_at=now,
        )
    )
    return ActivationRow(
        activation_id,
        instance_id,
        persona,
        version,
        desired_hash,
        "pending",
        None,
        None,
        now,
        actor,
        now,
    )


async def close_open(s: AsyncSession, instance_id: str, status: str, now: datetime) -> list[str]:
    """Mark the instance's open activations ``superseded`` or ``cancelled``."""
    ids = [
        r[0]
        for r in await s.execute(
            select(t.c.id).where(t.c.instance_id == instance_id, t.c.status.in_(OPEN))
        )
    ]
    if ids:
        await s.execute(update(t).where(t.c.id.in_(ids)).values(status=status, updated_at=now))
    return ids


async def set_status(
    s: AsyncSession,
    activation_id: str,
    *,
    status: str,
    error: str | None,
    applied_hash: str | None,
    now: datetime,
) -> None:
    values: dict[str, object] = {"status": status, "error": error, "updated_at": now}
    if applied_hash is not None:
        values["applied_hash"] = applied_hash
    await s.execute(update(t).where(t.c.id == activation_id).values(**values))


async def set_statuses(s: AsyncSession, rows: list[dict[str, object]]) -> None:
    """Many status changes in one statement (rows: id, status, error, applied_hash, now)."""
    if not rows:
        return
    q = (
        update(t)
        .where(t.c.id == bindparam("aid"))
        .values(
            status=bindparam("v_status"),
            error=bindparam("v_error"),
            applied_hash=bindparam("v_applied_hash"),
            updated_at=bindparam("v_updated_at"),
        )
        .execution_options(synchronize_session=False)
    )
    params = [
        {
            "aid": r["id"],
            "v_status": r["status"],
            "v_error": r["error"],
            "v_applied_hash": r["applied_hash"],
            "v_updated_at": r["updated_at"],
        }
        for r in rows
    ]
    await s.execute(q, sorted(params, key=lambda p: str(p["aid"])))


async def counts(s: AsyncSession) -> dict[str, int]:
    q = select(t.c.status, func.count()).group_by(t.c.status)
    return {str(r[0]): int(r[1]) for r in await s.execute(q)}


async def persona_in_use(s: AsyncSession, persona: str) -> list[str]:
    """Instances whose current explicit activation names ``persona``."""
    from mien.server.store.tables import instances

    q = (
        select(instances.c.id)
        .join(t, t.c.id == instances.c.activation_id)
        .where(t.c.persona == persona, instances.c.deleted_at.is_(None))
        .limit(20)
    )
    return [r[0] for r in await s.execute(q)]
