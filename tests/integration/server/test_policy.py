"""The fleet policy against a real server on SQLite and PostgreSQL: pushed in versions with
If-Match, refused with its line and field when invalid, applied to what each agent is asked
to run (trust capped per tag selector), to switches a person asks for on a machine, and
to the list of instances out of policy built from reports, telemetry and commands.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from server_harness import ServerProcess
from test_replicas import parked_poll, replicas  # noqa: F401 (a fixture)
from test_telemetry import body, enroll, post

from mien.client import AgentClient, Client
from mien.client import policy as ops

WEB = """\
name: web
locked: [os_settings.terminal_shell]
os_settings:
  terminal_shell: /bin/bash
access_controls:
  users: [alice, bob]
trust_levels:
  process_control: high
  resource_scaling: high
  network_access: low
"""

POLICY = """\
description: production machines do not run commands on their own
trust:
  - selector: {env: prod}
    max: {process_control: none, resource_scaling: medium}
  - selector: {env: [prod, staging]}
    max: {resource_scaling: low}
switching:
  - selector: {env: prod}
    users: [alice]
    personas: [web]
  - selector: {env: dev}
    users: ["*"]
    personas: ["*"]
noncompliance_window: 2h
"""

BAD = """\
trust:
  - selector: {env: prod}
    max: {process_contrl: none}
