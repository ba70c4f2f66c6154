"""The orchestrator against a real server over HTTP: a fleet rule pushed, agents of
instances tagged role=web posting telemetry, the average crossing the threshold binds a
persona, clearing removes the binding, and the audit log records both; a rule that does
not compile is refused with its line; tags and activations on the worst instances are
set and undone; who may push and read."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_harness import ServerProcess, wait_until

from mien.client import AgentClient, Client

FAST = {"MIEN_SERVER_ORCHESTRATOR_INTERVAL": "0.3", "MIEN_SERVER_ORCHESTRATOR_LEASE_TTL": "3"}

RULE = """\
name: web-hot
description: a hot web tier gets the burst persona
selector: {role: web}
when: avg.cpu_percent > 70.0 && count >= 2
clear_when: avg.cpu_percent < 50.0
then:
  - bind: {persona: burst, priority: 50}
"""

PERSONA = {
    "name": "burst",
    "description": "more of everything",
    "environment_variables": {"BURST": "1"},
}


@pytest.fixture
def orch(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", None, env=FAST).start()
    yield proc
    assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


def api(
    server: ServerProcess, method: str, path: str, token: str | None = None, **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or server.admin_token}", **kw.pop("headers", {})}
    return httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, timeout=30, **kw)


def enroll(admin: Client, server: ServerProcess, name: str, tags: dict[str, str]) -> str:
    secret = admin.create_token(f"enroll-{name}", kind="enroll", uses=1).token
    with AgentClient(server.url) as agent:
        done = agent.enroll(secret, instance_id=name)
    admin.set_tags(name, tags)
    return done.token


class Agent:
    """One instance's agent sending its cpu_percent, as the uploader does."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server, self.token, self.seq = server, token, 0

    def send(self, value: float, *, events: list[dict[str, Any]] | None = None) -> None:
        self.seq += 1
        doc = {
            "samples": [
                {"seq": self.seq, "ts": time.time(), "name": "cpu_percent", "value": value}
            ],
            "events": [dict(e, seq=self.seq, ts=time.time()) for e in events or []],
        }
        r = httpx.post(
            f"{self.server.url}/api/v1/agent/telemetry",
            content=gzip.compress(json.dumps(doc).encode()),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
            },
            timeout=30,
        )
        assert r.status_code == 200, r.text


def fleet(server: ServerProcess, admin: Client) -> dict[str, Agent]:
    admin.create_persona(PERSONA)
    agents = {}
    for name, role in (("web-1", "web"), ("web-2", "web"), ("db-1", "db")):
        agents[name] = Agent(server, enroll(admin, server, name, {"role": role}))
    return agents


def bindings(server: ServerProcess) -> dict[str, Any]:
    return {b["name"]: b for b in api(server, "GET", "/bindings").json()["items"]}


def audit(server: ServerProcess, action: str) -> list[dict[str, Any]]:
    return list(
        api(server, "GET", "/audit", params={"action": action, "limit": 500}).json()["items"]
    )


