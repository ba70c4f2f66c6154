"""Queries on the fleet policy's versions.

There is one policy; each push that changes it adds a version (never changing an old one)
and the highest version is the one in force. Two replicas pushing at once both try to
insert the same next version: the primary key lets one win and the other's
transaction fails (a 409 "retry" from the API); a push based on an older version than the
latest gets :class:`StalePolicy` (412).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store.rows import load, load_all
from mien.server.store.tables import policy_versions as pv


@dataclass(frozen=True)
class PolicyRow:
    version: int
    content_hash: str
    document: dict[str, Any]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class PolicySummary:
    version: int
    content_hash: str
    created_at: datetime
    created_by: str


class StalePolicy(Exception):
    """The latest version is not the one the caller based its change on."""

    def __init__(self, current: int) -> None:
        super().__init__(f"latest version is {current}")
        self.current = current


async def latest(s: AsyncSession) -> PolicyRow | None:
    row = (await s.execute(select(pv).order_by(pv.c.version.desc()).limit(1))).first()
    return load(PolicyRow, row) if row else None


async def get_version(s: AsyncSession, version: int) -> PolicyRow | None:
    row = (await s.execute(select(pv).where(pv.c.version == version))).first()
    return load(PolicyRow, row) if row else None


async def versions(s: AsyncSession, limit: int = 1000) -> list[PolicySummary]:
    q = (
        select(pv.c.version, pv.c.content_hash, pv.c.created_at, pv.c.created_by)
        .order_by(pv.c.version.desc())
        .limit(limit)
    )
    return load_all(PolicySummary, await s.execute(q))


async def add_version(
    s: AsyncSession,
    document: dict[str, Any],
    content_hash: str,
    *,
    expected: int | None,
    actor: str,
    now: datetime,
) -> tuple[PolicyRow, bool]:
    """Store ``document`` as the next version (``created`` False when it equals the latest).
    ``expected``: the version the caller read (0 for none); :class:`StalePolicy` otherwise."""
    current = await latest(s)
    number = current.version if current else 0
    if expected is not None and expected != number:
        raise StalePolicy(number)
    if current is not None and current.content_hash == content_hash:
        return current, False
    new = PolicyRow(number + 1, content_hash, document, now, actor)
    # A replica racing for the same version number loses on the primary key: the
    # request fails as a conflict (409) and changes nothing.
    await s.execute(pv.insert().values(**dataclasses.asdict(new)))
    return new, True