"""


def put(server: ServerProcess, token: str, text: str, **headers: str) -> httpx.Response:
    return httpx.put(
        f"{server.url}/api/v1/policy",
        content=text.encode(),
        params={"source": "fleet.yaml"},
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/yaml", **headers},
        timeout=30,
    )


def switch(server: ServerProcess, token: str, instance: str, user: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/instances/{instance}/activations",
        json={"persona": "web", "requested_by": {"user": user}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture
def fleet_of_two(server: ServerProcess, admin: Client) -> dict[str, str]:
    admin.create_persona(WEB)
    admin.set_default_persona("web")
    tokens = {}
    for name, env in (("i-prod", "prod"), ("i-dev", "dev")):
        instance, token = enroll(admin, server, name)
        admin.set_tags(instance, {"env": env})
        tokens[name] = token
    return tokens


def desired(server: ServerProcess, token: str) -> Any:
    with AgentClient(server.url, token) as api:
        answer = api.desired(None, wait=0)
    assert answer is not None
    return answer


def test_push_versions_conflict_and_bad_documents(
    server: ServerProcess, admin: Client, fleet_of_two: dict[str, str]
) -> None:
    token = server.admin_token
    none = admin.send(ops.get_policy())
    assert (none.version, none.document, none.etag) == (0, None, '"p0"')

    bad = put(server, token, BAD)
    assert bad.status_code == 422, bad.text
    problem = bad.json()["problems"][0]
    assert problem["path"] == "trust[0].max.process_contrl"
    assert (problem["source"], problem["line"]) == ("fleet.yaml", 3)
    assert "process_control" in problem["message"]
    assert admin.send(ops.versions()).items == []  # nothing stored

    viewer = admin.create_token("v", role="viewer").token
    operator = admin.create_token("o", role="operator").token
    assert put(server, operator, POLICY).status_code == 403
    assert httpx.get(
        f"{server.url}/api/v1/policy", headers={"Authorization": f"Bearer {viewer}"}
    ).is_success

    first = put(server, token, POLICY, **{"If-Match": '"p0"'})
    assert first.status_code == 200, first.text
    v1 = first.json()
    assert v1["version"] == 1 and first.headers["ETag"] == v1["etag"]
    assert v1["document"]["noncompliance_window"] == "2h"

    # Someone else's push based on "no policy" lost the race: 412, nothing stored.
    stale = put(server, token, POLICY.replace("medium", "high"), **{"If-Match": '"p0"'})
    assert stale.status_code == 412, stale.text
    assert stale.json()["code"] == "stale_version"
    assert stale.headers["ETag"] == v1["etag"]

    same = put(server, token, POLICY, **{"If-Match": v1["etag"]})
    assert same.json()["version"] == 1 and same.json()["notes"]
    second = put(server, token, POLICY.replace("{resource_scaling: low}", "{network_access: none}"))
    assert second.json()["version"] == 2
    assert [v.version for v in admin.send(ops.versions()).items] == [2, 1]
    old = admin.send(ops.get_version(1))
    assert old.latest is False and old.document == v1["document"]
    audit = list(admin.audit(action="policy.update"))
    assert [(r.actor, r.detail["version"]) for r in audit] == [("admin", 1), ("admin", 2)]


def test_trust_is_capped_in_what_the_agent_gets(
    server: ServerProcess, admin: Client, fleet_of_two: dict[str, str]
) -> None:
    before = desired(server, fleet_of_two["i-prod"])
    assert before.document["trust_levels"]["process_control"] == "high"

    assert put(server, server.admin_token, POLICY).status_code == 200
    prod = desired(server, fleet_of_two["i-prod"])
    assert prod.document["trust_levels"] == {
        "process_control": "none",
        "resource_scaling": "low",  # the lowest of both matching entries
        "network_access": "low",  # already under every cap
    }
    assert prod.hash != before.hash and prod.state != before.state
    dev = desired(server, fleet_of_two["i-dev"])
    assert dev.document["trust_levels"]["process_control"] == "high"  # no entry matches dev

    shown = admin.get_instance("i-prod").desired
    assert shown.policy_version == 1 and shown.hash == prod.hash
    assert {(c.risk, c.granted, c.allowed, c.entry) for c in shown.capped} == {
        ("process_control", "high", "none", "trust[0] (env=prod)"),
        ("resource_scaling", "high", "low", "trust[1] (env=prod|staging)"),
    }
    effective = admin.effective_persona("i-prod")
    assert effective.document is not None
    assert effective.document["trust_levels"]["process_control"] == "none"
    assert [c.risk for c in effective.desired.capped] == ["process_control", "resource_scaling"]
    assert admin.get_instance("i-dev").desired.capped == []

    # An operator's activation records the hash the agent will really be asked for.
    activation = admin.activate("i-prod", "web")
    assert activation.desired_hash == desired(server, fleet_of_two["i-prod"]).hash


def test_switching_on_a_persons_behalf_follows_the_policy(
    server: ServerProcess, admin: Client, fleet_of_two: dict[str, str]
) -> None:
    prod = fleet_of_two["i-prod"]
    # Without a policy, the persona's access_controls decide: bob may.
    assert switch(server, prod, "i-prod", "bob").status_code == 202
    assert put(server, server.admin_token, POLICY).status_code == 200
    refused = switch(server, prod, "i-prod", "bob")
    assert refused.status_code == 403, refused.text
    assert "switching list" in refused.json()["detail"]
    (record,) = admin.audit(action="activation.refused")
    assert record.detail["requested_by"] == "bob" and record.detail["policy_version"] == 1
    assert switch(server, prod, "i-prod", "alice").status_code == 202
    # On dev every person may switch to any persona the persona itself admits.
    assert switch(server, fleet_of_two["i-dev"], "i-dev", "bob").status_code == 202
    listing = httpx.get(
        f"{server.url}/api/v1/instances/i-prod/switchable",
        params={"user": "bob"},
        headers={"Authorization": f"Bearer {prod}"},
    ).json()
    (web,) = [c for c in listing["items"] if c["name"] == "web"]
    assert web["allowed"] is False and "switching list" in web["reason"]


def test_noncompliant_instances_are_listed_with_reasons(
    server: ServerProcess, admin: Client, fleet_of_two: dict[str, str]
) -> None:
    assert admin.list_instances(noncompliant=True) == []
    now = time.time()
    events = [
        {
            "seq": 1,
            "ts": now - 60,
            "kind": "adapt.action.refused",
            "detail": {"rule": "hot", "action": "run", "risk": "process_control"},
        },
        {"seq": 2, "ts": now - 50, "kind": "adapt.rule.firing", "detail": {"rule": "hot"}},
        {"seq": 3, "ts": now - 30, "kind": "adapt.action.refused", "detail": {"rule": "hot"}},
        # Older than the window (2h in the policy): not counted.
        {"seq": 4, "ts": now - 3 * 3600, "kind": "adapt.action.refused", "detail": {}},
    ]
    doc = {"instance": "i-prod", "samples": [], "events": events}
    assert post(server, fleet_of_two["i-prod"], body(doc)).status_code == 200
    assert put(server, server.admin_token, POLICY).status_code == 200

    # A person changed the locked shell on the dev machine; the agent reports it kept.
    d = desired(server, fleet_of_two["i-dev"])
    with AgentClient(server.url, fleet_of_two["i-dev"]) as agent:
        agent.report(
            "applied",
            persona="web",
            version=d.version,
            hash=d.hash,
            settings=[
                {
                    "setting": "os_settings.terminal_shell",
                    "status": "stored",
                    "reason": "user-choice",
                    "message": "bob chose /bin/zsh (chsh)",
                }
            ],
        )
    # A remote command the prod machine's router refused.
    pending = admin.run_command("i-prod", "reboot", wait=0)
    with AgentClient(server.url, fleet_of_two["i-prod"]) as agent:
        handed = agent.desired(None, wait=5)
        assert handed is not None and [c.id for c in handed.commands] == [pending.id]
        agent.command_result(pending.id, 126, refused=True)

    found = {i.id: i.noncompliance for i in admin.list_instances(noncompliant=True)}
    assert set(found) == {"i-prod", "i-dev"}
    by_kind = {r.kind: r for r in found["i-prod"]}
    assert set(by_kind) == {"action_refused", "command_refused"}
    assert by_kind["action_refused"].count == 2
    assert by_kind["command_refused"].count == 1
    (locked,) = found["i-dev"]
    assert locked.kind == "locked_changed" and "os_settings.terminal_shell" in locked.detail
    assert admin.list_instances(noncompliant=False) == []
    shown = admin.get_instance("i-prod").noncompliance
    assert {r.kind for r in shown} == {"action_refused", "command_refused"}


@pytest.mark.postgres
def test_a_push_on_one_replica_reaches_agents_parked_on_the_other(
    replicas: tuple[ServerProcess, ServerProcess],  # noqa: F811
) -> None:
    import asyncio

    a, b = replicas
    with a.client() as admin:
        admin.create_persona(WEB)
        admin.set_default_persona("web")
        _, token = enroll(admin, a, "vm-1")
        admin.set_tags("vm-1", {"env": "prod"})
        latency = asyncio.run(
            parked_poll(b, token, lambda: put(a, a.admin_token, POLICY).raise_for_status())
        )
        assert latency < 2.0, f"cross-replica policy wake-up took {latency:.3f}s"
    assert desired(b, token).document["trust_levels"]["process_control"] == "none"
