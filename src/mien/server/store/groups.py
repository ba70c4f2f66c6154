"""Queries on groups of users, which ``access_controls.users`` names as ``group:NAME``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.tables_broker import groups as g


async def members(s: AsyncSession, name: str) -> list[str]:
    q = select(g.c.member).where(g.c.name == name).order_by(g.c.member)
    return [r[0] for r in await s.execute(q)]


async def all_groups(s: AsyncSession) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, member in await s.execute(
        select(g.c.name, g.c.member).order_by(g.c.name, g.c.member)
    ):
        out.setdefault(name, []).append(member)
    return out


async def of_user(s: AsyncSession, user: str) -> set[str]:
    return {r[0] for r in await s.execute(select(g.c.name).where(g.c.member == user))}


async def add(
    s: AsyncSession, name: str, users: list[str], *, actor: str, now: datetime
) -> list[str]:
    """Add users to a group; the ones that were not members yet."""
    present = set(await members(s, name))
    added = [u for u in dict.fromkeys(users) if u not in present]
    if added:
        await s.execute(
            g.insert(),
            [{"name": name, "member": u, "created_at": now, "created_by": actor} for u in added],
        )
    return added


async def remove(s: AsyncSession, name: str, users: list[str] | None) -> int:
    """Remove users from a group (all of them, and so the group, when ``users`` is None)."""
    q = delete(g).where(g.c.name == name)
    if users is not None:
        q = q.where(g.c.member.in_(users))
    result = await s.execute(q)
    return int(result.rowcount)  # type: ignore[attr-defined]
