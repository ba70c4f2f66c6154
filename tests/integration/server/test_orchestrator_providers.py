"""A fleet rule's provider requests reach the provider queue once, even across a leader
that dies between recording them and handing them over.

In-process, on a real SQLite database: two replicas' states share it; the queue is a small
real one defined here (it keeps each request once by idempotency key and counts every
submit), standing in for the server's provider queue so the hand-over can be counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mien.protocol.telemetry import TelemetryBatch
from mien.server.orchestrator.documents import parse
from mien.server.providers.base import ProviderRequest
from mien.server.settings import Settings
from mien.server.state import ServerState
from mien.server.store import fleet_rules as rules_q
from mien.server.store import instances as instances_q
from mien.server.store import migrate
from mien.server.store import providers as providers_q
from mien.server.store import telemetry as telemetry_q

RULE = b"""\
name: resize-worst
selector: {role: web}
when: max.cpu_percent > 80
then:
  - call_provider: {provider: libvirt, kind: resize, params: {cpus: 4}, worst: 1, by: cpu_percent}
"""


class Queue:
    """A provider queue: one entry per idempotency key, in order; every submit counted."""

    def __init__(self) -> None:
        self.entries: asyncio.Queue[ProviderRequest] = asyncio.Queue()
        self.keys: set[str] = set()
        self.submits = 0

    async def submit(self, request: ProviderRequest) -> None:
        self.submits += 1
        if request.idempotency_key not in self.keys:
            self.keys.add(request.idempotency_key)
            await self.entries.put(request)


def replica(tmp_path: Path, now: list[float]) -> ServerState:
    settings = Settings(data_dir=tmp_path, orchestrator_interval=0.1, orchestrator_lease_ttl=5)
    clock: Callable[[], datetime] = lambda: datetime.fromtimestamp(now[0], UTC)  # noqa: E731
    return ServerState(settings, clock)


async def scenario(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    a, b = replica(tmp_path, now), replica(tmp_path, now)
    await migrate.upgrade(a.db)
    parsed = parse(RULE, "resize-worst.yaml")
    async with a.transaction() as tx:
        for iid, cpu in (("web-1", 85.0), ("web-2", 95.0), ("db-1", 99.0)):
            role = "db" if iid.startswith("db") else "web"
            await instances_q.create(
                tx.session,
                iid,
                hostname=None,
                tags={"role": role},
                agent_version=None,
                actor="test",
                now=tx.now,
            )
            batch = TelemetryBatch.model_validate(
                {"samples": [{"seq": 1, "ts": now[0], "name": "cpu_percent", "value": cpu}]}
            )
            await telemetry_q.ingest(tx.session, iid, batch, now[0])
        await rules_q.add_version(
            tx.session, "resize-worst", parsed.data, parsed.text, "test", tx.now
        )
    for state in (a, b):
        await state.fleet.load_all(state.clock())

    queue = Queue()
    # Replica a leads, fires, records the request and dies before handing it over (its
    # queue unwired, which stops at the same point).
    a.orchestrator.submit = None
    done = await a.orchestrator.tick()
    assert done is not None and done.fired == ["resize-worst"]
    async with a.db.read() as s:
        pending = await rules_q.pending(s)
    assert len(pending) == 1
    # Replica b cannot lead while a's lease runs.
    b.orchestrator.submit = queue.submit
    assert await b.orchestrator.tick() is None and queue.submits == 0
    now[0] += 6  # a's lease lapsed
    done = await b.orchestrator.tick()
    assert done is not None and done.fired == []  # the rule's state came with the database
    assert queue.submits == 1
    request = queue.entries.get_nowait()
    assert request.instance_id == "web-2"  # the worst web instance, not db-1
    assert (request.provider, request.kind, dict(request.params)) == (
        "libvirt",
        "resize",
        {"cpus": 4},
    )
    assert request.idempotency_key == f"{pending[0].key}:web-2"
    now[0] += 1
    await b.orchestrator.tick()
    assert queue.submits == 1  # handed over once
    async with b.db.read() as s:
        assert await rules_q.pending(s) == []
        assert (await rules_q.action(s, pending[0].key)).status == "submitted"  # type: ignore[union-attr]
    for state in (a, b):
        await state.db.dispose()


def test_a_provider_request_is_handed_over_once_across_a_dead_leader(tmp_path: Path) -> None:
    asyncio.run(scenario(tmp_path))


async def wired(tmp_path: Path) -> None:
    """The server's own wiring: the leader hands the request to the provider queue, which
    stores it once under its key and gates it (no provider serves this instance here, so
    it is kept as refused, never dropped)."""
    now = [1_800_000_000.0]
    a = replica(tmp_path, now)
    await migrate.upgrade(a.db)
    async with a.transaction() as tx:
        await instances_q.create(
            tx.session,
            "web-1",
            hostname=None,
            tags={"role": "web"},
            agent_version=None,
            actor="test",
            now=tx.now,
        )
        batch = TelemetryBatch.model_validate(
            {"samples": [{"seq": 1, "ts": now[0], "name": "cpu_percent", "value": 90.0}]}
        )
        await telemetry_q.ingest(tx.session, "web-1", batch, now[0])
        parsed = parse(RULE, "resize-worst.yaml")
        await rules_q.add_version(
            tx.session, "resize-worst", parsed.data, parsed.text, "test", tx.now
        )
    await a.fleet.load_all(a.clock())
    done = await a.orchestrator.tick()
    assert done is not None and done.fired == ["resize-worst"]
    async with a.db.read() as s:
        assert await rules_q.pending(s) == []
        calls = await providers_q.for_instance(s, "web-1")
    assert len(calls) == 1, calls
    call = calls[0]
    assert (call.kind, call.params, call.status) == ("resize", {"cpus": 4}, "refused")
    assert "resize-worst" in call.reason
    await a.db.dispose()


def test_the_server_hands_fleet_rule_requests_to_its_provider_queue(tmp_path: Path) -> None:
    asyncio.run(wired(tmp_path))
