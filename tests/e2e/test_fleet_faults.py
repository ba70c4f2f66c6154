"""The fleet against faults and mistakes, with a real ``mien server`` and real ``mien agent
run`` processes: a cleared activation shows the fallback as applied at once; a server
killed and restarted gets every agent back within seconds, and a report that was in
flight when it died still arrives."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mien.client import Client
from tests.e2e.test_fleet import AgentProcess, ServerProcess, enroll, until
from tests.support import make_machine

BROKEN = (
    "name: broken\nenvironment_variables: {X: '1'}\n"
    "post_activation_script: |\n  #!/bin/sh\n  echo health check failed >&2\n  exit 3\n"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()
    yield proc
    proc.stop()


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.admin_token) as api:
        yield api


def test_clearing_a_failed_activation_shows_the_applied_fallback_at_once(
    tmp_path: Path, server: ServerProcess, admin: Client
) -> None:
    root = make_machine(tmp_path / "m")
    instance = enroll(server, admin, root)
    admin.create_persona({"name": "fallback", "environment_variables": {"ROLE": "base"}})
    admin.set_default_persona("fallback")
    admin.create_persona(BROKEN)
    agent = AgentProcess(root, tmp_path / "agent.log")
    try:
        until(lambda: admin.active_persona(instance).in_sync, what="the default applied")
        failed = admin.wait_activation(admin.activate(instance, "broken").id, timeout=60)
        assert failed.status == "failed"
        assert admin.active_persona(instance).applied.state == "failed"

        admin.clear_activation(instance)

        def fallback_shown() -> bool:
            active = admin.active_persona(instance)
            return bool(active.in_sync and active.applied.state == "applied")

        until(fallback_shown, timeout=15, what="the fallback shown as applied")
        active = admin.active_persona(instance)
        assert active.desired.source == "default" and active.applied.persona == "fallback"
        assert active.applied.error is None
    finally:
        assert agent.stop() == 0, agent.log()


def test_after_a_server_restart_every_agent_is_back_within_seconds(
    tmp_path: Path, server: ServerProcess, admin: Client
) -> None:
    roots = [make_machine(tmp_path / f"m{i}") for i in range(4)]
    instances = [enroll(server, admin, root) for root in roots]
    agents = [AgentProcess(root, tmp_path / f"agent{i}.log") for i, root in enumerate(roots)]
    try:
        until(
            lambda: all(admin.get_instance(i).connected for i in instances),
            what="every agent connected",
        )
        server.kill()  # a crash: no goodbye to the parked long-polls
        time.sleep(15)  # long enough for an unbounded backoff to grow past a minute's worth
        server.start()
        back_at = datetime.now(UTC)
        t0 = time.monotonic()
        with Client(server.url, server.admin_token) as fresh:

            def all_back() -> bool:
                seen = [fresh.get_instance(i).last_seen for i in instances]
                return all(s is not None and s >= back_at for s in seen)

            until(all_back, timeout=60, what="every agent back")
        took = time.monotonic() - t0
        # The reconnect delay is capped at 4 s (jittered); allow for a loaded machine.
        logs = "\n".join(a.log()[-600:] for a in agents)
        assert took <= 7.0, f"the fleet took {took:.1f}s to come back:\n{logs}"
    finally:
        for agent in agents:
            assert agent.stop() == 0, agent.log()


def test_an_applied_report_in_flight_when_the_server_dies_still_arrives(
    tmp_path: Path, server: ServerProcess, admin: Client
) -> None:
    root = make_machine(tmp_path / "m")
    instance = enroll(server, admin, root)
    admin.create_persona(
        "name: slow\nenvironment_variables: {X: '1'}\n"
        "post_activation_script: |\n  #!/bin/sh\n  sleep 5\n"
    )
    agent = AgentProcess(root, tmp_path / "agent.log")
    try:
        until(lambda: admin.get_instance(instance).connected, what="the agent connected")
        activation = admin.activate(instance, "slow")
        until(
            lambda: admin.get_activation(activation.id).status == "applying",
            what="the agent applying",
        )
        server.kill()  # while the agent applies: its "applied" report finds no server
        until(lambda: "not delivered" in agent.log(), what="the report failing", timeout=40)
        time.sleep(16)  # longer than any retrying of one report in place
        server.start()
        with Client(server.url, server.admin_token) as fresh:
            done = fresh.wait_activation(activation.id, timeout=20)
            assert done.status == "applied", agent.log()
            assert fresh.active_persona(instance).in_sync
            applied = [
                r for r in fresh.audit(action="instance.applied") if r.instance_id == instance
            ]
            assert len(applied) == 1, applied  # at least once, recorded once
    finally:
        assert agent.stop() == 0, agent.log()
