"""Exactly one replica evaluates fleet rules, and a dead one hands over within seconds.

Two replicas on one throwaway PostgreSQL: the lease names one leader; a rule fires on it
(a binding is made); the leader's process is killed (SIGKILL: no goodbye, the lease just
stops being renewed); the other replica takes over within seconds and, from the rule's
state in the database, resolves it (the binding goes) without firing it again: every
action is in the audit log exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_harness import ServerProcess, wait_until
from test_orchestrator import FAST, PERSONA, RULE, Agent, api, audit, bindings

from mien.client import AgentClient

pytestmark = pytest.mark.postgres


@pytest.fixture
def replicas(tmp_path: Path, postgres: Any) -> Iterator[list[ServerProcess]]:
    url = postgres.new_database()
    procs = [ServerProcess(tmp_path / "a", url, env=FAST).start()]
    procs.append(ServerProcess(tmp_path / "b", url, env=FAST).start())
    yield procs
    for proc in procs:
        proc.stop()
        assert "Traceback" not in proc.log(), proc.log()


def status(server: ServerProcess) -> dict[str, Any]:
    return dict(api(server, "GET", "/orchestrator").json())


def test_the_leader_dies_and_the_other_carries_on(replicas: list[ServerProcess]) -> None:
    a, b = replicas
    b.data_dir.joinpath("admin.token").write_text(a.admin_token)  # one database, one admin
    leader_id = wait_until(lambda: status(a)["leader"], what="a leader")
    assert status(b)["leader"] == leader_id  # both see the same one
    ids = {status(p)["replica"]: p for p in (a, b)}
    leader, other = ids[leader_id], next(p for p in (a, b) if p is not ids[leader_id])

    with a.client() as admin:
        admin.create_persona(PERSONA)
        agents = {}
        for name in ("web-1", "web-2"):
            secret = admin.create_token(f"e-{name}", kind="enroll").token
            with AgentClient(other.url) as agent:
                token = agent.enroll(secret, instance_id=name, tags={"role": "web"}).token
            agents[name] = Agent(other, token)
    r = api(a, "POST", "/fleet-rules", content=RULE)
    assert r.status_code == 201, r.text
    agents["web-1"].send(80.0)
    agents["web-2"].send(90.0)
    wait_until(lambda: "fleet-web-hot" in bindings(other), what="the binding")

    leader.kill()
    killed = time.monotonic()
    took = wait_until(
        lambda: status(other)["leader"] == status(other)["replica"] and time.monotonic() - killed,
        timeout=15,
        what="the other replica to take over",
    )
    assert took < 8.0, f"hand-over took {took:.1f}s"
    time.sleep(1.0)  # a few evaluations by the new leader while the rule still holds
    assert api(other, "GET", "/fleet-rules/web-hot").json()["phase"] == "firing"

    agents["web-1"].send(10.0)
    agents["web-2"].send(20.0)
    wait_until(lambda: "fleet-web-hot" not in bindings(other), what="the new leader to unbind")
    actor = "fleet-rule:web-hot"
    assert len([x for x in audit(other, "binding.create") if x["actor"] == actor]) == 1
    assert len([x for x in audit(other, "binding.delete") if x["actor"] == actor]) == 1
    assert len(audit(other, "fleet_rule.firing")) == 1
    assert len(audit(other, "fleet_rule.resolved")) == 1
    # The journal: the one bind and its one undo, whichever replica did which.
    keys = sorted(x["key"] for x in api(other, "GET", "/fleet-rules/web-hot").json()["actions"])
    assert len(keys) == 2 and keys[1] == keys[0] + "/undo"
