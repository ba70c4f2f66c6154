"""The agent protocol end to end: push → bind by tag → simulated agents converge; explicit
activations move pending → applied | failed; desired and applied are shown side by side."""

from __future__ import annotations

import asyncio
import time

import pytest
from server_harness import AgentFleet, ServerProcess, SimAgent, wait_until

from mien.client import (
    AgentClient,
    Client,
    Forbidden,
    InvalidDocument,
    NotFound,
    Unauthorized,
    agent_ops,
    ops,
)
from mien.client._http import AsyncSession

WEB = {
    "name": "web",
    "environment_variables": {"ROLE": "web"},
    "behavioral_settings": {"logging_level": "info"},
}
DB = {"name": "db", "environment_variables": {"ROLE": "db"}}


def enroll(
    server: ServerProcess, admin: Client, fleet: AgentFleet, tags: dict[str, str], **kw
) -> SimAgent:  # type: ignore[no-untyped-def]
    token = admin.create_token("enroll-test", kind="enroll", uses=1).token
    agent = SimAgent(server.url, **kw)
    fleet.call(agent.enroll(token, tags))
    return fleet.start(agent)


def converged(admin: Client, agent: SimAgent, persona: str) -> bool:
    active = admin.active_persona(agent.instance_id or "")
    return active.in_sync and active.applied.persona == persona


def test_push_bind_converge(server: ServerProcess, admin: Client, fleet: AgentFleet) -> None:
    admin.create_persona(WEB)
    admin.create_persona(DB)
    admin.create_binding("web-servers", {"role": "web"}, "web")
    admin.create_binding("db-servers", {"role": "db"}, "db")
    admin.create_binding(
        "prod-quiet",
        {"role": "web", "env": "prod"},
        "web",
        override={"behavioral_settings": {"logging_level": "warning"}},
        priority=10,
    )
    webs = [enroll(server, admin, fleet, {"role": "web", "env": "dev"}) for _ in range(3)]
    prods = [enroll(server, admin, fleet, {"role": "web", "env": "prod"}) for _ in range(3)]
    dbs = [enroll(server, admin, fleet, {"role": "db"}) for _ in range(2)]
    for agent in webs + prods:
        wait_until(lambda a=agent: converged(admin, a, "web"), what="web agents applied")
    for agent in dbs:
        wait_until(lambda a=agent: converged(admin, a, "db"), what="db agents applied")
    dev_doc = webs[0].applied.document  # type: ignore[union-attr]
    prod_doc = prods[0].applied.document  # type: ignore[union-attr]
    assert dev_doc["behavioral_settings"]["logging_level"] == "info"
    assert prod_doc["behavioral_settings"]["logging_level"] == "warning"
    # Agents with the same desired state got the very same answer.
    assert len({a.applied.hash for a in prods}) == 1  # type: ignore[union-attr]

    # The explanation says which version, which binding, which override.
    effective = admin.effective_persona(prods[0].instance_id or "")
    assert effective.desired.source == "binding" and effective.desired.persona == "web"
    assert "prod-quiet" in effective.explain.decision
    used = {b.name: b for b in effective.explain.bindings}
    assert used["prod-quiet"].used and used["web-servers"].used and not used["db-servers"].matched
    level = effective.explain.keys["behavioral_settings.logging_level"]
    assert [o.value for o in level] == ["info", "warning"]
    assert level[-1].layer.startswith("binding prod-quiet")

    # A new version of the persona rolls out to everyone bound to it.
    admin.update_persona("web", {**WEB, "environment_variables": {"ROLE": "web", "V": "2"}})
    for agent in webs + prods:
        wait_until(
            lambda a=agent: (
                converged(admin, a, "web")
                and a.applied.document["environment_variables"].get("V") == "2"
            ),
            what="update rolled out",
        )
    summary = admin.fleet_summary()
    assert (
        summary.instances == 8
        and summary.in_sync == 8
        and summary.by_persona == {"web": 6, "db": 2}
    )

    # Retagging moves an instance to the other persona.
    admin.set_tags(dbs[0].instance_id or "", {"role": "web", "env": None})
    wait_until(lambda: converged(admin, dbs[0], "web"), what="retagged instance converged")