def test_average_crossing_binds_and_clearing_unbinds(orch: ServerProcess, tmp_path: Path) -> None:
    with orch.client() as admin:
        agents = fleet(orch, admin)
    r = api(
        orch, "POST", "/fleet-rules", content=RULE, headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    # The db instance is hot too, but not in the selector: the web average decides.
    agents["db-1"].send(99.0)
    agents["web-1"].send(60.0)
    agents["web-2"].send(70.0)  # average 65: below 70
    wait_until(
        lambda: (
            api(orch, "GET", "/fleet-rules/web-hot").json()["values"].get("avg.cpu_percent") == 65.0
        ),
        what="the rule to see the average",
    )
    assert "fleet-web-hot" not in bindings(orch)
    agents["web-2"].send(90.0)  # average 75
    bound = wait_until(lambda: bindings(orch).get("fleet-web-hot"), what="the binding")
    assert bound["persona"] == "burst" and bound["selector"] == {"role": "web"}
    assert bound["created_by"] == "fleet-rule:web-hot" and bound["priority"] == 50
    shown = api(orch, "GET", "/fleet-rules/web-hot").json()
    assert shown["phase"] == "firing"
    assert [a["kind"] for a in shown["actions"]] == ["bind"]
    # The instances that match now run the bound persona.
    with orch.client() as admin:
        assert admin.get_instance("web-1").desired.persona == "burst"
    agents["web-2"].send(55.0)  # average 57.5: between the thresholds, still firing
    time.sleep(1.0)
    assert "fleet-web-hot" in bindings(orch)
    agents["web-1"].send(30.0)  # average 42.5: clears
    wait_until(lambda: "fleet-web-hot" not in bindings(orch), what="the binding to go")
    assert api(orch, "GET", "/fleet-rules/web-hot").json()["phase"] == "inactive"
    created = [a for a in audit(orch, "binding.create") if a["actor"] == "fleet-rule:web-hot"]
    deleted = [a for a in audit(orch, "binding.delete") if a["actor"] == "fleet-rule:web-hot"]
    assert len(created) == 1 and len(deleted) == 1
    fired = audit(orch, "fleet_rule.firing")
    assert len(fired) == 1 and fired[0]["detail"]["values"]["avg.cpu_percent"] == 75.0
    assert len(audit(orch, "fleet_rule.resolved")) == 1
    assert [a["action"] for a in audit(orch, "fleet_rule.push")] == ["fleet_rule.push"]


def test_a_rule_that_does_not_compile_is_refused_with_its_line(
    orch: ServerProcess, tmp_path: Path
) -> None:
    bad = RULE.replace("when: avg.cpu_percent > 70.0 && count >= 2", "when: avg.cpu_percent > && 1")
    r = api(orch, "POST", "/fleet-rules", content=bad, params={"source": "web-hot.yaml"})
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_document"
    assert body["problems"][0]["line"] == 4 and body["problems"][0]["path"] == "when"
    assert body["problems"][0]["text"].startswith("web-hot.yaml:4:")
    assert api(orch, "GET", "/fleet-rules").json()["items"] == []  # nothing stored
    # The CLI says the same, with the line, and exits 1.
    path = tmp_path / "web-hot.yaml"
    path.write_text(
        bad.replace("&& 1", "&& 1\n").replace(
            "selector: {role: web}", "selector: {role: web}\nfoo: 1"
        )
    )
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "mien.cli.main",
            "fleet-rule",
            "push",
            str(path),
            "--server",
            orch.url,
            "--token",
            orch.admin_token,
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "web-hot.yaml:5:" in cli.stderr and "foo" in cli.stderr


def test_cli_push_list_show_delete(orch: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "web-hot.yaml"
    path.write_text(RULE)
    base = [sys.executable, "-m", "mien.cli.main", "fleet-rule"]
    conn = ["--server", orch.url, "--token", orch.admin_token]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args, *conn], capture_output=True, text=True, timeout=60, check=False
        )

    pushed = run("push", str(path))
    assert pushed.returncode == 0, pushed.stderr
    assert "web-hot v1" in pushed.stdout + pushed.stderr
    again = run("push", str(path), "--output", "json")
    assert json.loads(again.stdout)["version"] == 1  # unchanged: no new version
    listed = run("list", "--output", "json")
    assert [r["name"] for r in json.loads(listed.stdout)] == ["web-hot"]
    shown = run("show", "web-hot")
    assert "avg.cpu_percent > 70.0" in shown.stdout + shown.stderr
    assert run("delete", "web-hot").returncode == 0
    gone = run("show", "web-hot")
    assert gone.returncode == 1 and "not found" in gone.stderr


