"""One meaning of ``group:NAME`` on the server: a group the server keeps (``mien group
add``). A person in it may both switch a fleet machine to the persona (the agent asks on
their behalf) and ask for a lease of it; a person not in it may do neither, whatever Unix
groups the agent says they have."""

from __future__ import annotations

import httpx
import pytest
from broker_support import app_persona, user
from server_harness import ServerProcess

from mien.client import AgentClient, Client
from mien.client import broker as ops
from mien.client.errors import Forbidden


def test_a_server_group_admits_to_a_switch_and_a_lease_alike(
    server: ServerProcess, admin: Client
) -> None:
    admin.create_persona(app_persona("lab", access_controls={"users": ["group:team"]}))
    enroll = admin.create_token("enroll-vm", kind="enroll", uses=1).token
    with AgentClient(server.url) as anon:
        agent = anon.enroll(enroll, instance_id="vm-7")
    admin.send(ops.add_members("team", ["carol"]))

    def switch(person: str, groups: list[str]) -> httpx.Response:
        body = {"persona": "lab", "requested_by": {"user": person, "groups": groups}}
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {agent.token}"}
        ) as api:
            return api.post(f"/api/v1/instances/{agent.instance_id}/activations", json=body)

    def switchable(person: str, groups: list[str]) -> bool:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {agent.token}"}
        ) as api:
            params = [("user", person), *(("group", g) for g in groups)]
            answer = api.get(f"/api/v1/instances/{agent.instance_id}/switchable", params=params)
        assert answer.status_code == 200, answer.text
        return {i["name"]: i["allowed"] for i in answer.json()["items"]}["lab"]

    # carol is in the server's group "team" (no Unix group said so): she may do both.
    assert switchable("carol", [])
    assert switch("carol", []).status_code == 202
    with user(admin, server, "carol") as carol:
        assert carol.send(ops.request_lease("lab")).holder == "carol"

    # dave is not, though his agent reports a Unix group called "team": neither.
    assert not switchable("dave", ["team"])
    refused = switch("dave", ["team"])
    assert refused.status_code == 403 and "access_controls.users" in refused.text
    with (
        user(admin, server, "dave") as dave,
        pytest.raises(Forbidden, match="not among the users of persona 'lab'"),
    ):
        dave.send(ops.request_lease("lab"))
    assert admin.active_persona("vm-7").desired.persona == "lab"  # carol's switch stands
