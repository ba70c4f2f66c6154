"""Queries on bindings (tag selector → persona, with an override, a priority and a mode)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.rows import load, load_all
from mien.server.store.tables import bindings as t


@dataclass(frozen=True)
class BindingRow:
    name: str
    selector: dict[str, Any]
    persona: str
    override: dict[str, Any] | None
    priority: int
    description: str | None
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    mode: str = "replace"


class StaleBinding(Exception):
    def __init__(self, current: int) -> None:
        super().__init__(f"latest version is {current}")
        self.current = current


async def get(s: AsyncSession, name: str) -> BindingRow | None:
    row = (await s.execute(select(t).where(t.c.name == name))).first()
    return load(BindingRow, row) if row else None


async def list_all(s: AsyncSession, *, persona: str | None = None) -> list[BindingRow]:
    q = select(t).order_by(t.c.name)
    if persona is not None:
        q = q.where(t.c.persona == persona)
    return load_all(BindingRow, await s.execute(q))


async def create(
    s: AsyncSession,
    *,
    name: str,
    selector: dict[str, Any],
    persona: str,
    override: dict[str, Any] | None,
    priority: int,
    description: str | None,
    actor: str,
    now: datetime,
    mode: str = "replace",
) -> BindingRow | None:
    """The new binding, or ``None`` when the name is taken."""
    if await get(s, name) is not None:
        return None
    await s.execute(
        t.insert().values(
            name=name,
            selector=selector,
            persona=persona,
            override=override,
            priority=priority,
            description=description,
            mode=mode,
            version=1,
            created_at=now,
            created_by=actor,
            updated_at=now,
            updated_by=actor,
        )
    )
    return await get(s, name)


async def update_binding(
    s: AsyncSession,
    *,
    name: str,
    selector: dict[str, Any],
    persona: str,
    override: dict[str, Any] | None,
    priority: int,
    description: str | None,
    expected: int | None,
    actor: str,
    now: datetime,
    mode: str = "replace",
) -> BindingRow | None:
    current = await get(s, name)
    if current is None:
        return None
    if expected is not None and expected != current.version:
        raise StaleBinding(current.version)
    result = await s.execute(
        update(t)
        .where(t.c.name == name, t.c.version == current.version)
        .values(
            selector=selector,
            persona=persona,
            override=override,
            priority=priority,
            description=description,
            mode=mode,
            version=current.version + 1,
            updated_at=now,
            updated_by=actor,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        fresh = await get(s, name)
        raise StaleBinding(fresh.version if fresh else current.version)
    return await get(s, name)


async def delete_binding(s: AsyncSession, name: str) -> BindingRow | None:
    current = await get(s, name)
    if current is not None:
        await s.execute(delete(t).where(t.c.name == name))
    return current
