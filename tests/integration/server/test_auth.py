"""Every endpoint refuses a missing token, a token of the wrong role, and another
instance's agent token; tokens are revocable at once and expire."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from server_harness import ServerProcess, wait_until

from mien.client import AgentClient, Client, Forbidden, Unauthorized

OPEN = {("GET", "/healthz"), ("GET", "/metrics"), ("POST", "/api/v1/enroll")}

# Who may call what: viewer/operator/admin admit the roles above them; "self" is an agent
# reading its own instance.
ROLES: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/personas"): {"viewer", "user"},
    ("POST", "/api/v1/personas"): {"operator"},
    ("GET", "/api/v1/personas/{name}"): {"viewer", "user"},
    ("PUT", "/api/v1/personas/{name}"): {"operator"},
    ("DELETE", "/api/v1/personas/{name}"): {"operator"},
    ("PUT", "/api/v1/personas/{name}/default"): {"operator"},
    ("DELETE", "/api/v1/personas/{name}/default"): {"operator"},
    ("GET", "/api/v1/personas/{name}/versions"): {"viewer", "user"},
    ("GET", "/api/v1/personas/{name}/versions/{version}"): {"viewer", "user"},
    ("GET", "/api/v1/personas/{name}/diff"): {"viewer", "user"},
    ("GET", "/api/v1/personas/{name}/effectiveness"): {"viewer"},
    ("GET", "/api/v1/instances"): {"viewer"},
    ("GET", "/api/v1/fleet/summary"): {"viewer"},
    ("GET", "/api/v1/instances/{instance_id}"): {"viewer", "self"},
    ("PATCH", "/api/v1/instances/{instance_id}"): {"operator"},
    ("DELETE", "/api/v1/instances/{instance_id}"): {"operator"},
    ("GET", "/api/v1/instances/{instance_id}/active_persona"): {"viewer", "self"},
    ("GET", "/api/v1/instances/{instance_id}/effective_persona"): {"viewer", "self"},
    ("GET", "/api/v1/instances/{instance_id}/history"): {"viewer", "self"},
    ("POST", "/api/v1/instances/{instance_id}/personas/{persona_name}/activate"): {"operator"},
    ("DELETE", "/api/v1/instances/{instance_id}/activation"): {"operator"},
    ("GET", "/api/v1/activations"): {"viewer"},
    ("GET", "/api/v1/activations/{activation_id}"): {"viewer"},
    ("POST", "/api/v1/bindings"): {"operator"},
    ("GET", "/api/v1/bindings"): {"viewer"},
    ("GET", "/api/v1/bindings/{name}"): {"viewer"},
    ("PUT", "/api/v1/bindings/{name}"): {"operator"},
    ("DELETE", "/api/v1/bindings/{name}"): {"operator"},
    ("POST", "/api/v1/instances/{instance_id}/commands"): {"operator"},
    ("GET", "/api/v1/instances/{instance_id}/commands"): {"operator"},
    ("GET", "/api/v1/instances/{instance_id}/commands/{command_id}"): {"operator"},
    ("POST", "/api/v1/tokens"): {"admin"},
    ("GET", "/api/v1/tokens"): {"admin"},
    ("DELETE", "/api/v1/tokens/{token_id}"): {"admin"},
    ("GET", "/api/v1/whoami"): {"viewer", "user", "agent"},
    ("GET", "/api/v1/agent/desired"): {"agent"},
    ("POST", "/api/v1/agent/report"): {"agent"},
    ("POST", "/api/v1/agent/heartbeat"): {"agent"},
    ("POST", "/api/v1/agent/commands/{command_id}/result"): {"agent"},
    ("GET", "/api/v1/audit"): {"viewer"},
    ("GET", "/api/v1/audit/verify"): {"admin"},
    # The in-machine switcher: only the instance's own agent, for its person.
    ("GET", "/api/v1/instances/{instance_id}/switchable"): {"self"},
    ("GET", "/api/v1/instances/{instance_id}/switchable/{persona_name}"): {"self"},
    ("POST", "/api/v1/instances/{instance_id}/activations"): {"self"},
    # Telemetry: agents post their own; people read it.
    ("POST", "/api/v1/agent/telemetry"): {"agent"},
    # Fleet-wide data sources: an agent reads those its desired persona names.
    ("GET", "/api/v1/agent/sources/{key}"): {"agent"},
    ("GET", "/api/v1/instances/{instance_id}/metrics"): {"viewer", "self"},
    ("GET", "/api/v1/events"): {"viewer"},
    # The fleet policy: everyone who reads the fleet reads it; only an admin changes it.
    ("GET", "/api/v1/policy"): {"viewer"},
    ("PUT", "/api/v1/policy"): {"admin"},
    ("GET", "/api/v1/policy/versions"): {"viewer"},
    ("GET", "/api/v1/policy/versions/{version}"): {"viewer"},
    # Fleet status: the agent reports its own machine's status; people read it.
    ("GET", "/api/v1/instances/{instance_id}/status"): {"viewer", "self"},
    ("PUT", "/api/v1/instances/{instance_id}/status"): {"self"},
    # The orchestrator: operators push and delete fleet rules; viewers read them.
    ("POST", "/api/v1/fleet-rules"): {"operator"},
    ("GET", "/api/v1/fleet-rules"): {"viewer"},
    ("GET", "/api/v1/fleet-rules/{name}"): {"viewer"},
    ("DELETE", "/api/v1/fleet-rules/{name}"): {"operator"},
    ("GET", "/api/v1/orchestrator"): {"viewer"},
    ("GET", "/api/v1/providers"): {"viewer"},
    ("GET", "/api/v1/providers/{name}"): {"viewer"},
    ("PUT", "/api/v1/providers/{name}"): {"admin"},
    ("DELETE", "/api/v1/providers/{name}"): {"admin"},
    ("GET", "/api/v1/instances/{instance_id}/provider-calls"): {"viewer"},
    ("GET", "/api/v1/provider-calls"): {"viewer"},
    # The broker: people ask for leases (a lease's holder or an admin acts on it, which an
    # unknown lease id cannot show: 404); groups and hosts are the operators'.
    ("POST", "/api/v1/broker/leases"): {"viewer", "user"},
    ("GET", "/api/v1/broker/leases"): {"viewer", "user"},
    ("GET", "/api/v1/broker/leases/{lease_id}"): {"viewer", "user"},
    ("POST", "/api/v1/broker/leases/{lease_id}/renew"): {"viewer", "user"},
    ("POST", "/api/v1/broker/leases/{lease_id}/release"): {"viewer", "user"},
    ("POST", "/api/v1/broker/leases/{lease_id}/runs"): {"viewer", "user"},
    ("GET", "/api/v1/broker/leases/{lease_id}/runs/{run_id}"): {"viewer", "user"},
    ("GET", "/api/v1/broker/groups"): {"operator"},
    ("POST", "/api/v1/broker/groups/{name}/members"): {"admin"},
    ("DELETE", "/api/v1/broker/groups/{name}/members/{user}"): {"admin"},
    ("DELETE", "/api/v1/broker/groups/{name}"): {"admin"},
    ("GET", "/api/v1/broker/hosts"): {"operator"},
    ("POST", "/api/v1/broker/host/offer"): {"agent"},
    ("GET", "/api/v1/broker/host/work"): {"agent"},
    ("POST", "/api/v1/broker/host/leases/{lease_id}"): {"agent"},
    ("POST", "/api/v1/broker/host/leases/{lease_id}/usage"): {"agent"},
    ("POST", "/api/v1/broker/host/runs/{run_id}/result"): {"agent"},
}
RANK = {"viewer": 1, "operator": 2, "admin": 3}


def allowed(role: str, needed: set[str], own: bool) -> bool:
    for need in needed:
        if need in RANK and role in RANK and RANK[role] >= RANK[need]:
            return True
        if need == role and need in ("user", "agent"):
            return True
        if need == "self" and role == "agent" and own:
            return True
    return False


def fill(path: str, instance_id: str) -> str:
    values = {
        "name": "nobody",
        "version": "1",
        "instance_id": instance_id,
        "persona_name": "nobody",
        "activation_id": str(uuid.uuid4()),
        "command_id": str(uuid.uuid4()),
        "token_id": str(uuid.uuid4()),
        "lease_id": str(uuid.uuid4()),
        "run_id": str(uuid.uuid4()),
        "user": "nobody",
        "key": "0" * 32,
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


@pytest.fixture
def tokens(server: ServerProcess, admin: Client) -> dict[str, str]:
    out = {"admin": server.admin_token}
    for role in ("operator", "viewer", "user"):
        out[role] = admin.create_token(f"t-{role}", role=role).token
    for name in ("mine", "other"):
        enroll = admin.create_token(f"e-{name}", kind="enroll").token
        with AgentClient(server.url) as api:
            out[f"agent-{name}"] = api.enroll(enroll, instance_id=f"vm-{name}").token
    return out


def test_every_endpoint_refuses_missing_wrong_role_and_other_instance(
    server: ServerProcess, tokens: dict[str, str]
) -> None:
    schema = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    operations = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert operations - OPEN == set(ROLES), "update ROLES for new or removed endpoints"
    callers = {
        "admin": ("admin", False, "vm-mine"),
        "operator": ("operator", False, "vm-mine"),
        "viewer": ("viewer", False, "vm-mine"),
        "user": ("user", False, "vm-mine"),
        "agent-mine": ("agent", True, "vm-mine"),
        "agent-other": ("agent", False, "vm-mine"),  # vm-other's token on vm-mine
    }
    with httpx.Client(base_url=server.url, timeout=30) as http:
        # Deleting the instance (and revoking its agent) goes last; refusals before successes.
        order = sorted(
            ROLES.items(),
            key=lambda item: (item[0] == ("DELETE", "/api/v1/instances/{instance_id}"), item[0]),
        )
        for (method, path), needed in order:
            url = fill(path, "vm-mine")
            params = {"wait": 0} if "desired" in path or "commands" in path else {}
            r = http.request(method, url, params=params)
            assert r.status_code == 401, f"{method} {path} without a token: {r.status_code}"
            assert r.json()["code"] == "unauthorized"
            r = http.request(
                method, url, params=params, headers={"Authorization": "Bearer mien_a_forged"}
            )
            assert r.status_code == 401, f"{method} {path} with a forged token"
            ranked = sorted(callers.items(), key=lambda c: allowed(c[1][0], needed, c[1][1]))
            for caller, (role, own, _iid) in ranked:
                headers = {"Authorization": f"Bearer {tokens[caller]}"}
                r = http.request(method, url, params=params, headers=headers)
                if allowed(role, needed, own):
                    assert r.status_code not in (401, 403), (
                        f"{caller} refused {method} {path}: {r.text}"
                    )
                else:
                    assert r.status_code == 403, (
                        f"{caller} allowed {method} {path}: {r.status_code} {r.text}"
                    )
                    assert r.json()["code"] == "forbidden"


def test_revocation_is_immediate_and_tokens_expire(server: ServerProcess, admin: Client) -> None:
    created = admin.create_token("short", role="viewer")
    with Client(server.url, created.token) as viewer:
        assert viewer.whoami().role == "viewer"
        admin.revoke_token(created.id)
        with pytest.raises(Unauthorized, match="revoked"):
            viewer.whoami()
    brief = admin.create_token("brief", role="viewer", expires_in=0.5)
    with Client(server.url, brief.token) as viewer:

        def expired() -> bool:
            try:
                viewer.whoami()
            except Unauthorized as exc:
                return "expired" in str(exc)
            return False

        wait_until(expired, timeout=20, what="token expiry")
    assert {t.name for t in admin.list_tokens()} >= {"admin"}
    assert "short" in {t.name for t in admin.list_tokens(include_revoked=True)}


def test_enrollment_tokens_are_only_for_enrolling(server: ServerProcess, admin: Client) -> None:
    enroll = admin.create_token("two-uses", kind="enroll", uses=2, expires_in=3600)
    assert enroll.uses_left == 2 and enroll.expires_at is not None
    with Client(server.url, enroll.token) as api, pytest.raises(Forbidden, match="enroll"):
        api.list_personas()
    with AgentClient(server.url) as api:
        with pytest.raises(Unauthorized, match="not an enroll"):
            api.enroll(server.admin_token)
        first = api.enroll(enroll.token)
        second = api.enroll(enroll.token)
        assert first.instance_id != second.instance_id
        with pytest.raises(Unauthorized, match="no uses left"):
            api.enroll(enroll.token)


def test_deleting_an_instance_revokes_its_agent(server: ServerProcess, admin: Client) -> None:
    enroll = admin.create_token("e", kind="enroll").token
    with AgentClient(server.url) as api:
        enrolled = api.enroll(enroll, instance_id="vm-gone")
    with AgentClient(server.url, enrolled.token) as agent:
        assert agent.desired(None, wait=0) is not None
        admin.delete_instance("vm-gone")
        with pytest.raises(Unauthorized, match="revoked"):
            agent.desired(None, wait=0)
    assert admin.list_instances(include_deleted=True)[0].deleted_at is not None
    assert admin.list_instances() == []
