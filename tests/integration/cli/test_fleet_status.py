"""Honest fleet status over real HTTP and the real CLI: an agent's report with mixed
outcomes makes the instance "partly in effect" (not "in sync") in the API, ``mien instance
list`` and ``show``; its customizations, drift, rule states and recent actions are shown; a
malformed, oversized or foreign report is refused and stores nothing."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
from cli_harness import Cli
from server_harness import ServerProcess

from mien.client import AgentClient, Client
from mien.client.errors import ClientError, Conflict
from tests.support import make_machine

NOW = "2026-12-02T10:00:00Z"


def outcomes() -> list[dict[str, str]]:
    out = [{"setting": f"env.A{i}", "status": "applied", "reason": "in-effect"} for i in range(10)]
    out += [{"setting": f"ui.s{i}", "status": "stored", "reason": "no-effect"} for i in range(3)]
    out.append({"setting": "shell.zsh", "status": "failed", "reason": "error", "message": "boom"})
    return out


def machine(**extra: Any) -> dict[str, Any]:
    return {
        "at": NOW,
        "persona": "mixed",
        "customizations": [
            {"key": "editor.theme", "value": '"dark"', "source": "user", "origin": ""}
        ],
        "customizations_total": 1,
        "drift": ["/home/alice/.zshrc"],
        "drift_total": 1,
        "rules": [
            {"rule": "cpu-hot", "phase": "firing", "since": NOW},
            {"rule": "disk-full", "phase": "pending", "since": NOW},
            {"rule": "quiet", "phase": "inactive"},
        ],
        "actions": [
            {
                "id": 7,
                "rule": "cpu-hot",
                "action": "set_setting",
                "status": "applied",
                "at": NOW,
                "error": "",
            }
        ],
        **extra,
    }


def pushed(admin: Client) -> None:
    """Persona ``mixed`` on the module's server (the first test pushes it)."""
    with contextlib.suppress(Conflict):
        admin.create_persona({"name": "mixed", "environment_variables": {"A": "1"}})


def enrolled(server: ServerProcess, admin: Client, iid: str) -> tuple[str, Any]:
    """An instance running persona ``mixed``; its token and the desired state."""
    token = admin.create_token(f"e-{iid}", kind="enroll", uses=1).token
    with AgentClient(server.url) as api:
        agent_token = api.enroll(token, instance_id=iid, hostname=iid).token
    admin.activate(iid, "mixed")
    with AgentClient(server.url, agent_token) as api:
        desired = api.desired(None, wait=0)
    assert desired is not None
    return agent_token, desired


def report(desired: Any, **extra: Any) -> dict[str, Any]:
    return {
        "state": "applied",
        "activation_id": desired.activation_id,
        "hash": desired.hash,
        "persona": "mixed",
        "version": desired.version,
        "history": [],
        **extra,
    }


def test_mixed_outcomes_are_partly_in_effect_in_api_and_cli(
    server: ServerProcess, admin: Client, cli: Cli
) -> None:
    pushed(admin)
    token, desired = enrolled(server, admin, "st-mixed")
    with AgentClient(server.url, token) as api:
        api.report(**report(desired, instance="st-mixed", settings=outcomes(), status=machine()))

    inst = admin.get_instance("st-mixed")
    assert inst.in_sync  # the content is applied: rollouts are done with it
    effect = inst.effect
    assert (effect.state, effect.total, effect.applied, effect.stored, effect.failed) == (
        "partial",
        14,
        10,
        3,
        1,
    )
    assert effect.summary == (
        "partly in effect: 10 of 14 settings applied; 3 stored, not applied; 1 failed"
    )
    assert admin.active_persona("st-mixed").effect == effect
    assert admin.fleet_summary().partly_in_effect >= 1

    status = admin.instance_status("st-mixed")
    assert status.effect == effect and status.machine is not None
    assert [(r.rule, r.phase) for r in status.machine.rules] == [
        ("cpu-hot", "firing"),
        ("disk-full", "pending"),
        ("quiet", "inactive"),
    ]
    assert [(a.id, a.action, a.status) for a in status.machine.actions] == [
        (7, "set_setting", "applied")
    ]
    assert status.machine.drift == ["/home/alice/.zshrc"]
    assert [c.key for c in status.machine.customizations] == ["editor.theme"]

    listed = cli("instance", "list")
    assert listed.returncode == 0, listed.out
    row = next(line for line in listed.stdout.splitlines() if "st-mixed" in line)
    assert "partly in effect" in row and "10/14 (3 stored, 1 failed)" in row, row
    assert "in sync" not in row
    shown = cli("instance", "show", "st-mixed")
    assert shown.returncode == 0, shown.out
    text = shown.stdout
    assert (
        "NOT in sync: the agent applied the desired content, but it is partly in effect: "
        "10 of 14 settings applied; 3 stored, not applied; 1 failed." in " ".join(text.split())
    ), text
    for expected in ("cpu-hot", "firing", "disk-full", "pending", "set_setting"):
        assert expected in text, text
    assert "editor.theme" in text and "/home/alice/.zshrc" in text
    as_json = json.loads(cli("instance", "show", "st-mixed", "-o", "json").stdout)
    assert as_json["status"]["effect"]["state"] == "partial"
    assert as_json["instance"]["effect"]["failed"] == 1

    # Every setting applied: "in sync" at last.
    applied = [{**o, "status": "applied", "reason": "in-effect"} for o in outcomes()]
    with AgentClient(server.url, token) as api:
        api.report(**report(desired, settings=applied))
    assert admin.get_instance("st-mixed").effect.state == "full"
    row = next(line for line in cli("instance", "list").stdout.splitlines() if "st-mixed" in line)
    assert "in sync" in row and "14/14" in row, row
    # A report without a status keeps the one the machine last sent.
    assert admin.instance_status("st-mixed").machine == status.machine


