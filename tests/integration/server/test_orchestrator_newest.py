"""The leader keeps the newest values in memory and reads only what changed, with the same
answers as reading everything: on SQLite and PostgreSQL, values stored after the first
evaluation (also through another replica's connections) are seen by the next one and
only they are read; values that age past ``fresh`` and instances deleted drop out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mien.protocol.telemetry import TelemetryBatch
from mien.server.orchestrator.aggregates import load
from mien.server.orchestrator.documents import parse
from mien.server.orchestrator.newest import Newest
from mien.server.settings import Settings
from mien.server.state import ServerState
from mien.server.store import fleet_rules as rules_q
from mien.server.store import instances as instances_q
from mien.server.store import migrate
from mien.server.store import telemetry as telemetry_q
from mien.server.store.db import Database
from mien.server.store.tables import instances

RULE = (
    b"name: web-hot\nselector: {role: web}\nwhen: avg.cpu_percent > 70.0 && count >= 2\n"
    b"then: [{set_tags: {hot: 'yes'}}]\n"
)
MACHINE = (
    b"name: web-mem\nselector: {role: web}\nwhen: firing_fraction.high_memory >= 0.5\n"
    b"then: [{set_tags: {mem: 'yes'}}]\n"
)


def batch(now: float, seq: int, cpu: float | None, rule_phase: str | None = None) -> Any:
    samples = [] if cpu is None else [{"seq": seq, "ts": now, "name": "cpu_percent", "value": cpu}]
    events = (
        [
            {
                "seq": seq,
                "ts": now,
                "kind": f"adapt.rule.{rule_phase}",
                "detail": {"rule": "high_memory"},
            }
        ]
        if rule_phase
        else []
    )
    return TelemetryBatch.model_validate({"samples": samples, "events": events})


async def send(db: Database, iid: str, b: Any, now: float) -> None:
    async with db.write() as s:
        await telemetry_q.ingest(s, iid, b, now)


async def scenario(tmp_path: Path, db_url: str | None) -> None:
    settings = Settings(data_dir=tmp_path, db_url=db_url, orchestrator_lease_ttl=600)
    state = ServerState(settings)
    await migrate.upgrade(state.db)
    other = Database(settings.database_url)  # another replica's connections, same database
    now = state.clock().timestamp()
    at = datetime.fromtimestamp(now, UTC)
    async with state.db.write() as s:
        await s.execute(
            instances.insert(),
            [
                {"id": f"web-{i}", "tags": {"role": "web"}, "enrolled_at": at, "enrolled_by": "t"}
                for i in (1, 2, 3)
            ],
        )
        for raw in (RULE, MACHINE):
            p = parse(raw)
            await rules_q.add_version(s, p.doc.name, p.data, p.text, "test", at)
    await state.fleet.load_all(at)
    orch = state.orchestrator
    assert await orch.tick() is not None  # the lease; nothing reported yet

    async def evaluate(when: float) -> dict[str, Any]:
        await orch.evaluate(when)
        async with state.db.read() as s:
            rules = [orch._rule(r) for r in await rules_q.current(s)]
            whole = await load(s, Newest(resync=0), rules, when)  # everything, read anew
            mine = await load(s, orch.newest, rules, when)  # nothing new since: no rows
            assert orch.newest.read == 0
            states = await rules_q.states(s)
        assert mine.values == whole.values and mine.firing == whole.firing
        return {name: row.seen for name, row in states.items()}

    for i, cpu in ((1, 80.0), (2, 90.0), (3, 60.0)):
        await send(state.db, f"web-{i}", batch(now, 1, cpu, "firing" if i == 1 else None), now)
    seen = await evaluate(now)
    assert seen["web-hot"]["avg.cpu_percent"] == 230.0 / 3
    assert seen["web-mem"]["firing_fraction.high_memory"] == 1 / 3

    # Stored after that evaluation, one by this replica and two by the other's
    # connections: the next evaluation reads those rows and nothing else.
    await send(state.db, "web-1", batch(now + 1, 2, 20.0), now + 1)
    await send(other, "web-2", batch(now + 1, 2, 40.0, "firing"), now + 1)
    await send(other, "web-3", batch(now + 1, 2, None, "firing"), now + 1)
    await orch.evaluate(now + 2)
    assert orch.newest.read == 4  # two values, two phases
    seen = await evaluate(now + 2)
    assert seen["web-hot"]["avg.cpu_percent"] == 40.0
    assert seen["web-mem"]["firing_fraction.high_memory"] == 1.0

    if state.db.is_postgres:
        # A transaction of the other replica still running during an evaluation: its row
        # is read by the evaluation after it commits, though younger ones were read since.
        async with other.write() as s:
            await telemetry_q.ingest(s, "web-1", batch(now + 2, 3, 99.0), now + 2)
            await send(state.db, "web-3", batch(now + 2, 3, None, "firing"), now + 2)
            await orch.evaluate(now + 2.5)
            assert orch.newest.values["cpu_percent"]["web-1"] == 20.0
        seen = await evaluate(now + 2.5)
        assert seen["web-hot"]["avg.cpu_percent"] == 199.0 / 3
        await send(state.db, "web-1", batch(now + 2.5, 4, 20.0), now + 2.5)

    # An instance deleted leaves the aggregates at once.
    async with state.db.write() as s:
        await instances_q.soft_delete(s, "web-2", at)
    await state.fleet.load_all(at)
    seen = await evaluate(now + 3)
    assert seen["web-hot"]["avg.cpu_percent"] == 40.0  # web-1 20, web-3 60
    assert seen["web-hot"]["count"] == 2
    assert seen["web-mem"]["firing_fraction.high_memory"] == 1.0

    # Past `fresh` (2 minutes) a value drops out, without a read: web-3's 60 of `now` is
    # gone, web-1's 20 of now + 1 is still fresh.
    seen = await evaluate(now + 120.5)
    assert seen["web-hot"]["avg.cpu_percent"] == 20.0
    seen = await evaluate(now + 200)
    assert "avg.cpu_percent" not in seen["web-hot"]
    await other.dispose()
    await state.db.dispose()


def test_changes_since_the_last_evaluation_are_read(tmp_path: Path, db_url: str | None) -> None:
    asyncio.run(scenario(tmp_path, db_url))
