"""Admission under contention: every request is decided in the transaction that records
it, and no host is ever over-committed — on SQLite, on PostgreSQL, and on two replicas
sharing one PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_support import GiB, app_persona, burst, host, ledger, user
from server_harness import ServerProcess

from mien.client import Client
from mien.client import broker as ops


def _admits_exactly_ten(urls: list[str], admin: Client, server: ServerProcess) -> None:
    admin.create_persona(app_persona("report", cpu=1))
    a = host(admin, server, "sbx-a")
    b = host(admin, server, "sbx-b")
    a.offer(cpu=6)
    b.offer(cpu=4)
    alice = admin.create_token("alice", role="user").token

    async def all_at_once() -> list[list[dict]]:  # type: ignore[type-arg]
        return await asyncio.gather(*(burst(u, alice, "report", 50 // len(urls)) for u in urls))

    answers = [x for part in asyncio.run(all_at_once()) for x in part]
    states = Counter(x["state"] for x in answers)
    assert states == {"provisioning": 10, "queued": 40}, states
    per_host = Counter(x["host"] for x in answers if x["state"] == "provisioning")
    assert per_host == {"sbx-a": 6, "sbx-b": 4}
    books = ledger(admin)
    assert books["sbx-a"]["used_cpu"] == 6 and books["sbx-b"]["used_cpu"] == 4
    # Releasing one admits exactly one from the queue (the oldest of equal priority).
    with Client(server.url, alice) as me:
        first = next(x for x in answers if x["state"] == "provisioning")
        assert me.send(ops.release_lease(first["id"])).state == "released"
        leases = me.send(ops.list_leases()).items
    assert Counter(x.state for x in leases) == {"provisioning": 10, "queued": 39}
    a.client.close()
    b.client.close()


def test_fifty_requests_against_room_for_ten(server: ServerProcess, admin: Client) -> None:
    _admits_exactly_ten([server.url], admin, server)


@pytest.fixture
def replicas(tmp_path: Path, postgres) -> Iterator[tuple[ServerProcess, ServerProcess]]:  # type: ignore[no-untyped-def]
    url = postgres.new_database()
    first = ServerProcess(tmp_path / "a", url).start()
    second = ServerProcess(tmp_path / "b", url).start()
    yield first, second
    assert second.stop() == 0, second.log()
    assert first.stop() == 0, first.log()
    for proc in (first, second):
        assert "Traceback" not in proc.log(), proc.log()


@pytest.mark.postgres
def test_fifty_requests_on_two_replicas(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    first, second = replicas
    with first.client() as admin:
        _admits_exactly_ten([first.url, second.url], admin, first)


def test_too_big_is_refused_at_once_naming_the_resource(
    server: ServerProcess, admin: Client
) -> None:
    admin.create_persona(app_persona("huge", cpu=2, memory="512GiB"))
    admin.create_persona(app_persona("many-cores", cpu=64))
    h = host(admin, server, "sbx")
    h.offer(cpu=8, memory=16 * GiB)
    with user(admin, server, "bob") as bob:
        lease = bob.send(ops.request_lease("huge"))
        assert lease.state == "insufficient_resources"
        assert lease.reason and lease.reason.startswith("memory:") and "16GiB" in lease.reason
        lease = bob.send(ops.request_lease("many-cores"))
        assert lease.state == "insufficient_resources"
        assert lease.reason and lease.reason.startswith("cpu:"), lease.reason
    assert ledger(admin)["sbx"]["used_cpu"] == 0
    h.client.close()


def test_queue_serves_priority_then_age(server: ServerProcess, admin: Client) -> None:
    admin.create_persona(app_persona("job", cpu=2))
    h = host(admin, server, "sbx")
    h.offer(cpu=2)
    with user(admin, server, "dana") as dana:
        holder = dana.send(ops.request_lease("job"))
        assert holder.state == "provisioning"
        low = dana.send(ops.request_lease("job", priority=1))
        high_old = dana.send(ops.request_lease("job", priority=5))
        high_new = dana.send(ops.request_lease("job", priority=5))
        assert {low.state, high_old.state, high_new.state} == {"queued"}
        order = []
        current = holder
        for _ in range(3):
            dana.send(ops.release_lease(current.id))
            live = [x for x in dana.send(ops.list_leases()).items if x.state == "provisioning"]
            assert len(live) == 1
            current = live[0]
            order.append(current.id)
    assert order == [high_old.id, high_new.id, low.id]
    h.client.close()


def test_higher_priority_preempts_only_preemptible_leases(
    server: ServerProcess, admin: Client
) -> None:
    admin.create_persona(app_persona("batch", cpu=2, requirements={"preemptible": True}))
    admin.create_persona(app_persona("steady", cpu=2))
    admin.create_persona(app_persona("urgent", cpu=2, requirements={"priority": 100}))
    h = host(admin, server, "sbx")
    h.offer(cpu=4)
    with user(admin, server, "erin") as erin, user(admin, server, "finn") as finn:
        batch = erin.send(ops.request_lease("batch"))
        steady = erin.send(ops.request_lease("steady"))
        assert batch.state == steady.state == "provisioning"
        urgent = finn.send(ops.request_lease("urgent"))
        assert urgent.state == "provisioning", urgent
        ended = erin.send(ops.get_lease(batch.id))
        assert ended.state == "preempted"
        assert ended.reason and f"by lease {urgent.id} of finn" in ended.reason
        assert "priority 100 > 0" in ended.reason
        assert erin.send(ops.get_lease(steady.id)).state == "provisioning"
        # Nothing preemptible is left: the next urgent request waits.
        assert finn.send(ops.request_lease("urgent")).state == "queued"
    assert ledger(admin)["sbx"]["used_cpu"] == 4
    h.client.close()