def test_activation_pending_to_applied_and_failed(
    server: ServerProcess, admin: Client, fleet: AgentFleet
) -> None:
    admin.create_persona(WEB)
    admin.create_persona({"name": "broken", "environment_variables": {"FAIL": "1"}})
    agent = enroll(
        server,
        admin,
        fleet,
        {"role": "none"},
        fail_with=lambda doc: (
            "post_activation_script exited 3"
            if "FAIL" in doc.get("environment_variables", {})
            else None
        ),
    )
    iid = agent.instance_id or ""
    assert admin.active_persona(iid).desired.source == "none"
    activation = admin.activate(iid, "web")
    assert activation.status == "pending" and activation.version == 1 and activation.desired_hash
    done = admin.wait_activation(activation.id, timeout=30)
    assert done.status == "applied" and done.applied_hash == activation.desired_hash
    active = admin.active_persona(iid)
    assert active.desired.source == "activation" and active.applied.state == "applied"
    assert active.in_sync and active.activation and active.activation.id == activation.id

    failing = admin.activate(iid, "broken")
    done = admin.wait_activation(failing.id, timeout=30)
    assert done.status == "failed" and done.error == "post_activation_script exited 3"
    active = admin.active_persona(iid)
    # Desired and applied side by side: the failure is not claimed as applied.
    assert active.desired.persona == "broken" and active.applied.state == "failed"
    assert active.applied.hash == activation.desired_hash and not active.in_sync
    assert admin.get_activation(activation.id).status == "applied"

    # A newer activation supersedes an open one; clearing falls back to bindings/default.
    admin.create_persona({"name": "fallback"})
    admin.set_default_persona("fallback")
    admin.clear_activation(iid)
    wait_until(lambda: converged(admin, agent, "fallback"), what="default persona applied")
    assert admin.active_persona(iid).desired.source == "default"
    history = admin.instance_history(iid)
    assert [h.persona for h in history] == ["web", "fallback"]


def test_activation_pins_the_version(
    server: ServerProcess, admin: Client, fleet: AgentFleet
) -> None:
    admin.create_persona(WEB)
    admin.update_persona("web", {**WEB, "description": "v2"})
    agent = enroll(server, admin, fleet, {})
    activation = admin.activate(agent.instance_id or "", "web", version=1)
    assert admin.wait_activation(activation.id, timeout=30).status == "applied"
    assert (
        agent.applied and agent.applied.version == 1 and "description" not in agent.applied.document
    )  # type: ignore[operator]
    with pytest.raises(NotFound):
        admin.activate(agent.instance_id or "", "web", version=7)
    with pytest.raises(NotFound):
        admin.activate(agent.instance_id or "", "nope")


def test_default_persona_on_first_contact(server: ServerProcess, admin: Client) -> None:
    admin.create_persona({"name": "starter", "default_persona": True})
    assert api_default(admin) is None  # a document's own mark does not make it the default
    admin.set_default_persona("starter")
    token = admin.create_token("one", kind="enroll", uses=1, tags={"site": "lab"}).token
    with AgentClient(server.url) as api:
        enrolled = api.enroll(token, tags={"site": "elsewhere", "role": "x"}, hostname="vm1")
    assert enrolled.tags == {"site": "lab", "role": "x"}  # the token's tags win
    with AgentClient(server.url, enrolled.token) as api:
        first = api.desired(None, wait=0)
        assert first is not None and first.persona == "starter" and first.source == "default"
        assert api.desired(first.state, wait=0) is None  # 204: nothing new
        t0 = time.monotonic()
        assert api.desired(first.state, wait=0.5) is None
        assert time.monotonic() - t0 >= 0.45
        with pytest.raises(Forbidden):
            api.send(ops.list_bindings())
    with pytest.raises(Unauthorized, match="no uses left"):
        AgentClient(server.url).enroll(token)


def test_invalid_override_is_refused(admin: Client) -> None:
    admin.create_persona(WEB)
    with pytest.raises(InvalidDocument) as err:
        admin.create_binding(
            "bad",
            {"role": "web"},
            "web",
            override={"behavioral_settings": {"logging_level": "loud"}},
        )
    assert err.value.problems and err.value.problems[0].path.startswith("override.")
    with pytest.raises(InvalidDocument, match="does not exist"):
        admin.create_binding("bad", {"role": "web"}, "ghost")


def test_long_poll_returns_at_once_on_change(server: ServerProcess, admin: Client) -> None:
    admin.create_persona(WEB)
    token = admin.create_token("e", kind="enroll", uses=1).token
    with AgentClient(server.url) as api:
        enrolled = api.enroll(token, instance_id="vm-poll")
    assert enrolled.instance_id == "vm-poll"

    async def poll() -> tuple[float, object]:
        async with AsyncSession(server.url, enrolled.token) as api:
            first = await api.send(agent_ops.desired(None, wait=0))
            assert first is not None and first.document is None
            started = time.monotonic()
            answer = await api.send(agent_ops.desired(first.state, wait=30))
            return time.monotonic() - started, answer

    async def scenario() -> tuple[float, object]:
        task = asyncio.ensure_future(poll())
        # Measure from the moment the poll is parked on the server.
        await asyncio.to_thread(wait_until, lambda: admin.health().waiting_agents == 1)
        t0 = time.monotonic()
        await asyncio.to_thread(admin.activate, "vm-poll", "web")
        _waited, answer = await task
        return time.monotonic() - t0, answer

    latency, answer = asyncio.run(scenario())
    assert answer is not None and answer.persona == "web"  # type: ignore[attr-defined]
    assert latency < 2.0


def api_default(admin: Client) -> str | None:
    return next((p.name for p in admin.list_personas() if p.default_persona), None)
