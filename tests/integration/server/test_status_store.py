"""The machine status and the settings' outcomes are stored and read back alike on SQLite and
PostgreSQL, through a report (group commit) and through ``PUT …/status``."""

from __future__ import annotations

from server_harness import ServerProcess

from mien.client import AgentClient, Client

NOW = "2026-12-02T10:00:00Z"


def test_status_round_trips_on_every_backend(server: ServerProcess, admin: Client) -> None:
    admin.create_persona({"name": "kept", "environment_variables": {"A": "1"}})
    token = admin.create_token("kept", kind="enroll", uses=1).token
    with AgentClient(server.url) as api:
        enrolled = api.enroll(token, instance_id="vm-kept")
    activation = admin.activate("vm-kept", "kept")
    status = {
        "at": NOW,
        "persona": "kept",
        "customizations": [{"key": "k", "value": '"ü"', "source": "user", "origin": ""}],
        "customizations_total": 1,
        "drift": ["/etc/ä"],
        "drift_total": 1,
        "rules": [{"rule": "r", "phase": "pending", "since": NOW}],
        "actions": [{"id": 1, "rule": "r", "action": "notify", "status": "done", "at": NOW}],
    }
    with AgentClient(server.url, enrolled.token) as api:
        desired = api.desired(None, wait=0)
        assert desired is not None
        api.report(
            "applied",
            activation_id=activation.id,
            hash=desired.hash,
            persona="kept",
            version=desired.version,
            instance="vm-kept",
            settings=[
                {"setting": "environment_variables.A", "status": "applied", "reason": "in-effect"},
                {"setting": "x", "status": "pending", "reason": "not-installed"},
            ],
            status=status,
        )
        got = admin.instance_status("vm-kept")
        assert got.effect.state == "partial" and got.effect.pending == 1
        assert got.machine is not None
        assert got.machine.model_dump(mode="json")["drift"] == ["/etc/ä"]
        assert got.machine.customizations[0].value == '"ü"'
        api.put_status("vm-kept", {**status, "rules": [{"rule": "r", "phase": "firing"}]})
    after = admin.instance_status("vm-kept").machine
    assert after is not None and [r.phase for r in after.rules] == ["firing"]
    assert admin.fleet_summary().partly_in_effect == 1
