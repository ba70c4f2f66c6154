"""Queries on personas and their immutable versions.

A persona row points at its latest version; every create or update adds a version and
never changes an old one. Deleting is soft: the row is marked, every version is kept for
audit, and creating the name again continues its version numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.rows import load, load_all
from mien.server.store.tables import persona_versions as pv
from mien.server.store.tables import personas as p


@dataclass(frozen=True)
class PersonaRow:
    name: str
    latest_version: int
    content_hash: str
    default_persona: bool
    default_since: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class VersionRow:
    name: str
    version: int
    content_hash: str
    document: dict[str, Any]
    created_at: datetime
    created_by: str


class StaleVersion(Exception):
    """The persona's latest version is not the one the caller based its change on."""

    def __init__(self, current: int) -> None:
        super().__init__(f"latest version is {current}")
        self.current = current


async def get(s: AsyncSession, name: str, *, include_deleted: bool = False) -> PersonaRow | None:
    q = select(p).where(p.c.name == name)
    if not include_deleted:
        q = q.where(p.c.deleted_at.is_(None))
    row = (await s.execute(q)).first()
    return load(PersonaRow, row) if row else None


async def list_all(
    s: AsyncSession, *, include_deleted: bool = False, after: str | None = None, limit: int = 1000
) -> list[PersonaRow]:
    q = select(p).order_by(p.c.name).limit(limit)
    if not include_deleted:
        q = q.where(p.c.deleted_at.is_(None))
    if after:
        q = q.where(p.c.name > after)
    return load_all(PersonaRow, await s.execute(q))


async def latest(s: AsyncSession, *, include_deleted: bool = False) -> list[VersionRow]:
    """The latest version of every persona (what the resolver works with)."""
    q = select(pv).join(p, and_(p.c.name == pv.c.name, p.c.latest_version == pv.c.version))
    if not include_deleted:
        q = q.where(p.c.deleted_at.is_(None))
    return load_all(VersionRow, await s.execute(q))


async def get_version(s: AsyncSession, name: str, version: int) -> VersionRow | None:
    row = (await s.execute(select(pv).where(pv.c.name == name, pv.c.version == version))).first()
    return load(VersionRow, row) if row else None


async def versions(s: AsyncSession, name: str) -> list[VersionRow]:
    q = select(pv).where(pv.c.name == name).order_by(pv.c.version)
    return load_all(VersionRow, await s.execute(q))


