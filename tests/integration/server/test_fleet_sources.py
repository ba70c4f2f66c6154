"""Fleet-wide data sources against real ``mien server`` processes (one on SQLite, two
replicas on PostgreSQL) and a real origin on loopback counting what it is asked: three
agents whose personas (two different ones) name one ``fleet: true`` source cost the origin
one fetch per interval, not one per agent; an unchanged feed is a 304 at the origin and at
the agents; with the origin down the server backs off and the agents keep the last good
copy (and its true age); an agent cannot read a source its persona does not name.

The agents are the agent's own :class:`~mien.agent.adapt.sources.DataSources` (what the
adaptation loop polls with), asking the server through :class:`mien.client.AgentClient`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from server_harness import ServerProcess, wait_until

from mien.agent.adapt.sources import DataSources
from mien.client import AgentClient, Client, NotFound
from mien.protocol.sources import FETCHED_AT, source_key
from mien.server.store import fleet_sources as q
from mien.server.store.db import Database
from mien.spec.models import Persona
from tests.feed_origin import Feed, serve_feed

EVERY = 10.0  # the shortest a persona may ask for

GUARDED = """\
name: guarded
external_data_sources:
  - name: blocklist
    url: {url}
    every: 10s
    fleet: true
"""
# Another persona naming the same source (another name, another timeout).
ALSO = """\
name: also-guarded
external_data_sources:
  - name: bad_hosts
    url: {url}
    every: 10s
    timeout: 5s
    fleet: true
"""
PLAIN = "name: plain\nenvironment_variables: {MIEN_MODE: plain}\n"


class Recording(httpx.BaseTransport):
    """The agent's real HTTP transport, noting the status of every answer it gets."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.statuses.append(response.status_code)
        return response

    def close(self) -> None:
        self.inner.close()


@dataclass
class FleetAgent:
    name: str
    token: str
    sources: DataSources
    seen: Recording
    api: AgentClient

    def step(self) -> None:
        now = time.time()
        for name in self.sources.due(now):
            self.sources.poll(name, now)

    def copy(self) -> Any:
        return next(iter(self.sources.current().values()))


@pytest.fixture
def origin() -> Iterator[Feed]:
    with serve_feed() as feed:
        yield feed


@pytest.fixture
def replicas(tmp_path: Path, db_url: str | None) -> Iterator[list[ServerProcess]]:
    env = {"MIEN_SERVER_SOURCES_INTERVAL": "0.2"}
    started = [ServerProcess(tmp_path / "a", db_url, env=env).start()]
    if db_url is not None:  # PostgreSQL: a second replica polls with the first
        started.append(ServerProcess(tmp_path / "b", db_url, env=env).start())
    yield started
    for server in reversed(started):
        assert server.stop() == 0, server.log()
        assert "Traceback" not in server.log(), server.log()


def enroll(admin: Client, server: ServerProcess, name: str) -> str:
    secret = admin.create_token(f"enroll-{name}", kind="enroll", uses=1).token
    with AgentClient(server.url) as api:
        return api.enroll(secret, instance_id=name).token


def row(server: ServerProcess, key: str) -> q.SourceRow | None:
    url = server.db_url or f"sqlite+aiosqlite:///{server.data_dir / 'mien.db'}"

    async def read() -> q.SourceRow | None:
        db = Database(url)
        try:
            async with db.read() as session:
                return await q.get(session, key)
        finally:
            await db.dispose()

    return asyncio.run(read())


