"""Remote commands through the instance's routing table: output, refusal (126), overrides,
waiting for an agent that is not connected, output caps."""

from __future__ import annotations

import pytest
from server_harness import AgentFleet, ServerProcess, SimAgent, wait_until

from mien.client import AgentClient, Client, Conflict, NotFound

PERSONA = {
    "name": "locked-down",
    "restricted_commands": ["shutdown", "mkfs*"],
    "command_overrides": {"greet": '#!/bin/sh\necho "hello from the override: $*"\n'},
}


def start_agent(server: ServerProcess, admin: Client, fleet: AgentFleet, iid: str) -> SimAgent:
    token = admin.create_token(f"e-{iid}", kind="enroll").token
    agent = SimAgent(server.url)
    fleet.call(agent.enroll(token, {"role": "locked"}, instance_id=iid))
    return fleet.start(agent)


def test_commands_run_through_the_routing_table(
    server: ServerProcess, admin: Client, fleet: AgentFleet
) -> None:
    admin.create_persona(PERSONA)
    admin.create_binding("lock", {"role": "locked"}, "locked-down")
    agent = start_agent(server, admin, fleet, "vm-cmd")
    wait_until(lambda: admin.active_persona("vm-cmd").in_sync, what="persona applied")

    done = admin.run_command("vm-cmd", "echo", ["hello", "world"], wait=30)
    assert done.status == "done" and done.exit_status == 0 and done.stdout == "hello world\n"
    assert not done.refused and done.created_by == "admin"

    refused = admin.run_command("vm-cmd", "mkfs.ext4", ["/dev/sda"], wait=30)
    assert refused.status == "done" and refused.exit_status == 126 and refused.refused
    assert "restricted" in refused.stderr

    override = admin.run_command("vm-cmd", "greet", ["you"], wait=30)
    assert override.exit_status == 0 and override.stdout == "hello from the override: you\n"

    failing = admin.run_command("vm-cmd", "sh", ["-c", "echo oops >&2; exit 3"], wait=30)
    assert failing.exit_status == 3 and failing.stderr == "oops\n"

    listed = admin.list_commands("vm-cmd")
    assert [c.command for c in listed][:4] == ["sh", "greet", "mkfs.ext4", "echo"]
    actions = [r.action for r in admin.audit(instance="vm-cmd", action="command.")]
    assert actions.count("command.create") == 4 and actions.count("command.result") == 4
    assert agent.commands_run == ["echo", "mkfs.ext4", "greet", "sh"]


def test_command_waits_for_an_absent_agent_then_completes(
    server: ServerProcess, admin: Client
) -> None:
    admin.create_persona(PERSONA)
    token = admin.create_token("e", kind="enroll").token
    with AgentClient(server.url) as api:
        enrolled = api.enroll(token, instance_id="vm-late")
    queued = admin.run_command("vm-late", "uname", wait=0)
    assert queued.status == "pending"
    with AgentClient(server.url, enrolled.token) as agent:
        desired = agent.desired(None, wait=5)
        assert desired is not None and [c.id for c in desired.commands] == [queued.id]
        # Delivered at most once: the next poll does not hand it out again.
        assert agent.desired(desired.state, wait=0) is None
        assert admin.get_command("vm-late", queued.id).status == "sent"
        big = "x" * 200_000
        agent.command_result(queued.id, 0, stdout=big, stderr="é" * 50_000)
        with pytest.raises(Conflict, match="not awaiting"):
            agent.command_result(queued.id, 0)
    finished = admin.get_command("vm-late", queued.id, wait=5)
    assert (
        finished.status == "done"
        and finished.stdout_truncated
        and len(finished.stdout) == 64 * 1024
    )
    assert finished.stderr_truncated and len(finished.stderr.encode()) <= 64 * 1024
    with pytest.raises(NotFound):
        admin.get_command("other", queued.id)


def test_result_of_another_instances_command_is_refused(
    server: ServerProcess, admin: Client
) -> None:
    tokens = {}
    for iid in ("vm-a", "vm-b"):
        enroll = admin.create_token(f"e-{iid}", kind="enroll").token
        with AgentClient(server.url) as api:
            tokens[iid] = api.enroll(enroll, instance_id=iid).token
    queued = admin.run_command("vm-a", "true", wait=0)
    with AgentClient(server.url, tokens["vm-b"]) as intruder, pytest.raises(NotFound):
        intruder.command_result(queued.id, 0, stdout="forged")
