"""Several replicas on one PostgreSQL, restarts and graceful shutdown.

* an activation through one replica wakes a long-poll parked on another in under a second;
* a restart loses no pending activation (SQLite and PostgreSQL);
* SIGTERM answers every parked long-poll at once and the server exits 0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_harness import ServerProcess, wait_until

from mien.client import AgentClient, Client, Unauthorized, Unavailable, agent_ops
from mien.client._http import AsyncSession

WEB = {"name": "web", "environment_variables": {"ROLE": "web"}}


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


def enroll(
    server: ServerProcess, admin: Client, iid: str, tags: dict[str, str] | None = None
) -> str:
    token = admin.create_token(f"e-{iid}", kind="enroll").token
    with AgentClient(server.url) as api:
        return api.enroll(token, instance_id=iid, tags=tags).token


async def parked_poll(server: ServerProcess, token: str, change) -> float:  # type: ignore[no-untyped-def]
    """Park a long-poll on ``server``, run ``change``; seconds until the poll answers."""
    async with AsyncSession(server.url, token) as api:
        first = await api.send(agent_ops.desired(None, wait=0))
        assert first is not None
        poll = asyncio.ensure_future(api.send(agent_ops.desired(first.state, wait=30)))
        with Client(server.url) as observer:
            await asyncio.to_thread(wait_until, lambda: observer.health().waiting_agents == 1)
        started = time.monotonic()
        await asyncio.to_thread(change)
        answer = await poll
        assert answer is not None and answer.state != first.state
        return time.monotonic() - started


@pytest.mark.postgres
def test_activation_on_one_replica_wakes_a_long_poll_on_the_other(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = replicas
    with a.client() as admin_a:
        admin_a.create_persona(WEB)
        token = enroll(a, admin_a, "vm-1", {"role": "web"})
        latency = asyncio.run(parked_poll(b, token, lambda: admin_a.activate("vm-1", "web")))
        assert latency < 1.0, f"cross-replica wake-up took {latency:.3f}s"
        # A binding (a fleet-wide change) fans out across replicas too.
        admin_a.clear_activation("vm-1")
        admin_a.create_persona({"name": "web2"})
        latency = asyncio.run(
            parked_poll(b, token, lambda: admin_a.create_binding("w", {"role": "web"}, "web2"))
        )
        assert latency < 1.0, f"cross-replica binding wake-up took {latency:.3f}s"
        # Revoking on one replica is refused at once on the other (its token cache is told).
        with AgentClient(b.url, token) as agent:
            assert agent.desired(None, wait=0) is not None
            admin_a.delete_instance("vm-1")
            wait_until(lambda: _refused(agent), timeout=5, what="revocation on replica b")


def _refused(agent: AgentClient) -> bool:
    try:
        agent.desired(None, wait=0)
    except Unauthorized:
        return True
    return False


def test_restart_loses_no_pending_activation(tmp_path: Path, db_url: str | None) -> None:
    server = ServerProcess(tmp_path / "data", db_url).start()
    with server.client() as admin:
        admin.create_persona(WEB)
        token = enroll(server, admin, "vm-r")
        activation = admin.activate("vm-r", "web")
    assert server.stop() == 0
    server = ServerProcess(tmp_path / "data", db_url).start()
    try:
        with server.client() as admin, AgentClient(server.url, token) as agent:
            assert admin.get_activation(activation.id).status == "pending"
            desired = agent.desired(None, wait=0)
            assert desired is not None and desired.activation_id == activation.id
            agent.report("applied", activation_id=activation.id, hash=desired.hash, persona="web")
            assert admin.get_activation(activation.id).status == "applied"
            # The audit chain survived the restart intact.
            assert admin.audit_verify().ok
    finally:
        assert server.stop() == 0


def test_sigterm_answers_parked_long_polls_and_exits_0(tmp_path: Path, db_url: str | None) -> None:
    server = ServerProcess(tmp_path / "data", db_url).start()
    with server.client() as admin:
        tokens = [enroll(server, admin, f"vm-{i}") for i in range(20)]

    async def scenario() -> list[object]:
        clients = [AsyncSession(server.url, t) for t in tokens]
        try:
            firsts = await asyncio.gather(
                *(c.send(agent_ops.desired(None, wait=0)) for c in clients)
            )
            polls = [
                asyncio.ensure_future(c.send(agent_ops.desired(f.state, wait=60)))  # type: ignore[union-attr]
                for c, f in zip(clients, firsts, strict=True)
            ]
            with server.client() as observer:
                await asyncio.to_thread(wait_until, lambda: observer.health().waiting_agents == 20)
            started = time.monotonic()
            status = await asyncio.to_thread(server.stop, 20)
            assert status == 0, server.log()
            assert time.monotonic() - started < 10
            return list(await asyncio.gather(*polls, return_exceptions=True))
        finally:
            for c in clients:
                await c.aclose()

    results = asyncio.run(scenario())
    assert all(isinstance(r, Unavailable) and r.retryable for r in results), results


@pytest.mark.postgres
def test_a_replica_that_loses_its_listen_connection_catches_up(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = replicas
    with a.client() as admin:
        admin.create_persona(WEB)
        token = enroll(a, admin, "vm-l")

        def cut_and_activate() -> None:
            url = a.db_url.replace("postgresql+asyncpg://", "postgresql://")  # type: ignore[union-attr]
            asyncio.run(_terminate_listeners(url))
            admin.activate("vm-l", "web")

        # The change is made while replica b cannot hear about it: b reconnects, reloads
        # everything, and still wakes the agent parked on it.
        latency = asyncio.run(parked_poll(b, token, cut_and_activate))
        assert latency < 5.0


async def _terminate_listeners(url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url)
    try:
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
        assert len(killed) == 2, killed
    finally:
        await conn.close()