def drive(agents: list[FleetAgent], until: Any, timeout: float, what: str) -> None:
    """Let the agents poll as their loops would until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        for agent in agents:
            agent.step()
        time.sleep(0.1)


def test_one_fetch_per_interval_for_the_whole_fleet(
    replicas: list[ServerProcess], origin: Feed, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{origin.port}/feed"
    key = source_key(url, "lines")
    first = replicas[0]
    documents = {"guarded": GUARDED.format(url=url), "also-guarded": ALSO.format(url=url)}
    origin.mode = "slow"  # the server's first fetch takes 2 s
    with first.client() as admin:
        for text in [*documents.values(), PLAIN]:
            admin.create_persona(text)
        agents = []
        for i, persona in enumerate(["guarded", "guarded", "also-guarded"]):
            server = replicas[i % len(replicas)]
            token = enroll(admin, server, f"vm-{i}")
            admin.activate(f"vm-{i}", persona)
            seen = Recording()
            api = AgentClient(server.url, token, transport=seen)
            model = Persona.model_validate(yaml.safe_load(documents[persona]))
            ds = DataSources(model, tmp_path / f"vm-{i}", fleet=api)
            agents.append(FleetAgent(f"vm-{i}", token, ds, seen, api))
        outsider = enroll(admin, first, "vm-plain")
        admin.activate("vm-plain", "plain")

    # The server fetches the source once, whatever personas and replicas name it.
    def ready() -> bool:
        found = row(first, key)
        return found is not None and found.fetched_at is not None

    # Asked before the server has a copy: 503, and the agent comes back when it says.
    early = agents[0]
    early.step()
    assert early.seen.statuses == [503]
    copy = early.copy()
    assert "no good copy" in (copy.last_error or "") and copy.value is None
    assert copy.next_at - time.time() <= 5.0  # Retry-After, not twice the interval
    origin.mode = "ok"
    wait_until(ready, timeout=20, what="the server's first fetch")
    initial = row(first, key)
    assert initial is not None
    drive(agents, lambda: all(a.copy().fetched_at for a in agents), 8, "every agent's copy")
    for agent in agents:
        copy = agent.copy()
        assert copy.value == ["10.0.0.1", "10.0.0.2"] and copy.via == "server"
        assert agent.seen.statuses == ([503] if agent is early else []) + [200], agent.name
    assert len(origin.requests) == 1, origin.requests

    # One interval later: the unchanged feed is a 304 at the origin, and at every agent.
    drive(
        agents,
        lambda: len(origin.requests) >= 2 and all(304 in a.seen.statuses for a in agents),
        EVERY * 1.1 + 5,
        "the server's and each agent's conditional request",
    )
    wait_until(
        lambda: (found := row(first, key)) is not None and found.fetched_at != initial.fetched_at,
        timeout=10,
        what="the server's record of the 304",
    )
    assert len(origin.requests) == 2, origin.requests
    assert origin.requests[1]["if-none-match"] == '"v1"' and origin.answers == [200, 304]
    confirmed = row(first, key)
    assert confirmed is not None and confirmed.failures == 0
    for agent in agents:
        copy = agent.copy()
        assert copy.value == ["10.0.0.1", "10.0.0.2"] and copy.last_error is None
        # The age the rules see is the server's: when it last confirmed the copy.
        assert copy.fetched_at in (initial.fetched_at, confirmed.fetched_at)

    # The origin goes down: the server backs off, the agents keep the last good copy.
    origin.stop()

    def failed() -> bool:
        found = row(first, key)
        return found is not None and found.failures >= 1

    drive(agents, failed, EVERY * 1.1 + 5, "the server's failed fetch")
    down = row(first, key)
    assert down is not None and down.checked_at is not None
    assert "ConnectError" in (down.last_error or "")
    assert down.next_at - down.checked_at >= 2 * EVERY * 0.9  # backed off: twice the interval
    assert down.fetched_at == confirmed.fetched_at and down.value == ["10.0.0.1", "10.0.0.2"]
    for agent in agents:  # each agent's next poll, a little early
        name = next(iter(agent.sources.current()))
        copy = agent.sources.poll(name, time.time())
        assert copy.value == ["10.0.0.1", "10.0.0.2"] and copy.last_error is None
        assert copy.fetched_at == confirmed.fetched_at and copy.failures == 0
        assert agent.seen.statuses.count(200) == 1 and agent.seen.statuses[-1] == 304
    assert len(origin.requests) == 2  # nobody went round the server

    # An agent whose persona does not name the source cannot read it; nor can another
    # role, nor an unknown key.
    with AgentClient(first.url, outsider) as api:
        with pytest.raises(NotFound, match="names no"):
            api.source(key)
        # Its loop, told of the source anyway (a persona switched to locally), gets nothing.
        model = Persona.model_validate(yaml.safe_load(documents["guarded"]))
        ds = DataSources(model, tmp_path / "vm-plain", fleet=api)
        copy = ds.poll("blocklist", time.time())
        assert copy.value is None and "names no fleet-wide source" in (copy.last_error or "")
    with AgentClient(first.url, agents[0].token) as api:
        with pytest.raises(NotFound):
            api.source("0" * 32)
        answer, etag, fetched_at = api.source(key)
        assert answer is not None and answer.value == ["10.0.0.1", "10.0.0.2"]
        assert "ConnectError" in (answer.error or "") and fetched_at == confirmed.fetched_at
        assert api.source(key, etag)[0] is None
    r = httpx.get(
        f"{first.url}/api/v1/agent/sources/{key}",
        headers={"Authorization": f"Bearer {first.admin_token}"},
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = httpx.get(
        f"{first.url}/api/v1/agent/sources/not-a-key",
        headers={"Authorization": f"Bearer {outsider}"},
    )
    assert r.status_code == 422
    r = httpx.get(
        f"{first.url}/api/v1/agent/sources/{key}",
        headers={"Authorization": f"Bearer {agents[1].token}", "If-None-Match": etag or ""},
    )
    assert r.status_code == 304 and r.headers[FETCHED_AT] and r.content == b""
    for agent in agents:
        agent.api.close()
