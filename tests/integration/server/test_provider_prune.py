"""Finished provider calls are pruned after their retention, on SQLite and PostgreSQL,
except each instance's newest successful resize (the size the provider last answered,
which resizing compares against) and calls still open."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mien.server.store import migrate
from mien.server.store import providers as q
from mien.server.store.db import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def call(instance: str, kind: str, status: str, days_ago: float, **extra: Any) -> dict[str, Any]:
    at = NOW - timedelta(days=days_ago)
    finished = at if status in ("succeeded", "failed") else None
    return {
        "id": str(uuid.uuid4()),
        "idempotency_key": f"k-{uuid.uuid4()}",
        "provider": "hooks",
        "instance_id": instance,
        "kind": kind,
        "params": {"cpus": 2},
        "reason": "test",
        "status": status,
        "attempts": 1,
        "last_error": None,
        "result": extra.get("result"),
        "next_attempt_at": None if finished else at,
        "claimed_until": None,
        "created_at": at,
        "updated_at": at,
        "finished_at": finished,
    }


async def _prune(url: str) -> tuple[int, set[str], Any]:
    db = Database(url)
    try:
        await migrate.upgrade(db)
        rows = {
            "old-resize": call("i-1", "resize", "succeeded", 200, result={"cpus": 1}),
            "newest-resize": call("i-1", "resize", "succeeded", 150, result={"cpus": 2}),
            "old-failed": call("i-1", "resize", "failed", 120),
            "recent": call("i-1", "resize", "failed", 1),
            "open": call("i-1", "resize", "failing", 200),
            "old-other": call("i-2", "scale", "succeeded", 100),
        }
        async with db.write() as s:
            for values in rows.values():
                await q.add_call(s, values)
        async with db.write() as s:
            deleted = await q.prune_calls(s, NOW - timedelta(days=90))
        async with db.read() as s:
            left = {
                name for name, values in rows.items() if await q.call(s, values["id"]) is not None
            }
            known = (await q.newest_sizes(s, ["i-1"])).get("i-1")
        return deleted, left, known
    finally:
        await db.dispose()


def test_finished_calls_past_their_retention_are_pruned(
    backend: str, db_url: str | None, tmp_path: Path
) -> None:
    url = db_url or f"sqlite+aiosqlite:///{tmp_path / 'mien.db'}"
    deleted, left, known = asyncio.run(_prune(url))
    assert left == {"newest-resize", "recent", "open"}
    assert deleted == 3
    assert known is not None and known[1] == {"cpus": 2}
