"""Several personas by tag over HTTP: an add-binding layers its persona on top of the chosen
one for the instances it selects; their agents receive one composed persona with both
personas' rules; a rule name defined twice is an error shown on the instance, naming both
sources, and nothing of it reaches the agent; the explanation lists every layer and the
binding that brought it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from server_harness import AgentFleet, ServerProcess, wait_until
from test_convergence import converged, enroll

from mien.client import Client


def rule(name: str, threshold: float = 90.0) -> dict[str, Any]:
    return {
        "name": name,
        "when": f"metrics.cpu_percent > {threshold}",
        "then": [{"action": "notify", "message": name}],
    }


WEB = {
    "name": "web",
    "os_settings": {"theme": "dark"},
    "restricted_commands": ["reboot"],
    "adaptation_rules": [rule("cpu-high")],
}
MONITORING = {
    "name": "monitoring",
    "environment_variables": {"EXPORTER": "on"},
    "restricted_commands": ["halt"],
    "adaptation_rules": [rule("disk-full")],
}
CLASH = {"name": "clash", "adaptation_rules": [rule("cpu-high", 10.0)]}


def rules_of(document: dict[str, Any] | None) -> list[str]:
    return [r["name"] for r in (document or {}).get("adaptation_rules", [])]


def test_add_binding_layers_a_persona_on_matching_instances(
    server: ServerProcess, admin: Client, fleet: AgentFleet
) -> None:
    for doc in (WEB, MONITORING, CLASH):
        admin.create_persona(doc)
    admin.create_binding("web", {"role": "web"}, "web")
    eu = enroll(server, admin, fleet, {"role": "web", "region": "eu"})
    us = enroll(server, admin, fleet, {"role": "web", "region": "us"})
    for agent in (eu, us):
        wait_until(lambda a=agent: converged(admin, a, "web"), what="web applied")
    us_hash = us.applied.hash  # type: ignore[union-attr]

    created = admin.create_binding("watch-eu", {"region": "eu"}, "monitoring", mode="add")
    assert created.mode == "add" and admin.get_binding("watch-eu").mode == "add"

    # The matching instance's agent gets one persona with both personas' rules.
    wait_until(
        lambda: converged(admin, eu, "web") and "disk-full" in rules_of(eu.applied.document),  # type: ignore[union-attr]
        what="the eu agent applied the added persona",
    )
    doc = eu.applied.document  # type: ignore[union-attr]
    assert doc["name"] == "web" and rules_of(doc) == ["cpu-high", "disk-full"]
    assert doc["restricted_commands"] == ["reboot", "halt"]
    assert doc["environment_variables"] == {"EXPORTER": "on"}
    shown = admin.get_instance(eu.instance_id or "")
    assert shown.desired.persona == "web" and shown.desired.added == ["watch-eu"]
    assert shown.in_sync

    # The non-matching instance is untouched.
    assert admin.get_instance(us.instance_id or "").desired.hash == us_hash
    assert us.applied.hash == us_hash and rules_of(us.applied.document) == ["cpu-high"]  # type: ignore[union-attr]

    # Every layer, with the binding that brought it.
    eff = admin.effective_persona(eu.instance_id or "")
    assert [(layer.kind, layer.persona, layer.binding) for layer in eff.explain.layers] == [
        ("persona", "web", "web"),
        ("addition", "monitoring", "watch-eu"),
    ]
    assert eff.explain.layers[1].label == "persona monitoring v1, added by binding watch-eu"
    assert "personas added by watch-eu" in eff.explain.decision
    used = {b.name: b for b in eff.explain.bindings}
    assert used["watch-eu"].mode == "add" and used["watch-eu"].used
    assert used["watch-eu"].reason == "adds persona 'monitoring' on top of 'web'"
    assert eff.explain.keys["environment_variables.EXPORTER"][-1].layer.endswith("watch-eu")

    # A rule name defined by both: an error on the instance naming both sources; the agent
    # keeps what it runs, nothing of the clash is half-applied.
    applied = eu.applied.hash  # type: ignore[union-attr]
    admin.create_binding("clash-eu", {"region": "eu"}, "clash", mode="add", priority=5)
    error = wait_until(
        lambda: admin.get_instance(eu.instance_id or "").desired.error, what="compose error"
    )
    assert "persona clash v1, added by binding clash-eu" in error
    assert "persona web v1" in error and "'cpu-high'" in error
    shown = admin.get_instance(eu.instance_id or "")
    assert shown.desired.hash is None and not shown.in_sync
    assert admin.fleet_summary().in_sync == 1  # the us instance only
    assert eu.applied.hash == applied and eu.received[-1].document is None
    assert admin.get_instance(us.instance_id or "").desired.hash == us_hash

    # Deleting the clashing binding heals it.
    admin.delete_binding("clash-eu")
    wait_until(
        lambda: admin.get_instance(eu.instance_id or "").desired.hash == applied,
        what="the clash is gone",
    )


def test_mode_is_validated_and_kept(server: ServerProcess, admin: Client) -> None:
    admin.create_persona(WEB)
    body = {"name": "b", "selector": {}, "persona": "web", "mode": "merge"}
    response = httpx.post(
        f"{server.url}/api/v1/bindings",
        json=body,
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert response.status_code == 422, response.text
    assert "mode" in response.json()["detail"]
    assert admin.list_bindings() == []
    admin.create_binding("b", {}, "web")
    assert admin.get_binding("b").mode == "replace"
    changed = admin.update_binding("b", {}, "web", mode="add")
    assert changed.mode == "add" and changed.version == 2


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_an_override_that_does_not_compose_is_refused_in_either_mode(
    admin: Client, mode: str
) -> None:
    admin.create_persona(WEB)
    from mien.client import InvalidDocument

    with pytest.raises(InvalidDocument):
        admin.create_binding(
            "bad",
            {},
            "web",
            override={"behavioral_settings": {"logging_level": "loud"}},
            mode=mode,
        )
