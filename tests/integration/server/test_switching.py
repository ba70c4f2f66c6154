"""A person switches persona on a fleet machine through the agent's socket: the agent asks
the server on their behalf (``POST /instances/{id}/activations`` with its own token), the
server records the activation "requested by alice on vm-3" and keeps it (no revert to the
fleet default), and refuses a persona whose access_controls do not list the person.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_harness import ServerProcess

from mien.client import Client
from mien.client import broker as ops
from tests.support import mien_command, run_mien
from tests.switching_support import (
    People,
    host_people,
    reachable_root,
    request,
    wait_for_socket,
    write_personas,
)


@pytest.fixture(scope="module")
def people() -> Iterator[People]:
    with host_people() as made:
        yield made


@pytest.fixture
def fleet_machine(
    tmp_path: Path, people: People, db_url: str | None
) -> Iterator[tuple[ServerProcess, Client, Path, str]]:
    server = ServerProcess(tmp_path / "server", db_url).start()
    root = reachable_root(people)
    agent: subprocess.Popen[bytes] | None = None
    log = tmp_path / "agent.log"
    try:
        with Client(server.url, server.admin_token) as admin:
            for path in sorted(write_personas(root, people).iterdir()):
                admin.create_persona(path)
            admin.set_default_persona("ops")
            token = admin.create_token("enroll-vm3", kind="enroll", uses=1).token
            enrolled = run_mien(
                "agent",
                "enroll",
                "--server",
                server.url,
                "--token",
                token,
                "--root",
                root,
                "--user",
                people.alice.name,
                "--hostname",
                "vm-3",
                "--instance-id",
                "vm-3",
            )
            assert enrolled.returncode == 0, enrolled.stderr
            with log.open("ab") as fh:
                agent = subprocess.Popen(
                    [*mien_command(), "agent", "run", "--root", str(root), "--wait", "2"],
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                )
            wait_for_socket(root / "run/mien/agent.sock", agent)
            yield server, admin, root, "vm-3"
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(30) == 0, log.read_text()
            assert "Traceback" not in log.read_text(), log.read_text()
        assert server.stop() == 0, server.log()
        shutil.rmtree(root)


def until(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_switch_through_the_socket_is_recorded_and_kept(
    fleet_machine: tuple[ServerProcess, Client, Path, str], people: People
) -> None:
    _server, admin, root, vm = fleet_machine
    until(lambda: admin.active_persona(vm).applied.persona == "ops")

    # On a fleet machine group:NAME is a server group: alice's Unix group of that name
    # does not count until the server's group holds her.
    status, offered = request(root, people.alice, "GET", "/v1/personas")
    assert status == 200 and [p["name"] for p in offered] == ["dev"], offered
    admin.send(ops.add_members(people.group, [people.alice.name]))
    status, offered = request(root, people.alice, "GET", "/v1/personas")
    assert status == 200 and [p["name"] for p in offered] == ["analyst", "dev"], offered
    status, plan = request(root, people.alice, "POST", "/v1/preview", {"persona": "dev"})
    assert status == 200 and plan["active"] == "ops" and plan["changes"] > 0, plan

    status, done = request(root, people.alice, "POST", "/v1/switch", {"persona": "dev", "wait": 30})
    assert status == 200 and done["ok"], done
    activation = admin.get_activation(done["activation_id"])
    assert activation.created_by == f"{people.alice.name} on vm-3"
    until(lambda: admin.get_activation(done["activation_id"]).status == "applied")

    time.sleep(5)  # a couple of long-polls (wait 2s): the server's default must not return
    active = admin.active_persona(vm)
    assert active.desired.persona == "dev" and active.desired.source == "activation"
    assert active.applied.persona == "dev" and active.in_sync
    state = json.loads(run_mien("status", "--root", root, "--output", "json").stdout)
    assert state["active"] == "dev"

    records = [r for r in admin.audit(instance=vm) if r.action == "activation.create"]
    assert records[0].actor == f"{people.alice.name} on vm-3"
    assert records[0].detail["requested_by"] == people.alice.name


def test_the_server_refuses_a_person_the_persona_does_not_list(
    fleet_machine: tuple[ServerProcess, Client, Path, str], people: People
) -> None:
    server, admin, root, vm = fleet_machine
    until(lambda: admin.active_persona(vm).applied.persona == "ops")
    status, offered = request(root, people.bob, "GET", "/v1/personas")
    assert status == 200 and offered == []
    status, answer = request(root, people.bob, "POST", "/v1/switch", {"persona": "dev"})
    assert status == 403 and "access_controls.users" in answer["detail"], answer
    assert admin.active_persona(vm).desired.source == "default"

    # The agent's token asks the server directly, as a compromised agent might: the server
    # applies the same rule and says why.
    creds = json.loads((root / "var/lib/mien/agent.json").read_text())
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {creds['token']}"}
    ) as api:
        body = {"persona": "dev", "requested_by": {"user": people.bob.name, "groups": []}}
        refused = api.post(f"/api/v1/instances/{vm}/activations", json=body)
        assert refused.status_code == 403 and "access_controls.users" in refused.json()["detail"]
        other = api.post("/api/v1/instances/vm-9/activations", json=body)
        assert other.status_code == 403 and "switch only that instance" in other.text
        listed = api.get(f"/api/v1/instances/{vm}/switchable", params={"user": people.bob.name})
        assert listed.status_code == 200
        assert {i["name"]: i["allowed"] for i in listed.json()["items"]} == {
            "analyst": False,
            "dev": False,
            "ops": False,
        }

        # The Unix groups an agent reports do not count on the server; its groups do.
        def grouped() -> set[str]:
            answer = api.get(
                f"/api/v1/instances/{vm}/switchable",
                params=[("user", "someone"), ("group", people.group)],
            )
            return {i["name"] for i in answer.json()["items"] if i["allowed"]}

        assert grouped() == set()
        admin.send(ops.add_members(people.group, ["someone"]))
        assert grouped() == {"analyst"}
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.admin_token}"}
    ) as api:
        body = {"persona": "dev", "requested_by": {"user": people.alice.name, "groups": []}}
        answer = api.post(f"/api/v1/instances/{vm}/activations", json=body)
        assert answer.status_code == 403  # operators use …/personas/{name}/activate
    # The agent refused bob's socket request itself (the server's list said no); only the
    # direct request reached the server, which audited it.
    refusals = [r for r in admin.audit(instance=vm) if r.action == "activation.refused"]
    assert [r.detail["requested_by"] for r in refusals] == [people.bob.name]
    local = [
        json.loads(line) for line in (root / "var/log/mien/audit.jsonl").read_text().splitlines()
    ]
    assert any(
        r["event"] == "local_api.refused" and r["actor"] == f"local:{people.bob.name}"
        for r in local
    )
