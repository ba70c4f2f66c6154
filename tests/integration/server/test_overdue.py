"""Overdue remote commands expire with a reason naming who did not act: not picked up
(pending) or no result (sent); a command that is not yet due, or already done, is left as it
is. Against a real SQLite database through the store's own tables."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from mien.server.store import commands
from mien.server.store.tables import commands as t
from mien.server.store.tables import metadata


def _row(status: str, expires_at: datetime, now: datetime) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "instance_id": "vm-1",
        "command": "uptime",
        "args": [],
        "timeout": 30.0,
        "status": status,
        "created_at": now,
        "created_by": "admin",
        "expires_at": expires_at,
    }


async def _expire(db: Path) -> dict[str, tuple[str, str | None]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    now = datetime.now(UTC)
    rows = {
        "pending": _row("pending", now - timedelta(seconds=1), now),
        "sent": _row("sent", now - timedelta(seconds=1), now),
        "not-due": _row("sent", now + timedelta(hours=1), now),
        "done": _row("done", now - timedelta(seconds=1), now),
    }
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: metadata.create_all(c, tables=[t]))
            await conn.execute(insert(t), list(rows.values()))
        async with AsyncSession(engine) as s, s.begin():
            expired = await commands.expire(s, now)
        assert {r.id for r in expired} == {rows["pending"]["id"], rows["sent"]["id"]}
        async with AsyncSession(engine) as s:
            found = {r.id: (r.status, r.error) for r in await s.execute(select(t))}
        return {name: found[str(row["id"])] for name, row in rows.items()}
    finally:
        await engine.dispose()


def test_overdue_commands_expire_saying_who_did_not_act(tmp_path: Path) -> None:
    after = asyncio.run(_expire(tmp_path / "store.db"))
    assert after["pending"] == ("expired", "the agent did not pick the command up in time")
    assert after["sent"] == ("expired", "the agent did not report a result in time")
    assert after["not-due"] == ("sent", None)
    assert after["done"] == ("done", None)
