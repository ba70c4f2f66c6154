"""Queries on provider declarations and the durable provider-call queue.

A call is inserted once per idempotency key (a second insert of the same key returns the
first row and changes nothing), claimed by one replica at a time with a conditional UPDATE
(``claimed_until``: a replica that dies mid-attempt loses its claim when that time passes),
and moved to ``succeeded``, ``failing`` (with its next attempt) or ``failed``. Used by
:mod:`mien.server.providers.queue` and the provider routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.rows import load, load_all
from mien.server.store.tables_orchestrator import provider_calls as c
from mien.server.store.tables_orchestrator import providers as p

OPEN = ("pending", "failing")
"""Calls still to be attempted."""


@dataclass(frozen=True)
class ProviderRow:
    name: str
    driver: str
    selector: dict[str, Any]
    config: dict[str, Any]
    secret: str | None
    description: str | None
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class CallRow:
    id: str
    idempotency_key: str
    provider: str
    instance_id: str
    kind: str
    params: dict[str, Any]
    reason: str
    status: str
    attempts: int
    last_error: str | None
    result: dict[str, Any] | None
    next_attempt_at: datetime | None
    claimed_until: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


# --- declarations ----------------------------------------------------------------------


async def get(s: AsyncSession, name: str) -> ProviderRow | None:
    row = (await s.execute(select(p).where(p.c.name == name))).first()
    return load(ProviderRow, row) if row else None


async def list_all(s: AsyncSession) -> list[ProviderRow]:
    return load_all(ProviderRow, await s.execute(select(p).order_by(p.c.name)))


async def put(
    s: AsyncSession,
    *,
    name: str,
    driver: str,
    selector: dict[str, Any],
    config: dict[str, Any],
    secret: str | None,
    description: str | None,
    actor: str,
    now: datetime,
) -> ProviderRow:
    """Create or replace ``name`` (``secret`` None keeps the stored one)."""
    old = await get(s, name)
    values: dict[str, Any] = {
        "driver": driver,
        "selector": selector,
        "config": config,
        "description": description,
        "updated_at": now,
        "updated_by": actor,
    }
    if old is None:
        await s.execute(
            p.insert().values(
                name=name, secret=secret, version=1, created_at=now, created_by=actor, **values
            )
        )
    else:
        if secret is not None:
            values["secret"] = secret
        await s.execute(update(p).where(p.c.name == name).values(version=old.version + 1, **values))
    row = await get(s, name)
    assert row is not None
    return row


async def remove(s: AsyncSession, name: str) -> bool:
    result: Any = await s.execute(delete(p).where(p.c.name == name))
    return bool(result.rowcount)


# --- calls -----------------------------------------------------------------------------


async def call_by_key(s: AsyncSession, key: str) -> CallRow | None:
    row = (await s.execute(select(c).where(c.c.idempotency_key == key))).first()
    return load(CallRow, row) if row else None


async def call(s: AsyncSession, call_id: str) -> CallRow | None:
    row = (await s.execute(select(c).where(c.c.id == call_id))).first()
    return load(CallRow, row) if row else None


async def add_call(s: AsyncSession, values: dict[str, Any]) -> tuple[CallRow, bool]:
    """Insert unless the key is known; (the row, whether this call inserted it)."""
    insert = (postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert)(c)
    result: Any = await s.execute(
        insert.values(**values).on_conflict_do_nothing(index_elements=[c.c.idempotency_key])
    )
    row = await call_by_key(s, values["idempotency_key"])
    assert row is not None
    return row, bool(result.rowcount)


async def for_instance(s: AsyncSession, instance_id: str, limit: int = 100) -> list[CallRow]:
    query = (
        select(c)
        .where(c.c.instance_id == instance_id)
        .order_by(c.c.created_at.desc(), c.c.id)
        .limit(limit)
    )
    return load_all(CallRow, await s.execute(query))


async def newest(
    s: AsyncSession, limit: int = 100, statuses: list[str] | None = None
) -> list[CallRow]:
    """The fleet's newest calls, whatever their instance (the dashboard's list), of the
    given statuses only when some are given."""
    query = select(c).order_by(c.c.created_at.desc(), c.c.id).limit(limit)
    if statuses:
        query = query.where(c.c.status.in_(statuses))
    return load_all(CallRow, await s.execute(query))


async def due(s: AsyncSession, now: datetime, limit: int) -> list[CallRow]:
    query = (
        select(c)
        .where(
            c.c.status.in_(OPEN),
            c.c.next_attempt_at <= now,
            or_(c.c.claimed_until.is_(None), c.c.claimed_until < now),
        )
        .order_by(c.c.next_attempt_at)
        .limit(limit)
    )
    return load_all(CallRow, await s.execute(query))


async def claim(s: AsyncSession, call_id: str, now: datetime, until: datetime) -> bool:
    """Take ``call_id`` for one attempt unless another replica holds it."""
    result: Any = await s.execute(
        update(c)
        .where(
            c.c.id == call_id,
            c.c.status.in_(OPEN),
            or_(c.c.claimed_until.is_(None), c.c.claimed_until < now),
        )
        .values(claimed_until=until)
    )
    return bool(result.rowcount)


async def settle(s: AsyncSession, call_id: str, claimed: datetime, **values: Any) -> bool:
    """Record an attempt's outcome, if the claim ``claimed`` is still this replica's."""
    result: Any = await s.execute(
        update(c)
        .where(c.c.id == call_id, c.c.claimed_until == claimed)
        .values(claimed_until=None, **values)
    )
    return bool(result.rowcount)


CHUNK = 500
"""Values per IN list (under SQLite's bound-parameter limit), for reads over a fleet."""


def _newest_resizes(instance_ids: list[str] | None = None) -> Any:
    """Each instance's newest successful resize, as a subquery of (id, instance_id,
    finished_at, result): what the provider last answered as the instance's size."""
    where = [c.c.status == "succeeded", c.c.kind == "resize"]
    if instance_ids is not None:
        where.append(c.c.instance_id.in_(instance_ids))
    ranked = (
        select(
            c.c.id,
            c.c.instance_id,
            c.c.finished_at,
            c.c.result,
            func.row_number()
            .over(partition_by=c.c.instance_id, order_by=c.c.finished_at.desc())
            .label("rank"),
        )
        .where(*where)
        .subquery()
    )
    return select(ranked.c.id, ranked.c.instance_id, ranked.c.finished_at, ranked.c.result).where(
        ranked.c.rank == 1
    )


async def newest_sizes(
    s: AsyncSession, instance_ids: list[str]
) -> dict[str, tuple[datetime, dict[str, Any]]]:
    """The newest size a provider answered for each of ``instance_ids`` (time, result)."""
    if not instance_ids:
        return {}
    rows = await s.execute(_newest_resizes(instance_ids))
    return {iid: (at, dict(result or {})) for _id, iid, at, result in rows}


async def known_keys(s: AsyncSession, keys: list[str]) -> set[str]:
    """Which of ``keys`` a call was made with (in batches of :data:`CHUNK`)."""
    found: set[str] = set()
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = await s.execute(select(c.c.idempotency_key).where(c.c.idempotency_key.in_(chunk)))
        found.update(str(r[0]) for r in rows)
    return found


FINISHED = ("succeeded", "failed")


async def prune_calls(s: AsyncSession, before: datetime) -> int:
    """Delete calls that finished before ``before``, except each instance's newest
    successful resize (what :func:`newest_sizes` answers); how many were deleted."""
    kept = select(_newest_resizes().subquery().c.id)
    result: Any = await s.execute(
        delete(c).where(c.c.status.in_(FINISHED), c.c.finished_at < before, c.c.id.not_in(kept))
    )
    return int(result.rowcount or 0)
