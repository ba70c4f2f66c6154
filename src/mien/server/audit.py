"""The audit log: append-only records, each chained to the previous by a SHA-256 hash.

Every change the server makes is recorded here with its actor and time, in the same
transaction as the change. Record *n* stores the hash of record *n-1*; its own hash covers
its fields and that link. Editing, inserting or deleting a record in the middle therefore
breaks the chain at that point, which :class:`ChainVerifier` reports (``mien audit
verify``, ``GET /api/v1/audit/verify``, ``mien server audit-verify`` offline). Removing the
newest records leaves a valid shorter chain: compare the head hash with one kept elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.store import audit as store
from mien.server.store.audit import AuditRow
from mien.server.store.db import lock_audit_chain

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    """One thing that happened, before it is chained."""

    actor: str
    action: str
    instance_id: str | None = None
    persona: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def timestamp(at: datetime) -> str:
    """The one text form of audit times (UTC, microseconds), which sorts in time order."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def detail_text(detail: Mapping[str, Any]) -> str:
    return orjson.dumps(dict(detail), option=orjson.OPT_SORT_KEYS).decode()


def record_hash(
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    instance_id: str | None,
    persona: str | None,
    detail: str,
    prev_hash: str,
) -> str:
    payload = orjson.dumps([seq, at, actor, action, instance_id, persona, detail, prev_hash])
    return hashlib.sha256(payload).hexdigest()


def chain(head: tuple[int, str] | None, entries: Iterable[Entry], at: datetime) -> list[AuditRow]:
    """Records for ``entries``, continuing the chain after ``head`` (seq, hash)."""
    seq, prev = head if head is not None else (0, GENESIS)
    when = timestamp(at)
    rows = []
    for entry in entries:
        seq += 1
        detail = detail_text(entry.detail)
        digest = record_hash(
            seq=seq,
            at=when,
            actor=entry.actor,
            action=entry.action,
            instance_id=entry.instance_id,
            persona=entry.persona,
            detail=detail,
            prev_hash=prev,
        )
        rows.append(
            AuditRow(
                seq,
                when,
                entry.actor,
                entry.action,
                entry.instance_id,
                entry.persona,
                detail,
                prev,
                digest,
            )
        )
        prev = digest
    return rows


async def append(session: AsyncSession, entries: list[Entry], at: datetime) -> list[AuditRow]:
    """Chain and insert ``entries`` inside the caller's transaction."""
    if not entries:
        return []
    await lock_audit_chain(session)
    rows = chain(await store.head(session), entries, at)
    await store.insert(session, rows)
    return rows


@dataclass
class ChainVerifier:
    """Checks records fed in order; stops at the first one that does not fit."""

    records: int = 0
    prev_seq: int = 0
    prev_hash: str = GENESIS
    first_bad: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad is None

    def feed(self, rows: Iterable[AuditRow]) -> bool:
        """Check more records; ``False`` once the chain is broken."""
        for row in rows:
            if not self.ok:
                return False
            expected = self.prev_seq + 1
            if row.seq != expected:
                return self._bad(row.seq, f"record {expected} is missing (next is {row.seq})")
            if row.prev_hash != self.prev_hash:
                return self._bad(row.seq, "its link to the previous record does not match")
            digest = record_hash(
                seq=row.seq,
                at=row.at,
                actor=row.actor,
                action=row.action,
                instance_id=row.instance_id,
                persona=row.persona,
                detail=row.detail,
                prev_hash=row.prev_hash,
            )
            if digest != row.hash:
                return self._bad(row.seq, "its content does not match its hash (edited)")
            self.records += 1
            self.prev_seq = row.seq
            self.prev_hash = row.hash
        return self.ok

    def _bad(self, seq: int, reason: str) -> bool:
        self.first_bad = seq
        self.reason = f"record {seq}: {reason}"
        return False

    @property
    def head(self) -> str | None:
        return None if self.records == 0 else self.prev_hash


async def verify(session: AsyncSession) -> ChainVerifier:
    """Verify the whole chain in the database."""
    checker = ChainVerifier()
    async for rows in store.scan(session):
        if not checker.feed(rows):
            break
    return checker
