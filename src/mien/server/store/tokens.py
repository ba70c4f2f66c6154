"""Queries on tokens. Only a SHA-256 of each secret is stored; the secret itself is shown
once, when the token is made."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.rows import load, load_all
from mien.server.store.tables import tokens as t


@dataclass(frozen=True)
class TokenRow:
    id: str
    name: str
    kind: str
    role: str | None
    secret_hash: str
    instance_id: str | None
    uses_left: int | None
    tags: dict[str, str] | None
    expires_at: datetime | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


async def by_hash(s: AsyncSession, secret_hash: str) -> TokenRow | None:
    row = (await s.execute(select(t).where(t.c.secret_hash == secret_hash))).first()
    return load(TokenRow, row) if row else None


async def of_instances(s: AsyncSession, instance_ids: list[str]) -> list[TokenRow]:
    """The live tokens of these instances (one query)."""
    if not instance_ids:
        return []
    q = select(t).where(t.c.instance_id.in_(instance_ids), t.c.revoked_at.is_(None))
    return load_all(TokenRow, await s.execute(q))


async def get(s: AsyncSession, token_id: str) -> TokenRow | None:
    row = (await s.execute(select(t).where(t.c.id == token_id))).first()
    return load(TokenRow, row) if row else None


async def list_all(s: AsyncSession, *, include_revoked: bool = False) -> list[TokenRow]:
    q = select(t).order_by(t.c.created_at, t.c.id)
    if not include_revoked:
        q = q.where(t.c.revoked_at.is_(None))
    return load_all(TokenRow, await s.execute(q))


async def create(
    s: AsyncSession,
    *,
    token_id: str,
    name: str,
    kind: str,
    role: str | None,
    secret_hash: str,
    instance_id: str | None = None,
    uses_left: int | None = None,
    tags: dict[str, str] | None = None,
    expires_at: datetime | None = None,
    actor: str,
    now: datetime,
) -> TokenRow:
    await s.execute(
        t.insert().values(
            id=token_id,
            name=name,
            kind=kind,
            role=role,
            secret_hash=secret_hash,
            instance_id=instance_id,
            uses_left=uses_left,
            tags=tags,
            expires_at=expires_at,
            created_at=now,
            created_by=actor,
        )
    )
    row = await get(s, token_id)
    assert row is not None
    return row


async def use_enrollment(s: AsyncSession, token_id: str, now: datetime) -> bool:
    """Spend one use of an enrollment token; ``False`` if it has none left (atomic)."""
    result = await s.execute(
        update(t)
        .where(
            t.c.id == token_id,
            t.c.kind == "enroll",
            t.c.revoked_at.is_(None),
            t.c.uses_left > 0,
            or_(t.c.expires_at.is_(None), t.c.expires_at > now),
        )
        .values(uses_left=t.c.uses_left - 1)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def use_enrollments(s: AsyncSession, token_id: str, wanted: int, now: datetime) -> int:
    """Spend up to ``wanted`` uses of an enrollment token at once; how many were granted
    (0 if it is revoked, expired or used up). The row stays locked until the transaction
    ends (PostgreSQL), so concurrent replicas never grant more uses than it had."""
    row = (
        await s.execute(
            select(t.c.uses_left)
            .where(
                t.c.id == token_id,
                t.c.kind == "enroll",
                t.c.revoked_at.is_(None),
                or_(t.c.expires_at.is_(None), t.c.expires_at > now),
            )
            .with_for_update()
        )
    ).first()
    if row is None or row[0] is None or row[0] <= 0:
        return 0
    granted = min(wanted, int(row[0]))
    await s.execute(update(t).where(t.c.id == token_id).values(uses_left=t.c.uses_left - granted))
    return granted


async def create_many(s: AsyncSession, rows: list[dict[str, object]]) -> None:
    """Insert tokens in one statement (each row names every column of :class:`TokenRow`)."""
    if rows:
        await s.execute(t.insert(), rows)


async def revoke(s: AsyncSession, token_id: str, now: datetime) -> bool:
    result = await s.execute(
        update(t).where(t.c.id == token_id, t.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def revoke_for_instance(s: AsyncSession, instance_id: str, now: datetime) -> list[str]:
    ids = [
        r[0]
        for r in await s.execute(
            select(t.c.id).where(t.c.instance_id == instance_id, t.c.revoked_at.is_(None))
        )
    ]
    if ids:
        await s.execute(update(t).where(t.c.id.in_(ids)).values(revoked_at=now))
    return ids


async def count_admins(s: AsyncSession) -> int:
    q = select(t.c.id).where(t.c.role == "admin", t.c.revoked_at.is_(None))
    return len((await s.execute(q)).all())