def test_tags_and_activation_on_the_worst_are_undone(orch: ServerProcess) -> None:
    with orch.client() as admin:
        agents = fleet(orch, admin)
    rule = """\
name: mark-hot
selector: {role: web}
when: max.cpu_percent > 80 || firing_fraction.high_memory >= 0.5
then:
  - set_tags: {tier: hot}
  - activate: {persona: burst, worst: 1, by: cpu_percent}
"""
    assert api(orch, "POST", "/fleet-rules", content=rule).status_code == 201
    agents["web-1"].send(20.0)
    agents["web-2"].send(
        30.0, events=[{"kind": "adapt.rule.firing", "detail": {"rule": "high_memory"}}]
    )

    def tagged() -> bool:
        with orch.client() as admin:
            return all(admin.get_instance(i).tags.get("tier") == "hot" for i in ("web-1", "web-2"))

    wait_until(tagged, what="tags on both web instances")
    with orch.client() as admin:
        assert admin.get_instance("db-1").tags.get("tier") is None
        web2 = admin.get_instance("web-2").desired
        assert web2.source == "activation" and web2.persona == "burst"  # the worst
        assert admin.get_instance("web-1").desired.activation_id is None
        admin.set_tags("web-1", {"tier": "mine"})  # an operator's change since stands
    agents["web-2"].send(
        30.0, events=[{"kind": "adapt.rule.resolved", "detail": {"rule": "high_memory"}}]
    )

    def undone() -> bool:
        with orch.client() as admin:
            return admin.get_instance("web-2").tags.get("tier") is None

    wait_until(undone, what="tags undone")
    with orch.client() as admin:
        assert admin.get_instance("web-1").tags.get("tier") == "mine"
        assert admin.get_instance("web-2").desired.activation_id is None


def test_roles(orch: ServerProcess) -> None:
    with orch.client() as admin:
        viewer = admin.create_token("v", kind="api", role="viewer").token
    assert api(orch, "POST", "/fleet-rules", viewer, content=RULE).status_code == 403
    assert api(orch, "GET", "/fleet-rules", viewer).status_code == 200
    status = api(orch, "GET", "/orchestrator", viewer).json()
    wait_until(lambda: api(orch, "GET", "/orchestrator", viewer).json()["leader"], what="a leader")
    assert status["replica"]


def test_a_failed_action_is_journalled_and_deleting_the_rule_undoes_the_rest(
    orch: ServerProcess,
) -> None:
    with orch.client() as admin:
        agents = fleet(orch, admin)
        admin.create_binding("base", {"role": "db"}, "burst", priority=7)
    rule = """\
name: half-done
selector: {role: web}
when: reporting.cpu_percent >= 1
then:
  - bind: {persona: ghost}
  - set_tags: {seen: "yes"}
  - unbind: {binding: base}
"""
    assert api(orch, "POST", "/fleet-rules", content=rule).status_code == 201
    agents["web-1"].send(5.0)

    def journalled() -> list[dict[str, Any]]:
        return [
            a
            for a in api(orch, "GET", "/fleet-rules/half-done").json()["actions"]
            if not a["key"].endswith("/undo")
        ]

    actions = wait_until(lambda: len(journalled()) == 3 and journalled(), what="the actions")
    by_kind = {a["kind"]: a for a in actions}
    assert by_kind["bind"]["status"] == "failed"
    assert "ghost" in by_kind["bind"]["detail"]["error"]
    assert by_kind["set_tags"]["status"] == "done"
    assert "fleet-half-done" not in bindings(orch)
    assert "base" not in bindings(orch)  # unbound while the rule fires
    with orch.client() as admin:
        assert admin.get_instance("web-2").tags["seen"] == "yes"  # every matching one
    assert api(orch, "DELETE", "/fleet-rules/half-done").status_code == 204

    def untagged() -> bool:
        with orch.client() as admin:
            return all("seen" not in admin.get_instance(i).tags for i in ("web-1", "web-2"))

    wait_until(untagged, what="the tags undone after the delete")
    base = wait_until(lambda: bindings(orch).get("base"), what="the binding restored")
    assert (base["selector"], base["persona"], base["priority"]) == ({"role": "db"}, "burst", 7)
    assert api(orch, "GET", "/fleet-rules/half-done").status_code == 404
    assert len(audit(orch, "fleet_rule.delete")) == 1
