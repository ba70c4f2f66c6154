"""The database side of fleet-wide sources on SQLite and PostgreSQL: of replicas claiming
one due poll, exactly one gets it; a claim held by a replica that died lapses at its time;
only the claimant writes the outcome; sources no replica wants any more are forgotten."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mien.protocol.sources import FleetSource, source_key
from mien.server.store import fleet_sources as q
from mien.server.store import migrate
from mien.server.store.db import Database

URL = "https://feeds.example.com/bad-ips.txt"
KEY = source_key(URL, "lines")


async def scenario(url: str) -> None:
    db = Database(url)
    try:
        await migrate.upgrade(db)
        source = FleetSource(KEY, URL, "lines", 60.0, 10.0)
        async with db.write() as s:
            await q.want(s, [source], 1000.0)
        async with db.read() as s:
            assert await q.due(s, 1000.0) == [KEY]  # new: due at once

        # Two replicas claim the same due poll at once: one gets it.
        async def take(replica: str) -> bool:
            async with db.write() as s:
                return await q.claim(s, KEY, 1000.0, 1040.0, replica)

        won = await asyncio.gather(take("a"), take("b"))
        assert sorted(won) == [False, True]
        winner, loser = ("a", "b") if won[0] else ("b", "a")
        async with db.read() as s:
            assert await q.due(s, 1039.0) == []
        # Only the claimant writes the outcome.
        async with db.write() as s:
            assert not await q.save(s, KEY, loser, fetched_at=1001.0, failures=0)
        # The claimant died: at the claim's end another replica takes the poll over.
        async with db.write() as s:
            assert not await q.claim(s, KEY, 1039.0, 1080.0, loser)
            assert await q.claim(s, KEY, 1040.0, 1080.0, loser)
        async with db.write() as s:
            assert not await q.save(s, KEY, winner, fetched_at=1041.0, failures=0)
            assert await q.save(
                s, KEY, loser, value=["203.0.113.7"], digest="d1", fetched_at=1041.0,
                next_at=1100.0, failures=0,
            )  # fmt: skip
        async with db.read() as s:
            row = await q.get(s, KEY)
        assert row is not None and row.value == ["203.0.113.7"] and row.next_at == 1100.0

        # Wanted again later (by another persona, a shorter interval): the copy stays.
        async with db.write() as s:
            await q.want(s, [FleetSource(KEY, URL, "lines", 10.0, 10.0)], 2000.0)
        async with db.read() as s:
            row = await q.get(s, KEY)
        assert row is not None and row.every == 10.0 and row.fetched_at == 1041.0
        # Not wanted since an hour before 6000: forgotten.
        async with db.write() as s:
            assert await q.forget(s, 2000.0) == 0
            assert await q.forget(s, 6000.0 - 3600.0) == 1
        async with db.read() as s:
            assert await q.get(s, KEY) is None
    finally:
        await db.dispose()


def test_claims_and_copies(backend: str, db_url: str | None, tmp_path: Path) -> None:
    asyncio.run(scenario(db_url or f"sqlite+aiosqlite:///{tmp_path / 'mien.db'}"))