async def create(
    s: AsyncSession,
    name: str,
    document: dict[str, Any],
    content_hash: str,
    *,
    actor: str,
    now: datetime,
) -> tuple[PersonaRow, VersionRow] | None:
    """Create ``name`` (or re-create a deleted one); ``None`` when it already exists. A
    created persona is never the fleet's default: that takes :func:`set_default`."""
    existing = await get(s, name, include_deleted=True)
    if existing is not None and existing.deleted_at is None:
        return None
    if existing is None:
        version = 1
        await s.execute(
            p.insert().values(
                name=name,
                latest_version=version,
                content_hash=content_hash,
                default_persona=False,
                default_since=None,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        version = existing.latest_version + 1
        await s.execute(
            update(p)
            .where(p.c.name == name)
            .values(
                latest_version=version,
                content_hash=content_hash,
                default_persona=False,
                default_since=None,
                updated_at=now,
                deleted_at=None,
                deleted_by=None,
            )
        )
    return await _add_version_row(s, name, version, document, content_hash, actor, now)


async def add_version(
    s: AsyncSession,
    name: str,
    document: dict[str, Any],
    content_hash: str,
    *,
    expected: int | None,
    actor: str,
    now: datetime,
) -> tuple[PersonaRow, VersionRow, bool] | None:
    """A new version of ``name`` (third item ``True``), or the latest one unchanged when
    the content is the same (``False``); ``None`` if the persona does not exist.

    With ``expected``, the update happens only if that is still the latest version
    (:class:`StaleVersion` otherwise); the check is in the ``UPDATE`` itself, so two
    replicas racing cannot both win.
    """
    current = await get(s, name)
    if current is None:
        return None
    if expected is not None and current.latest_version != expected:
        raise StaleVersion(current.latest_version)
    if current.content_hash == content_hash:
        same = await get_version(s, name, current.latest_version)
        assert same is not None
        return current, same, False
    q = (
        update(p)
        .where(
            p.c.name == name,
            p.c.deleted_at.is_(None),
            p.c.latest_version == current.latest_version,
        )
        .values(
            latest_version=current.latest_version + 1,
            content_hash=content_hash,
            updated_at=now,
        )
    )
    result = await s.execute(q)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        fresh = await get(s, name)
        raise StaleVersion(fresh.latest_version if fresh else current.latest_version)
    row, ver = await _add_version_row(
        s, name, current.latest_version + 1, document, content_hash, actor, now
    )
    return row, ver, True


async def _add_version_row(
    s: AsyncSession,
    name: str,
    version: int,
    document: dict[str, Any],
    content_hash: str,
    actor: str,
    now: datetime,
) -> tuple[PersonaRow, VersionRow]:
    await s.execute(
        pv.insert().values(
            name=name,
            version=version,
            content_hash=content_hash,
            document=document,
            created_at=now,
            created_by=actor,
        )
    )
    row = await get(s, name)
    assert row is not None
    return row, VersionRow(name, version, content_hash, document, now, actor)


async def soft_delete(s: AsyncSession, name: str, *, actor: str, now: datetime) -> bool:
    result = await s.execute(
        update(p)
        .where(p.c.name == name, p.c.deleted_at.is_(None))
        .values(deleted_at=now, deleted_by=actor, updated_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def defaults(s: AsyncSession) -> list[str]:
    """The live personas marked as the fleet's default, the one that counts first (older
    databases may have several marked; the most recently marked one wins)."""
    q = (
        select(p.c.name)
        .where(p.c.default_persona.is_(True), p.c.deleted_at.is_(None))
        .order_by(p.c.default_since.desc(), p.c.name)
    )
    return [str(name) for name in (await s.execute(q)).scalars()]


async def set_default(s: AsyncSession, name: str, *, now: datetime) -> list[str] | None:
    """Make ``name`` the fleet's one default persona; the personas that were marked before
    (``None`` when ``name`` is not a live persona)."""
    target = await get(s, name)
    if target is None:
        return None
    previous = await defaults(s)
    await s.execute(
        update(p)
        .where(p.c.default_persona.is_(True), p.c.name != name)
        .values(default_persona=False, default_since=None)
    )
    if not target.default_persona:
        await s.execute(
            update(p).where(p.c.name == name).values(default_persona=True, default_since=now)
        )
    return previous


async def unset_default(s: AsyncSession, name: str) -> bool | None:
    """Stop ``name`` being the fleet's default: whether it was (``None`` when ``name`` is not
    a persona at all)."""
    target = await get(s, name, include_deleted=True)
    if target is None:
        return None
    if not target.default_persona:
        return False
    await s.execute(
        update(p).where(p.c.name == name).values(default_persona=False, default_since=None)
    )
    return True


@dataclass(frozen=True)
class LatestRow:
    """A persona's latest version together with the persona's flags (for the cache)."""

    name: str
    version: int
    content_hash: str
    document: dict[str, Any]
    default_persona: bool
    default_since: datetime | None
    deleted_at: datetime | None


async def snapshot(s: AsyncSession, names: list[str] | None = None) -> list[LatestRow]:
    """Latest versions with flags, deleted personas included (the resolver says why it
    passed them over)."""
    q = select(
        pv.c.name,
        pv.c.version,
        pv.c.content_hash,
        pv.c.document,
        p.c.default_persona,
        p.c.default_since,
        p.c.deleted_at,
    ).join(p, and_(p.c.name == pv.c.name, p.c.latest_version == pv.c.version))
    if names is not None:
        q = q.where(p.c.name.in_(names))
    return load_all(LatestRow, await s.execute(q))