def test_status_between_reports_is_the_agents_own_to_send(
    server: ServerProcess, admin: Client
) -> None:
    pushed(admin)
    mine, _ = enrolled(server, admin, "st-mine")
    other, _ = enrolled(server, admin, "st-other")
    with AgentClient(server.url, mine) as api:
        api.put_status("st-mine", machine(drift=["/etc/a"], drift_total=1))
    assert admin.instance_status("st-mine").machine.drift == ["/etc/a"]  # type: ignore[union-attr]
    # Another instance's agent may not report for it: 403, nothing stored.
    with AgentClient(server.url, other) as api:
        try:
            api.put_status("st-mine", machine(drift=["/etc/forged"]))
        except ClientError as exc:
            assert exc.status == 403 and "st-other" in str(exc)
        else:
            raise AssertionError("another agent's status was taken")
    assert admin.instance_status("st-mine").machine.drift == ["/etc/a"]  # type: ignore[union-attr]
    # An admin is not the machine either.
    r = httpx.put(
        f"{server.url}/api/v1/instances/st-mine/status",
        json=machine(),
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_bad_reports_are_refused_whole(server: ServerProcess, admin: Client) -> None:
    pushed(admin)
    token, desired = enrolled(server, admin, "st-bad")
    _, _ = enrolled(server, admin, "st-victim")
    with AgentClient(server.url, token) as api:
        api.report(**report(desired, settings=outcomes(), status=machine()))
    before = admin.get_instance("st-bad")
    before_status = admin.instance_status("st-bad")
    victim = admin.get_instance("st-victim")
    audit = len(list(admin.audit(instance="st-bad")))
    url = f"{server.url}/api/v1/agent/report"
    auth = {"Authorization": f"Bearer {token}"}
    good = report(desired, settings=[], status=machine(drift=["/etc/new"]))

    def refused(status: int, **kw: Any) -> dict[str, Any]:
        if "content" in kw:
            kw["headers"] = {**auth, "Content-Type": "application/json"}
        r = httpx.post(url, timeout=60, **{"headers": auth, **kw})
        assert r.status_code == status, r.text
        body: dict[str, Any] = r.json()
        assert body["code"] and body["detail"]
        return body

    # Oversized: more than the server's body limit (4 MiB) → 413.
    huge = {**good, "error": None, "history": [{"note": "x" * 1000}] * 5000}
    refused(413, content=json.dumps(huge))
    # Over the report's bounds (21 actions) → refused with the field named.
    action = machine()["actions"][0]
    body = refused(422, json={**good, "status": machine(actions=[action] * 21)})
    assert "actions" in body["detail"] or "actions" in json.dumps(body["problems"])
    # Not JSON, or a field of the wrong kind.
    refused(
        422,
        content=b'{"state": "applied", "status": {',
        headers={**auth, "Content-Type": "application/json"},
    )
    refused(422, json={**good, "status": machine(rules=[{"rule": "r", "phase": "boom"}])})
    # For another instance → 403.
    body = refused(403, json={**good, "instance": "st-victim"})
    assert "st-bad" in body["detail"] and "st-victim" in body["detail"]

    after = admin.get_instance("st-bad")
    assert after.applied == before.applied and after.effect == before.effect
    assert admin.instance_status("st-bad").machine == before_status.machine
    assert admin.get_instance("st-victim").applied == victim.applied
    assert len(list(admin.audit(instance="st-bad"))) == audit


def test_the_agent_sends_its_status_only_when_it_changed(
    server: ServerProcess, admin: Client, tmp_path: Path
) -> None:
    from mien.agent.engine import Engine
    from mien.agent.enrollment import Credentials
    from mien.agent.state import State
    from mien.agent.sync import Agent

    pushed(admin)
    token, desired = enrolled(server, admin, "st-real")
    root = make_machine(tmp_path / "m")
    creds = Credentials(server.url, "st-real", token)
    agent = Agent(root, creds, engine=Engine(root, user="alice"), log=lambda _m: None)
    try:
        assert agent.refresh_status(force=True)  # first look: sent
        assert admin.instance_status("st-real").machine is not None
        assert not agent.refresh_status(force=True)  # nothing changed: not sent again
        assert not agent.refresh_status()  # and not looked at again within STATUS_EVERY
        with State(root) as state, state.transaction():
            state.set_customization("os_settings.theme", "dark", "user")
        assert agent.refresh_status(force=True)
        machine = admin.instance_status("st-real").machine
        assert machine is not None and [c.key for c in machine.customizations] == [
            "os_settings.theme"
        ]
        # A report whose status the server refuses (or an older server that knows none)
        # still lands, without it.
        warned: list[str] = []
        agent.warn = warned.append
        bad = machine.model_dump(mode="json")
        bad["rules"] = [{"rule": "r", "phase": "exploding"}]
        agent._deliver(report(desired, settings=outcomes(), status=bad, instance="st-real"))
        assert admin.get_instance("st-real").effect.state == "partial"
        assert warned and "without the machine status" in warned[0]
        assert admin.instance_status("st-real").machine == machine
    finally:
        agent.close()
