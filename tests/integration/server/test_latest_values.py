"""The newest value per instance of every metric and machine rule, on a real SQLite
database: newer wins whatever order batches come in, resolved rules stop counting as
firing, stale values are left out, and an agent inventing names cannot grow the table
past the bound."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mien.protocol.telemetry import TelemetryBatch
from mien.server.store import latest, migrate
from mien.server.store import telemetry as telemetry_q
from mien.server.store.db import Database

NOW = 1_800_000_000.0


def batch(
    samples: list[tuple[int, float, str, float]], events: tuple[Any, ...] | list[Any] = ()
) -> TelemetryBatch:
    return TelemetryBatch.model_validate(
        {
            "samples": [{"seq": q, "ts": ts, "name": n, "value": v} for q, ts, n, v in samples],
            "events": [
                {"seq": q, "ts": ts, "kind": k, "detail": {"rule": r}} for q, ts, k, r in events
            ],
        }
    )


async def scenario(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'mien.db'}")
    await migrate.upgrade(db)
    async with db.write() as s:
        await telemetry_q.ingest(
            s,
            "vm-1",
            batch(
                [(1, NOW, "cpu_percent", 50.0), (2, NOW - 1, "cpu_percent", 10.0)],
                [(1, NOW, "adapt.rule.firing", "hot"), (2, NOW, "adapt.rule.firing", "disk")],
            ),
            NOW,
        )
        # An older sample arriving later does not replace the newer one.
        await telemetry_q.ingest(s, "vm-1", batch([(3, NOW - 5, "cpu_percent", 99.0)]), NOW)
        await telemetry_q.ingest(
            s,
            "vm-2",
            batch([(1, NOW - 600, "cpu_percent", 70.0)], [(1, NOW, "adapt.rule.firing", "hot")]),
            NOW,
        )
        await telemetry_q.ingest(
            s, "vm-1", batch([], [(3, NOW + 1, "adapt.rule.resolved", "disk")]), NOW
        )
        names = [(10 + i, NOW, f"m{i}", 1.0) for i in range(latest.MAX_LATEST + 50)]
        await telemetry_q.ingest(s, "vm-3", batch(names), NOW)
    async with db.read() as s:
        values = await latest.latest_values(s, ["cpu_percent", "m0"], NOW - 120)
        assert values["cpu_percent"] == {"vm-1": 50.0}  # vm-2's is stale
        assert values["m0"] == {"vm-3": 1.0}
        firing = await latest.firing_rules(s, ["hot", "disk"], NOW - 120)
        assert firing == {"hot": {"vm-1", "vm-2"}, "disk": set()}
        many = await latest.latest_values(s, [f"m{i}" for i in range(latest.MAX_LATEST + 50)], 0)
        assert sum(len(v) for v in many.values()) == latest.MAX_LATEST
    await db.dispose()


def test_newest_values_and_rule_phases(tmp_path: Path) -> None:
    asyncio.run(scenario(tmp_path))
