"""The database of one replica: engine, sessions, and the rules for writing.

Routes and background tasks open :meth:`Database.read` for queries and
:meth:`Database.write` for a transaction. SQLite (the embedded default) allows one writer
at a time, so writes of this process queue on an asyncio lock instead of failing with
"database is locked"; a SQLite database serves one replica. PostgreSQL takes any number
of replicas: optimistic checks (``WHERE version = :expected``) and an advisory lock on
the audit chain keep concurrent writers correct.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

AUDIT_LOCK = 0x6D69656E  # "mien": the advisory lock serialising audit appends on PostgreSQL
MIGRATION_LOCK = 0x6D69656E + 1


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer. FULL: a commit that was answered survives a
    # power cut. busy_timeout: another process (an offline `mien server` command) waits.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """The engine plus read and write sessions."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        parsed = make_url(url)
        self.url = url
        self.backend = parsed.get_backend_name()
        if self.backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.backend!r}: use sqlite or postgresql")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=2 * pool_size, pool_pre_ping=True)
            # Plan every execution for its parameters. asyncpg prepares each statement once
            # per connection, and PostgreSQL switches a prepared statement to a generic plan
            # after five runs: planned while a table was small (a fleet enrolling into a new
            # database), that plan scans the whole table and is kept as it grows; at 8,000
            # instances the id lookups of enrollment took 2 ms each instead of 0.1 ms
            # (bench/fleet_bench.py, 8,000 agents: 627 enrollments/s, 821/s with this).
            kwargs["connect_args"] = {"server_settings": {"plan_cache_mode": "force_custom_plan"}}
        self.engine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back on an exception."""
        if self._write_lock is None:
            async with self.sessions.begin() as session:
                yield session
            return
        async with self._write_lock, self.sessions.begin() as session:
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def lock_audit_chain(session: AsyncSession) -> None:
    """Serialise audit appends across replicas until the transaction ends (PostgreSQL)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK})
